//! Issue 13: concurrent signs into one repository share one transaction
//! (group commit). Real tufd and tufctl processes, a real notary-server,
//! the real `notary` client as the judge; the grouping is forced with the
//! daemon's `after-read` pause point (the first sign holds the repository
//! while the others queue), not left to timing.

use std::time::{Duration, Instant};
use tufd_tests::daemon::{CmdOutput, TestEnv};
use tufd_tests::hooks::PausePoints;
use tufd_tests::notary::NotaryServers;
use tufd_tests::users::{TestUser, can_create_users, open_socket_to_everyone};

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const GUN: &str = "localhost:5000/group/app";

fn sign_args<'a>(reference: &'a str, digest: &'a str) -> Vec<&'a str> {
    vec![
        "-o", "json", "sign", reference, "--digest", digest, "--size", "1",
    ]
}

/// The versions of targets/releases a sign's answer reports published.
fn releases_version(out: &CmdOutput) -> u64 {
    out.json()["changes"][0]["published"]
        .as_array()
        .unwrap_or_else(|| panic!("no published roles: {out:?}"))
        .iter()
        .find(|p| p["role"] == "targets/releases")
        .and_then(|p| p["version"].as_u64())
        .unwrap_or_else(|| panic!("targets/releases not published: {out:?}"))
}

fn wait_for(
    what: &str,
    deadline: Duration,
    mut done: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "{what} did not happen:\n{}", log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A daemon whose first sign through `pause` stops there, a repository
/// with tufd's `ci` signer, and a user `lim` whose signs fail (its policy
/// lets it write only a role nobody holds a key of). Fields drop in order:
/// the daemon first.
struct Setup {
    daemon: tufd_tests::daemon::Daemon,
    lim: TestUser,
    env: TestEnv,
    servers: NotaryServers,
    hooks: PausePoints,
}

impl Setup {
    /// `None` when test users cannot be created (not root).
    fn new(pause: &str) -> Option<Setup> {
        if !can_create_users() {
            eprintln!("SKIPPED: creating a test user needs root (CI runs as root)");
            return None;
        }
        let servers = NotaryServers::start();
        let mut env = TestEnv::new();
        let lim = TestUser::create(&env, "lim");
        let policy = format!(
            "[policy]\n[[policy.rule]]\nusers = [\"{}\"]\nrepositories = [\"localhost:5000/group/*\"]\nroles = [\"targets/other\"]\noperations = [\"sign\"]\n",
            lim.name
        );
        let config = servers.daemon_config(&env, &policy);
        {
            let _d = env.start_with(&config);
            env.tufctl(&["key", "generate", "ci"]).ok();
            env.tufctl(&["signer", "add", "ci", GUN, "--key", "ci.pub"])
                .ok();
        }
        // From now on the first transaction through `pause` stops there.
        let hooks = PausePoints::arm(&mut env, pause);
        let daemon = env.start_with(&config);
        open_socket_to_everyone(&env);
        Some(Setup {
            daemon,
            lim,
            env,
            servers,
            hooks,
        })
    }

    /// A sign of `first` (digest `digest`) is held at `point`; `n` root
    /// signs `{prefix}{i}` (D1 and D2 in turn) and `lim`'s sign of `bad`
    /// queue behind it; once `queued` signs are queued in all, the point is
    /// released. Returns the first's output, the `n`, and `lim`'s.
    fn first_held_others_queued(
        &self,
        digest: &str,
        point: &str,
        prefix: &str,
        n: usize,
        queued: usize,
    ) -> (CmdOutput, Vec<CmdOutput>, CmdOutput) {
        let (env, lim, daemon, hooks) = (&self.env, &self.lim, &self.daemon, &self.hooks);
        std::thread::scope(|s| {
            let first = s.spawn(|| env.tufctl(&sign_args(&format!("{GUN}:first"), digest)));
            hooks.wait(point, daemon);
            let others: Vec<_> = (0..n)
                .map(|i| {
                    s.spawn(move || {
                        let tag = format!("{GUN}:{prefix}{i}");
                        env.tufctl(&sign_args(&tag, if i % 2 == 0 { D1 } else { D2 }))
                    })
                })
                .collect();
            let refused = s.spawn(|| lim.tufctl(env, &sign_args(&format!("{GUN}:bad"), D1), &[]));
            self.wait_queued(queued);
            hooks.release(point);
            (
                first.join().unwrap(),
                others.into_iter().map(|h| h.join().unwrap()).collect(),
                refused.join().unwrap(),
            )
        })
    }

    /// Signs `warm`: the first sign after the start reads afresh (nothing
    /// kept yet) and passes no `confirmed` pause; its read-back is what
    /// the next sign starts from. Returns the targets/releases version.
    fn warm_up(&self) -> u64 {
        let warm = self.env.tufctl(&sign_args(&format!("{GUN}:warm"), D1));
        warm.ok();
        assert!(!self.hooks.is_paused("confirmed"), "{}", self.daemon.log());
        releases_version(&warm)
    }

    /// Waits (at most 20 s) until the daemon has queued `n` signs in all.
    fn wait_queued(&self, n: usize) {
        wait_for(
            &format!("{n} signs queueing"),
            Duration::from_secs(20),
            || self.queued() >= n,
            || self.daemon.log(),
        );
    }

    /// How many signs the daemon has queued so far.
    fn queued(&self) -> usize {
        self.daemon
            .log()
            .matches("sign queued for the next transaction")
            .count()
    }

    /// The `notary list` line of `tag` (a fresh notary client's view).
    fn listed(&self) -> String {
        self.servers.cli().run_ok(["list", GUN]).stdout
    }
}

/// The line of `tag` in a `notary list` output.
fn line_of<'a>(listed: &'a str, tag: &str) -> &'a str {
    listed
        .lines()
        .find(|l| l.split_whitespace().next() == Some(tag))
        .unwrap_or_else(|| panic!("{tag} not listed:\n{listed}"))
}

/// `lim`'s sign was refused by the policy, alone.
fn assert_refused_alone(refused: &CmdOutput) {
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        said.contains("PermissionDenied")
            && said.contains("the policy does not let you write")
            && said.contains("nothing was signed"),
        "{refused:?}"
    );
}

#[test]
fn concurrent_signs_share_one_publish_and_a_refused_caller_fails_alone() {
    let Some(setup) = Setup::new("after-read") else {
        return;
    };
    // Five signs by root and one by `lim` queue behind the first.
    let (first, grouped, refused) = setup.first_held_others_queued(D1, "after-read", "g", 5, 7);
    let (env, lim) = (&setup.env, &setup.lim);

    first.ok();
    let first_version = releases_version(&first);
    // Every root caller is told success, from one publish after the first.
    for out in &grouped {
        out.ok();
        assert_eq!(releases_version(out), first_version + 1, "{out:?}");
        assert!(
            out.stderr
                .contains("signing together with 5 other waiting sign(s)"),
            "{out:?}"
        );
    }
    // `lim` gets its own refusal; nothing of it was published.
    assert_refused_alone(&refused);

    // The notary client sees every tag told success, with its digest.
    let listed = setup.listed();
    let digest_of = |tag: &str| line_of(&listed, tag);
    assert!(digest_of("first").contains(&D1[7..]));
    for i in 0..5 {
        let want = if i % 2 == 0 { D1 } else { D2 };
        assert!(digest_of(&format!("g{i}")).contains(&want[7..]), "{listed}");
    }
    assert!(!listed.lines().any(|l| l.starts_with("bad ")), "{listed}");

    // Audit: one begin and one end record per caller, lim's end an error.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(env.path().join("state/audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let signs = |phase: &str| {
        lines
            .iter()
            .filter(|l| l["operation"] == "sign" && l["phase"] == phase)
            .collect::<Vec<_>>()
    };
    assert_eq!(signs("begin").len(), 7);
    let ends = signs("end");
    assert_eq!(ends.len(), 7);
    assert_eq!(ends.iter().filter(|l| l["result"] == "ok").count(), 6);
    assert!(
        ends.iter()
            .any(|l| l["caller"]["uid"] == lim.uid
                && l["result"].as_str().unwrap().starts_with("error")),
        "{ends:?}"
    );
}

/// Signs that queue while a sign's draft is prepared on the daemon's last
/// read-back (confirmed still served, not yet published) join that very
/// transaction: one publish for all, each told its own outcome, every tag
/// told success read back and listed. Forced with the `confirmed` pause:
/// the transaction holds there while the others queue.
#[test]
fn signs_queued_before_the_publish_join_the_transaction_under_way() {
    let Some(setup) = Setup::new("confirmed") else {
        return;
    };
    let daemon = &setup.daemon;
    let warm_version = setup.warm_up();

    let (first, joined, refused) = setup.first_held_others_queued(D2, "confirmed", "j", 3, 6);

    // One publish, right after the warm-up, carried all of them.
    first.ok();
    assert_eq!(releases_version(&first), warm_version + 1, "{first:?}");
    for out in &joined {
        out.ok();
        assert_eq!(releases_version(out), warm_version + 1, "{out:?}");
        assert!(
            out.stderr
                .contains("joined a transaction under way: signing together with 4 other sign(s)"),
            "{out:?}"
        );
    }
    assert_refused_alone(&refused);
    let log = daemon.log();
    assert!(
        log.contains("signs joined the transaction before its publish"),
        "{log}"
    );
    assert_eq!(
        log.matches("group transaction starts").count(),
        2,
        "the warm-up and one more: {log}"
    );

    let listed = setup.listed();
    assert!(line_of(&listed, "first").contains(&D2[7..]), "{listed}");
    for i in 0..3 {
        let want = if i % 2 == 0 { D1 } else { D2 };
        assert!(
            line_of(&listed, &format!("j{i}")).contains(&want[7..]),
            "{listed}"
        );
    }
    assert!(!listed.lines().any(|l| l.starts_with("bad ")), "{listed}");
}

/// A burst: while a confirmed sign waits for more after signs joined it
/// (`JOIN_QUIET`), a sign that arrives then joins too, and all go out in
/// one publish. Forced with the `confirmed` pause (the first sign holds
/// while one queues) and the `joined` pause (held again after that one
/// joined, while a third queues).
#[test]
fn a_sign_arriving_while_a_burst_joins_goes_out_in_the_same_publish() {
    let Some(setup) = Setup::new("confirmed,joined") else {
        return;
    };
    let (env, daemon, hooks) = (&setup.env, &setup.daemon, &setup.hooks);
    let warm_version = setup.warm_up();
    let sign = |tag: &str, digest: &str| env.tufctl(&sign_args(&format!("{GUN}:{tag}"), digest));
    let (first, second, third) = std::thread::scope(|s| {
        let first = s.spawn(|| sign("b0", D1));
        hooks.wait("confirmed", daemon);
        let second = s.spawn(|| sign("b1", D2));
        setup.wait_queued(3);
        hooks.release("confirmed");
        hooks.wait("joined", daemon);
        let third = s.spawn(|| sign("b2", D1));
        setup.wait_queued(4);
        hooks.release("joined");
        (
            first.join().unwrap(),
            second.join().unwrap(),
            third.join().unwrap(),
        )
    });
    for out in [&first, &second, &third] {
        out.ok();
        assert_eq!(
            releases_version(out),
            warm_version + 1,
            "one publish for all: {out:?}"
        );
    }
    assert!(
        third
            .stderr
            .contains("joined a transaction under way: signing together with 2 other sign(s)"),
        "{third:?}"
    );
    let log = daemon.log();
    assert_eq!(
        log.matches("group transaction starts").count(),
        2,
        "the warm-up and one more: {log}"
    );
    assert_eq!(
        log.matches("prepared again with signs that joined").count(),
        1,
        "signed once more, for all who joined: {log}"
    );
    let listed = setup.listed();
    for (tag, digest) in [("b0", D1), ("b1", D2), ("b2", D1)] {
        assert!(line_of(&listed, tag).contains(&digest[7..]), "{listed}");
    }
}

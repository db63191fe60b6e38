//! One request naming many repositories (a `sign --tags-from` list, a long
//! `verify` or `signer add`): the socket is a front door, so the number of
//! repositories a request names is capped and counted before anything else
//! is done per repository, a caller the policy grants nothing is refused
//! before the daemon works through the list, and `tufctl status` answers
//! while such requests run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tufd::service::MAX_REPOSITORIES_PER_REQUEST as CAP;
use tufd_tests::daemon::{CmdOutput, TestEnv};
use tufd_tests::hostile::status_latency;
use tufd_tests::users::{TestUser, can_create_users, open_socket_to_everyone};

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// What a refusal over the cap says, counting `unit`.
fn split(unit: &str) -> String {
    format!("at most {CAP} {unit} in one request: split the request")
}

/// `tags` lines `REPO:TAG@DIGEST:527` spread over `repos` distinct
/// repositories, written to `dir/name` readable by every user.
fn tag_list(dir: &Path, name: &str, repos: usize, tags: usize) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let list: String = (0..tags)
        .map(|n| {
            format!(
                "registry.example.com/team/app{:07}:v{n}@{DIGEST}:527\n",
                n % repos
            )
        })
        .collect();
    let file = dir.join(name);
    std::fs::write(&file, list).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    file
}

/// Runs each of `runs` on its own thread while `tufctl status` is asked
/// again and again (at least once); returns each answer with how long it
/// took, and the slowest status.
fn while_status<T: Send>(
    env: &TestEnv,
    runs: Vec<Box<dyn FnOnce() -> T + Send + '_>>,
) -> (Vec<(T, Duration)>, Duration) {
    std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .into_iter()
            .map(|run| {
                s.spawn(move || {
                    let start = Instant::now();
                    let out = run();
                    (out, start.elapsed())
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        loop {
            slowest = slowest.max(status_latency(env, 1));
            if handles.iter().all(|h| h.is_finished()) {
                break;
            }
        }
        (
            handles.into_iter().map(|h| h.join().unwrap()).collect(),
            slowest,
        )
    })
}

/// A caller with no grant at all sends lists of 100 000 tags: three over
/// the cap (one distinct repository a tag) and one at it (CAP repositories
/// of 100 tags each) at once. Each is refused promptly (over the cap: split
/// the request; at it: by the policy, without the daemon working through
/// the list first) and `status` keeps answering. Before the cap (debug
/// build, these four at once) they took 54 to 93 s, `status` 50 s.
#[test]
fn a_caller_without_grants_naming_many_repositories_is_refused_promptly() {
    if !can_create_users() {
        eprintln!("SKIPPED: creating a test user needs root (CI runs as root)");
        return;
    }
    let env = TestEnv::new();
    let daemon = env.start();
    open_socket_to_everyone(&env);
    let user = TestUser::create(&env, "many");
    // Installs the user's copy of tufctl before the threads share it.
    user.tufctl(&env, &["--version"], &[]);
    let over = tag_list(&user.home, "over.txt", 100_000, 100_000);
    let at = tag_list(&user.home, "at.txt", CAP, 100_000);
    let sign = |file: &Path| -> Box<dyn FnOnce() -> CmdOutput + Send + '_> {
        let file = file.to_str().unwrap().to_owned();
        let (env, user) = (&env, &user);
        Box::new(move || user.tufctl(env, &["sign", "--tags-from", &file], &[]))
    };
    let (answers, slowest) =
        while_status(&env, vec![sign(&over), sign(&over), sign(&over), sign(&at)]);
    for (i, (_, took)) in answers.iter().enumerate() {
        let what = if i < 3 {
            "100 000 repositories"
        } else {
            "at the cap"
        };
        eprintln!("MEASURE sign {i} ({what}): answered after {took:?}");
    }
    eprintln!("MEASURE status latency max while they ran: {slowest:?}");
    for (i, (out, took)) in answers.iter().enumerate() {
        if i < 3 {
            out.fails_with(1, &split("repositories"));
        } else {
            out.fails_with(1, "permission denied");
        }
        // Generous: the daemon refuses in about 0.2 s (debug build); the
        // rest is four debug tufctl reading 100 000 tags each (1.3 s alone).
        assert!(
            *took < Duration::from_secs(30),
            "sign {i} took {took:?}: {out:?}"
        );
    }
    assert!(
        slowest < Duration::from_secs(5),
        "status took {slowest:?}\n{}",
        daemon.log()
    );

    // A verify of CAP references: refused by the policy at the first, the
    // caller looked up once, no repository read.
    let refs: Vec<String> = (0..CAP)
        .map(|n| format!("registry.example.com/team/app{n:07}:v1"))
        .collect();
    let mut verify = vec!["verify"];
    verify.extend(refs.iter().map(String::as_str));
    let (answers, slowest) = while_status(&env, vec![Box::new(|| user.tufctl(&env, &verify, &[]))]);
    let (out, took) = &answers[0];
    eprintln!(
        "MEASURE verify of {CAP} repositories refused after {took:?}; status max {slowest:?}"
    );
    out.fails_with(1, "permission denied");
    assert!(slowest < Duration::from_secs(5), "status took {slowest:?}");
}

/// Every request that names repositories or references refuses more than
/// the cap with InvalidArgument saying to split it, before it looks at any
/// of them (the first name here is one no parser accepts), even for root.
#[test]
fn more_repositories_than_the_cap_are_refused_saying_split_the_request() {
    use prost::Message;
    use tufd_proto::v1;
    let env = TestEnv::new();
    let _daemon = env.start();
    let names: Vec<String> = std::iter::once("Not A Name!".to_owned())
        .chain((1..=CAP).map(|n| format!("registry.example.com/team/app{n:07}:v1")))
        .collect();
    let repos: Vec<String> = names
        .iter()
        .map(|n| n.trim_end_matches(":v1").to_owned())
        .collect();
    let sign = v1::SignRequest {
        tags: repos
            .iter()
            .map(|r| v1::TagToSign {
                repository: r.clone(),
                tag: "v1".into(),
                digest: DIGEST.into(),
                size: 527,
            })
            .collect(),
    };
    for (method, message, unit) in [
        ("/tufd.v1.Trust/Sign", sign.encode_to_vec(), "repositories"),
        (
            "/tufd.v1.Trust/AddSigner",
            v1::AddSignerRequest {
                signer: "alice".into(),
                repositories: repos.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            "repositories",
        ),
        (
            "/tufd.v1.Trust/RemoveSigner",
            v1::RemoveSignerRequest {
                signer: "alice".into(),
                repositories: repos.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            "repositories",
        ),
        (
            "/tufd.v1.Trust/Verify",
            v1::VerifyRequest {
                references: names.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            "references",
        ),
        (
            "/tufd.v1.Trust/Inspect",
            v1::InspectRequest {
                repositories: names.clone(),
            }
            .encode_to_vec(),
            "references",
        ),
        (
            "/tufd.v1.Trust/InspectStream",
            v1::InspectRequest {
                repositories: names.clone(),
            }
            .encode_to_vec(),
            "references",
        ),
    ] {
        let status = tufd_tests::raw::unary(&env.socket(), method, message).expect_err("refused");
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{method}: {status:?}"
        );
        assert!(
            status.message().contains(&split(unit)),
            "{method}: {status:?}"
        );
    }

    // What a person sees: tufctl passes the daemon's words on.
    let list = tag_list(env.path(), "tags.txt", CAP + 1, 2 * (CAP + 1));
    env.tufctl(&["sign", "--tags-from", list.to_str().unwrap()])
        .fails_with(1, &split("repositories"));
    env.tufctl(&["status"]).ok();
}

//! The notary-server harness itself: fast start, isolation, no orphans.

use std::time::{Duration, Instant};

use tufd_tests::notary::NotaryServers;

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    unsafe { libc::kill(pid, 0) == 0 }
}

fn wait_dead(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        // A killed child of an exited process is reaped by init shortly after.
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn parallel_servers_start_fast_and_die_on_drop() {
    let handles: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let started = Instant::now();
                let servers = NotaryServers::start();
                (started.elapsed(), servers)
            })
        })
        .collect();
    let all: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("start thread"))
        .collect();
    let mut urls: Vec<_> = all.iter().map(|(_, s)| s.url().to_owned()).collect();
    urls.dedup();
    assert_eq!(urls.len(), 3, "each instance has its own port: {urls:?}");
    for (took, servers) in &all {
        eprintln!("{} started in {took:?}", servers.url());
        assert!(*took < Duration::from_secs(5), "start took {took:?}");
    }
    let pids: Vec<_> = all.iter().map(|(_, s)| s.pids()).collect();
    drop(all);
    for (server, signer) in pids {
        assert!(!alive(server), "notary-server {server} survived drop");
        assert!(!alive(signer), "notary-signer {signer} survived drop");
    }
}

#[test]
fn servers_die_when_a_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let servers = NotaryServers::start();
        tx.send(servers.pids()).expect("send");
        panic!("test failure while servers run");
    });
    assert!(result.is_err());
    let (server, signer) = rx.recv().expect("pids");
    assert!(!alive(server) && !alive(signer));
}

/// Helper for the next test: when run as a child, starts servers, prints
/// their pids and exits without unwinding or running destructors.
#[test]
fn child_exits_abruptly() {
    if std::env::var_os("TUFD_HARNESS_CHILD").is_none() {
        return;
    }
    let servers = NotaryServers::start();
    let (server, signer) = servers.pids();
    println!("PIDS {server} {signer} {}", servers.dir().display());
    // SAFETY: _exit ends the process at once, as a crash or SIGKILL would.
    unsafe { libc::_exit(0) }
}

#[test]
fn servers_die_with_the_test_process() {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "child_exits_abruptly",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TUFD_HARNESS_CHILD", "1")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PIDS ").map(|(_, pids)| pids.trim()))
        .unwrap_or_else(|| {
            panic!(
                "child printed no pids: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let mut fields = line.splitn(3, ' ');
    let mut pids = Vec::new();
    for _ in 0..2 {
        pids.push(
            fields
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or_else(|| panic!("bad line {line:?}")),
        );
    }
    let dir = fields.next().unwrap_or_else(|| panic!("bad line {line:?}"));
    let dead = pids.iter().all(|pid| wait_dead(*pid));
    // The child could not clean up its temporary directory.
    if dir.contains("tufd-notary-") {
        let _ = std::fs::remove_dir_all(dir);
    }
    assert!(dead, "notary processes {pids:?} outlived the test process");
}

#[test]
fn notary_cli_runs_against_the_servers() {
    let servers = NotaryServers::start();
    let cli = servers.cli();
    let out = cli.run(["list", "example.com/none"]);
    assert!(!out.success(), "{out}");
    cli.run_ok(["init", "example.com/app", "-p"]);
    let out = cli.run_ok(["list", "example.com/app"]);
    assert!(out.stdout.contains("No targets present"), "{out}");
    // A second client has its own, empty trust directory but sees the same server.
    let other = servers.cli();
    assert_ne!(other.trust_dir(), cli.trust_dir());
    other.run_ok(["list", "example.com/app"]);
}

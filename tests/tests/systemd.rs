//! Issue 11, deployment: the units in systemd/ pass `systemd-analyze
//! verify` and score at most 2.0 in `systemd-analyze security`, and tufd
//! runs socket-activated (`systemd-socket-activate` passes the socket as
//! LISTEN_FDS) with READY and STOPPING sent to a notify socket the test
//! holds. No running systemd is needed.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tufd_tests::daemon::{TestEnv, binary};
use tufd_tests::softhsm;

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

/// The units with ExecStart pointing at the built tufd (verify checks the
/// binary exists).
fn units_here(env: &TestEnv) -> PathBuf {
    let dir = env.path().join("units");
    std::fs::create_dir_all(&dir).unwrap();
    for unit in ["tufd.socket", "tufd.service"] {
        let text = std::fs::read_to_string(units_dir().join(unit)).unwrap();
        let text = text.replace("/usr/bin/tufd", &binary("tufd").display().to_string());
        std::fs::write(dir.join(unit), text).unwrap();
    }
    dir
}

#[test]
fn units_verify_and_score_at_most_two() {
    let env = TestEnv::new();
    let dir = units_here(&env);
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("tufd.socket"))
        .arg(dir.join("tufd.service"))
        .output()
        .expect("systemd-analyze (Debian package systemd, installed by scripts/setup)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {verify:?}"
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(dir.join("tufd.service"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for tufd.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {text}{security:?}"));
    eprintln!("systemd-analyze security --offline=true tufd.service: {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
}

/// Reads notify datagrams until one contains `want`.
fn wait_for(sock: &UnixDatagram, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.lines().any(|l| l == want);
            seen.push(msg);
            if hit {
                return seen;
            }
        }
    }
    panic!("no {want} on the notify socket; got {seen:?}");
}

#[test]
fn socket_activated_daemon_notifies_ready_and_stopping() {
    let env = TestEnv::new();
    let config = env.path().join("tufd.toml");
    // The configured socket path is unused: the daemon takes the passed one.
    let configured = env.config().replace(
        &env.socket().display().to_string(),
        &env.path().join("unused.sock").display().to_string(),
    );
    std::fs::write(&config, configured).unwrap();
    std::fs::create_dir_all(env.socket().parent().unwrap()).unwrap();
    let notify_path = env.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(env.socket())
        .arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify_path.display()))
        .arg("-E")
        .arg(format!("SOFTHSM2_CONF={}", env.hsm.conf().display()))
        .arg("-E")
        .arg(format!("TUFD_PIN={}", softhsm::PIN))
        .args(["-E", "TUFD_LOG=info"])
        .arg(binary("tufd"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(env.path().join("activate.log")).unwrap());
    let mut child = tufd_tests::process::spawn_tied(cmd).expect("systemd-socket-activate runs");

    // systemd-socket-activate holds the socket; the first connection starts tufd.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.socket().exists() {
        assert!(
            Instant::now() < deadline,
            "no socket from systemd-socket-activate"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = env.tufctl(&["-o", "json", "status"]).json();
    assert_eq!(status["tokens"][0]["state"], "ready", "{status}");
    let seen = wait_for(&notify, "READY=1");
    assert!(
        !env.path().join("unused.sock").exists(),
        "the daemon used the passed socket, not its own"
    );

    // SAFETY: kill(2) on our own child (tufd runs in its place).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let seen_stop = wait_for(&notify, "STOPPING=1");
    let exit = child.wait().unwrap();
    let log = std::fs::read_to_string(env.path().join("activate.log")).unwrap_or_default();
    assert!(exit.success(), "{exit:?} {seen:?} {seen_stop:?}\n{log}");
    assert!(
        log.contains("listening on the socket systemd passed"),
        "{log}"
    );
}

/// `LoadCredential=` PINs: `credential:NAME` and
/// `file:$CREDENTIALS_DIRECTORY/NAME` read the PIN from the directory
/// systemd names in the daemon's environment.
#[test]
fn systemd_credentials_are_pin_sources() {
    for pin in [
        "credential:token-pin",
        "file:$CREDENTIALS_DIRECTORY/token-pin",
    ] {
        let mut env = TestEnv::new();
        let creds = env.path().join("credentials");
        std::fs::create_dir_all(&creds).unwrap();
        std::fs::write(creds.join("token-pin"), softhsm::PIN).unwrap();
        // As systemd lays credentials out: readable by the service only.
        std::fs::set_permissions(
            creds.join("token-pin"),
            std::os::unix::fs::PermissionsExt::from_mode(0o400),
        )
        .unwrap();
        env.daemon_env = vec![("CREDENTIALS_DIRECTORY".into(), creds.display().to_string())];
        let config = env.config().replace("env:TUFD_PIN", pin);
        assert!(config.contains(pin));
        let _d = env.start_with(&config);
        let status = env.tufctl(&["-o", "json", "status"]).json();
        assert_eq!(status["tokens"][0]["state"], "ready", "{pin}: {status}");
        env.tufctl(&["key", "generate", "k"]).ok();
    }
}

/// The value of `key=` in unit text `unit` (the last one set).
fn setting<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .next_back()
}

/// The state directory is the service's alone, and the socket's clients
/// are not in the service's group: a client that could read the state
/// directory could read the audit log and hold `tufd.lock`'s lock, and
/// with it keep tufd from starting.
#[test]
fn the_state_directory_is_the_services_alone() {
    let read = |p: &str| std::fs::read_to_string(units_dir().join(p)).unwrap();
    let service = read("tufd.service");
    let socket = read("tufd.socket");
    assert_eq!(setting(&service, "StateDirectoryMode"), Some("0700"));
    assert_eq!(setting(&service, "UMask"), Some("0077"));
    let group = setting(&service, "Group").expect("Group=");
    let socket_group = setting(&socket, "SocketGroup").expect("SocketGroup=");
    assert_ne!(socket_group, group, "the socket's group is the service's");
    assert_eq!(setting(&service, "SupplementaryGroups"), Some(""));
    assert_eq!(setting(&socket, "SocketMode"), Some("0660"));
    let sysusers = read("sysusers.d/tufd.conf");
    assert!(
        sysusers
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["g", socket_group])),
        "sysusers.d makes {socket_group}: {sysusers}"
    );
    let tmpfiles = read("tmpfiles.d/tufd.conf");
    assert!(
        tmpfiles
            .lines()
            .any(|l| l.starts_with("d /var/lib/tufd 0700 ")),
        "{tmpfiles}"
    );
}

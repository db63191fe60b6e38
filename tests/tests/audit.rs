//! The audit log's chain through the real daemon: a write cut short by the
//! file-size limit leaves whole lines and the daemon keeps working; an
//! incomplete last line left by a crash is cut off, and the cut recorded,
//! when the daemon starts; deleting the oldest rotated files is detected
//! by both verifiers, naming the missing seqs.

use std::path::Path;
use std::process::Command;
use tufd_tests::daemon::{CmdOutput, Daemon, TestEnv, binary};

/// `tufd --audit-verify LOG`.
fn audit_verify(log: &Path) -> CmdOutput {
    CmdOutput::from(
        Command::new(binary("tufd"))
            .arg("--audit-verify")
            .arg(log)
            .output()
            .unwrap(),
    )
}

fn audit_lines(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sets `pid`'s file-size limit (RLIMIT_FSIZE) to `bytes`.
fn limit_file_size(pid: u32, bytes: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit on our own child with a valid struct.
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_FSIZE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// The reviewer's `ulimit -f` case: the daemon's file-size limit falls
/// inside the next audit line (SIGXFSZ ignored, so the write fails with
/// EFBIG after writing part of it). The operation is refused, the log
/// keeps whole lines only and verifies, and once the limit is lifted the
/// next operation continues the chain. Then a crash mid-write (the
/// fragment such a write leaves when the daemon dies before cutting it) is
/// cut off at the next start and recorded in the chain as a recovery.
#[test]
fn a_write_cut_short_leaves_a_whole_chain_and_a_torn_tail_is_recovered() {
    // Ignored signals stay ignored across exec: tufd inherits this.
    // SAFETY: setting a signal's disposition to SIG_IGN.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let mut env = TestEnv::new();
    // The limit is the daemon's for every file, its log file too: keep
    // that small (emptied below) so it is not what the limit stops.
    env.daemon_env.push(("TUFD_LOG".into(), "info".into()));
    let log = env.path().join("state/audit.log");
    let d = env.start();
    for k in ["a1", "a2"] {
        env.tufctl(&["key", "generate", k]).ok();
    }
    let before = std::fs::read(&log).unwrap();
    assert_eq!(audit_lines(&log).len(), 4, "begin and end per key");
    std::fs::File::create(env.path().join("tufd.log")).unwrap();
    limit_file_size(d.pid(), before.len() as libc::rlim_t + 60);
    let out = env.tufctl(&["key", "generate", "a3"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}\n{}", d.log());
    assert!(
        out.stderr.contains("audit log cannot be written"),
        "{out:?}\n{}",
        d.log()
    );
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "the part of the line written is cut off"
    );
    let out = audit_verify(&log);
    assert!(out.status.success(), "{out:?}");
    limit_file_size(d.pid(), libc::RLIM_INFINITY);
    env.tufctl(&["key", "generate", "a4"]).ok();
    let lines = audit_lines(&log);
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[4]["seq"], 5, "the chain continues: {lines:?}");
    env.tufctl(&["audit", "verify"]).ok();
    d.stop();

    // What a daemon killed mid-write leaves: half of seq 7.
    let fragment = r#"{"seq":7,"prev":"0123456789abcdef","time":"2026-"#;
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(fragment);
    std::fs::write(&log, &text).unwrap();
    let out = audit_verify(&log);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("line 7: incomplete"), "{out:?}");

    let d = env.start();
    assert!(
        d.log().contains("the last line is incomplete"),
        "the cut is logged: {}",
        d.log()
    );
    let lines = audit_lines(&log);
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(lines[6]["phase"], "recovery", "{lines:?}");
    assert_eq!(lines[6]["operation"], "audit-recover");
    let detail = lines[6]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "cut {} incomplete byte(s) after seq 6",
            fragment.len()
        )),
        "{detail}"
    );
    env.tufctl(&["key", "generate", "a5"]).ok();
    let out = env.tufctl(&["audit", "verify"]);
    assert!(out.ok().contains("seq 1..9"), "{out:?}");
    d.stop();
    let out = audit_verify(&log);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains("seq 1..9"), "{out:?}");
}

/// A rotated log verifies; with its two oldest files deleted, both
/// `tufd --audit-verify` and `tufctl audit verify` fail naming the missing
/// seqs (and the daemon refuses to start on it).
#[test]
fn deleting_the_oldest_rotated_files_is_detected() {
    let env = TestEnv::new();
    let log = env.path().join("state/audit.log");
    let config = format!("{}[audit]\nrotate_bytes = 600\n", env.config());
    let d = env.start_with(&config);
    for i in 0..6 {
        env.tufctl(&["key", "generate", &format!("k{i}")]).ok();
    }
    let out = env.tufctl(&["audit", "verify"]);
    assert!(out.ok().contains("seq 1..12"), "{out:?}");
    let out = audit_verify(&log);
    assert!(out.status.success(), "{out:?}");
    let rotated = rotated_files(&env);
    assert!(rotated.len() >= 3, "{rotated:?}");
    // The third file's first line is the first one kept.
    let kept = std::fs::read_to_string(&rotated[2]).unwrap();
    let first: serde_json::Value = serde_json::from_str(kept.lines().next().unwrap()).unwrap();
    let missing = format!("seq 1..{} missing", first["seq"].as_u64().unwrap() - 1);
    std::fs::remove_file(&rotated[0]).unwrap();
    std::fs::remove_file(&rotated[1]).unwrap();

    let out = audit_verify(&log);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains(&missing), "{missing}: {out:?}");
    let out = env.tufctl(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains(&missing), "{missing}: {out:?}");
    d.stop();
    let err = Daemon::try_start(&env, &config)
        .err()
        .expect("refused to start");
    assert!(err.contains(&missing), "{err}");
}

/// `tufd --audit-prune-before SEQ` removes the oldest rotated files after
/// recording the pruning in the chain: both verifiers pass afterwards and
/// the daemon starts; it is refused while the daemon runs.
#[test]
fn pruning_the_oldest_files_is_recorded_and_verifies() {
    let env = TestEnv::new();
    let log = env.path().join("state/audit.log");
    let config = format!("{}[audit]\nrotate_bytes = 600\n", env.config());
    let d = env.start_with(&config);
    for i in 0..6 {
        env.tufctl(&["key", "generate", &format!("k{i}")]).ok();
    }
    let rotated = rotated_files(&env);
    assert!(rotated.len() >= 3, "{rotated:?}");
    let last_removed: u64 = rotated[1]
        .to_string_lossy()
        .rsplit('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let before = (last_removed + 1).to_string();
    let prune = || {
        CmdOutput::from(
            Command::new(binary("tufd"))
                .arg("--config")
                .arg(env.path().join("tufd.toml"))
                .args(["--audit-prune-before", &before])
                .env("TUFD_LOG", "warn")
                .output()
                .unwrap(),
        )
    };
    let out = prune();
    assert_eq!(out.status.code(), Some(1), "the daemon runs: {out:?}");
    d.stop();
    let out = prune();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("the chain starts at seq {before} now")),
        "{out:?}"
    );
    assert_eq!(rotated_files(&env), rotated[2..].to_vec());
    let out = audit_verify(&log);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains(&format!("seq {before}..13")), "{out:?}");
    let _d = env.start_with(&config);
    let out = env.tufctl(&["audit", "verify"]);
    assert!(out.ok().contains(&format!("seq {before}..13")), "{out:?}");
}

fn rotated_files(env: &TestEnv) -> Vec<std::path::PathBuf> {
    let mut rotated: Vec<_> = std::fs::read_dir(env.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .strip_prefix("audit.log.")
                .is_some_and(|n| n.parse::<u64>().is_ok())
        })
        .collect();
    rotated.sort();
    rotated
}

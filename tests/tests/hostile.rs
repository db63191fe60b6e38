//! A hostile member of the socket's group: crafted requests through the
//! real socket (tufctl, or a raw client where tufctl refuses early) must
//! not crash, freeze or disarm the daemon.

use std::time::{Duration, Instant};
use tufd_tests::daemon::TestEnv;
use tufd_tests::hostile::{memory_kib, pbkdf2_key_file, scrypt_key_file, status_latency};

/// Loads `file` with a passphrase, returning how long the refusal took
/// and what tufctl printed.
fn load(env: &TestEnv, file: &std::path::Path) -> (Duration, tufd_tests::daemon::CmdOutput) {
    let start = Instant::now();
    let out = env.tufctl_env(
        &["key", "load", file.to_str().unwrap(), "--name", "x"],
        &[("TUFCTL_KEY_PASSPHRASE", "secretpass")],
    );
    (start.elapsed(), out)
}

#[test]
fn costly_key_files_are_refused_quickly_while_the_daemon_keeps_answering() {
    let env = TestEnv::new();
    let daemon = env.start();
    let idle_latency = status_latency(&env, 5);
    let idle_memory = memory_kib(daemon.pid());

    let attacks = [
        (
            "scrypt N=2^40",
            scrypt_key_file(1 << 40, 8, 1),
            "scrypt cost N",
        ),
        (
            "scrypt N=2^20 r=8",
            scrypt_key_file(1 << 20, 8, 1),
            "scrypt cost N",
        ),
        (
            "PBKDF2 2^32-1",
            pbkdf2_key_file(u32::MAX),
            "PBKDF2 iteration count",
        ),
    ];
    for (what, text, parameter) in attacks {
        let file = env.path().join("crafted.key");
        std::fs::write(&file, text).unwrap();
        // Four attackers at once, each sending the file again and again,
        // while an honest caller asks for the status.
        let attackers: Vec<_> = (0..4)
            .map(|_| {
                let file = file.clone();
                std::thread::spawn({
                    let socket = env.socket();
                    let dir = env.path().to_owned();
                    move || {
                        (0..5)
                            .map(|_| {
                                let start = Instant::now();
                                let out = std::process::Command::new(tufd_tests::daemon::binary(
                                    "tufctl",
                                ))
                                .env("TUFD_SOCKET", &socket)
                                .env("TUFCTL_KEY_PASSPHRASE", "secretpass")
                                .current_dir(&dir)
                                .args(["key", "load", file.to_str().unwrap(), "--name", "x"])
                                .stdin(std::process::Stdio::null())
                                .output()
                                .unwrap();
                                (start.elapsed(), out)
                            })
                            .collect::<Vec<_>>()
                    }
                })
            })
            .collect();
        let latency = status_latency(&env, 10);
        for a in attackers {
            for (took, out) in a.join().unwrap() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(!out.status.success(), "{what}: loaded?! {out:?}");
                assert!(
                    stderr.contains(parameter) && stderr.contains("limit"),
                    "{what}: the refusal names {parameter}: {stderr}"
                );
                assert!(took < Duration::from_secs(3), "{what}: took {took:?}");
            }
        }
        let (took, out) = load(&env, &file);
        assert!(!out.status.success());
        let memory = memory_kib(daemon.pid());
        eprintln!(
            "MEASURE {what}: status latency max {latency:?} (idle {idle_latency:?}); \
             tufd VmHWM {} KiB VmRSS {} KiB (idle {} / {}); one refusal {took:?}",
            memory.0, memory.1, idle_memory.0, idle_memory.1
        );
        assert!(
            latency < Duration::from_secs(1),
            "{what}: tufctl status took {latency:?}"
        );
        assert!(
            memory.0 < 200 * 1024,
            "{what}: tufd peaked at {} KiB",
            memory.0
        );
    }
    // Still alive and stops on SIGTERM.
    let status = daemon.stop();
    assert!(status.success(), "tufd exit: {status}");
}

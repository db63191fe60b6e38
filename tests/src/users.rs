//! Real local users for policy tests: created with `useradd`, removed with
//! `userdel` when dropped, and tufctl run as them with `setpriv`.

use crate::daemon::{CmdOutput, TestEnv, binary};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether this process can create users (tests that need them skip,
/// saying so, when not root).
pub fn can_create_users() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A user that exists for the life of the value.
pub struct TestUser {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// A home directory the user owns (tufctl's working directory).
    pub home: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn id(flag: &str, name: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, name])
        .output()
        .expect("id runs");
    assert!(out.status.success(), "id {flag} {name}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number")
}

impl TestUser {
    /// Creates a user named `tp<pid><n><tag>` (unique across parallel
    /// tests) with its own group and a home inside `env`'s directory.
    pub fn create(env: &TestEnv, tag: &str) -> TestUser {
        let name = format!(
            "tp{}{}{tag}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let home = env.path().join(format!("home-{name}"));
        // Parallel tests contend for /etc/passwd's lock: retry a little.
        let mut tries = 0;
        loop {
            let out = Command::new("useradd")
                .args([
                    "--no-create-home",
                    "--user-group",
                    "--shell",
                    "/usr/sbin/nologin",
                ])
                .arg("--home-dir")
                .arg(&home)
                .arg(&name)
                .output()
                .expect("useradd runs");
            if out.status.success() {
                break;
            }
            tries += 1;
            assert!(tries < 50, "useradd {name}: {out:?}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let user = TestUser {
            uid: id("-u", &name),
            gid: id("-g", &name),
            name,
            home,
        };
        std::fs::create_dir_all(&user.home).unwrap();
        std::os::unix::fs::chown(&user.home, Some(user.uid), Some(user.gid)).unwrap();
        user
    }

    /// Runs tufctl as this user (uid, gid, no supplementary groups) against
    /// `env`'s socket, in the user's home.
    pub fn tufctl(&self, env: &TestEnv, args: &[&str], extra_env: &[(&str, &str)]) -> CmdOutput {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(tufctl_for_everyone(env))
            .args(args)
            .env("TUFD_SOCKET", env.socket())
            .env("HOME", &self.home)
            .env_remove("TUFCTL_KEY_PASSPHRASE")
            .env_remove("TUFCTL_PIN")
            .current_dir(&self.home)
            .stdin(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("setpriv runs");
        CmdOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for _ in 0..50 {
            match Command::new("userdel").arg(&self.name).output() {
                Ok(o) if o.status.success() => return,
                _ => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
    }
}

/// A copy of tufctl inside `env`'s directory, executable by every user
/// (the build directory may be private, e.g. under /root).
fn tufctl_for_everyone(env: &TestEnv) -> PathBuf {
    let copy = env.path().join("bin/tufctl");
    if !copy.exists() {
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        let tmp = env.path().join("bin/.tufctl.tmp");
        std::fs::copy(binary("tufctl"), &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            copy.parent().unwrap(),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::rename(&tmp, &copy).unwrap();
    }
    copy
}

/// Lets every user reach `env`'s socket (test directories are private to
/// root): the daemon's policy, not file modes, is what these tests check.
pub fn open_socket_to_everyone(env: &TestEnv) {
    let chmod = |p: &Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod(env.path(), 0o711);
    chmod(env.socket().parent().unwrap(), 0o711);
    chmod(&env.socket(), 0o666);
}

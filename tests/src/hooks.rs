//! The daemon's test pause points (daemon/src/testhook.rs) driven from a
//! test: arm points for the next daemon started from an environment, wait
//! until it stops at one, let it go on.

use crate::daemon::{Daemon, TestEnv};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Pause points armed in a [`TestEnv`]; their files live in `<env>/hooks`.
pub struct PausePoints {
    dir: PathBuf,
}

impl PausePoints {
    /// Arms `points` (comma-separated) for the daemons `env` starts next.
    pub fn arm(env: &mut TestEnv, points: &str) -> Self {
        let dir = env.path().join("hooks");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("hook directory");
        Self::disarm(env);
        env.daemon_env.extend([
            ("TUFD_TEST_PAUSE".to_owned(), points.to_owned()),
            ("TUFD_TEST_HOOK_DIR".to_owned(), dir.display().to_string()),
        ]);
        Self { dir }
    }

    /// Disarms the points of `env`: the daemons it starts next run through.
    pub fn disarm(env: &mut TestEnv) {
        env.daemon_env
            .retain(|(k, _)| !matches!(k.as_str(), "TUFD_TEST_PAUSE" | "TUFD_TEST_HOOK_DIR"));
    }

    /// Whether a daemon is (or was) held at `point`.
    pub fn is_paused(&self, point: &str) -> bool {
        self.dir.join(format!("{point}.paused")).exists()
    }

    /// Waits (at most 20 s) until `daemon` is held at `point`.
    pub fn wait(&self, point: &str, daemon: &Daemon) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.is_paused(point) {
            assert!(
                Instant::now() < deadline,
                "the daemon never paused at {point}:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lets the daemon held at `point` go on.
    pub fn release(&self, point: &str) {
        std::fs::write(self.dir.join(format!("{point}.go")), b"").expect("hook file");
    }
}

//! Pause points for end-to-end tests that force an interleaving or kill the
//! daemon at a set point. Only builds with the `test-hooks` cargo feature
//! (turned on by the tests crate) honour them, and only when the daemon's
//! environment sets both `TUFD_TEST_PAUSE` (comma-separated point names) and
//! `TUFD_TEST_HOOK_DIR`; a production build ignores both variables.
//!
//! At a listed point, the first time it is reached, the daemon creates
//! `<dir>/<point>.paused` and waits until `<dir>/<point>.go` exists (the test
//! may instead kill it there). Later passes through the point do not stop.
//!
//! Points: `after-read` (an intent has a fresh read, nothing signed yet),
//! `after-publish` (the server accepted the update, nothing read back yet),
//! `read-back` (the repository was read back, not yet judged or stored),
//! `store-write` (the trust store's temporary file exists, not yet renamed),
//! `confirmed` (a sign prepared on the last read-back, which the server was
//! just seen to still serve; nothing published yet), `joined` (signs just
//! joined such a sign, which is about to wait for more); TUF 1.0:
//! `tuf1-checked` (a request the policy allowed, its repository not opened
//! yet), `tuf1-opened` (a change holds its opened repository, nothing
//! written yet); `audit-sync` (a sync of the audit log is about to
//! fdatasync: a disk that does not answer).
//!
//! `TUFD_TEST_IDLE_TIMEOUT_MS` (same builds only) shortens the socket's idle
//! timeout (120 s), so that a test can hold a request longer than it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

struct Hooks {
    dir: PathBuf,
    points: Vec<String>,
    done: Mutex<HashSet<String>>,
}

fn hooks() -> Option<&'static Hooks> {
    if !cfg!(feature = "test-hooks") {
        return None;
    }
    static HOOKS: OnceLock<Option<Hooks>> = OnceLock::new();
    HOOKS
        .get_or_init(|| {
            let points = std::env::var("TUFD_TEST_PAUSE").ok()?;
            let dir = std::env::var_os("TUFD_TEST_HOOK_DIR")?;
            Some(Hooks {
                dir: PathBuf::from(dir),
                points: points.split(',').map(|p| p.trim().to_owned()).collect(),
                done: Mutex::new(HashSet::new()),
            })
        })
        .as_ref()
}

/// The files of `point` when it must pause now (first pass), else `None`.
fn arm(point: &str) -> Option<(PathBuf, PathBuf)> {
    let h = hooks()?;
    if !h.points.iter().any(|p| p == point) {
        return None;
    }
    if !h
        .done
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(point.to_owned())
    {
        return None;
    }
    let paused = h.dir.join(format!("{point}.paused"));
    let _ = std::fs::write(&paused, b"");
    tracing::warn!(point, "test hook: paused");
    Some((paused, h.dir.join(format!("{point}.go"))))
}

/// Pauses a blocking caller at `point` (see the module doc).
pub fn pause(point: &str) {
    if let Some((_, go)) = arm(point) {
        while !go.exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Pauses an async caller at `point` (see the module doc).
pub async fn pause_async(point: &str) {
    if let Some((_, go)) = arm(point) {
        while !go.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The socket's idle timeout a test asked for (`TUFD_TEST_IDLE_TIMEOUT_MS`),
/// in builds with the `test-hooks` feature; `None` otherwise.
pub fn idle_timeout() -> Option<Duration> {
    if !cfg!(feature = "test-hooks") {
        return None;
    }
    let ms = std::env::var("TUFD_TEST_IDLE_TIMEOUT_MS").ok()?;
    ms.parse().ok().map(Duration::from_millis)
}

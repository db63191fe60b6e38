//! A bounded pool for CPU-heavy request work (key-file decryption).
//!
//! Token calls block on a device and run on tokio's blocking threads;
//! work that burns a core (a KDF) runs here instead, at most
//! [`workers`] at a time, so that requests in flight can never occupy
//! every core: the socket keeps answering and SIGTERM is handled while a
//! costly request waits its turn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// How many CPU-heavy jobs run at once: one core less than the machine
/// has (at least one), so one core stays free for the socket.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

fn permits() -> &'static Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS.get_or_init(|| Arc::new(Semaphore::new(workers())))
}

/// Jobs that may wait for a worker; more are refused at once.
pub const MAX_WAITING: usize = 32;

/// Why a job did not produce its result.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// [`MAX_WAITING`] jobs already wait for a worker.
    #[error(
        "the daemon is busy with {MAX_WAITING} costly requests (key-file decryption); retry later"
    )]
    Busy,
    /// The job panicked or the pool shut down.
    #[error("a CPU worker failed: {0}")]
    Failed(String),
}

/// Counts a job among the waiting ones while it lives.
struct Waiting;

static WAITING: AtomicUsize = AtomicUsize::new(0);

impl Waiting {
    fn enter() -> Option<Self> {
        let before = WAITING.fetch_add(1, Ordering::SeqCst);
        if before >= MAX_WAITING {
            WAITING.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Waiting)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `f` on a blocking thread once one of the [`workers`] permits is
/// free; waiting for a permit does not hold a runtime thread. At most
/// [`MAX_WAITING`] jobs wait; more are refused with [`CpuError::Busy`].
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, CpuError> {
    let waiting = Waiting::enter().ok_or(CpuError::Busy)?;
    let permit = permits()
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| CpuError::Failed(e.to_string()))?;
    drop(waiting);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(|e| CpuError::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// The pool is process-wide: its tests run one at a time.
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuses_jobs_beyond_the_queue() {
        let _serial = SERIAL.lock().await;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let jobs: Vec<_> = (0..workers() + MAX_WAITING)
            .map(|_| {
                let rx = rx.clone();
                tokio::spawn(run(move || {
                    let _ = rx.lock().unwrap().recv();
                }))
            })
            .collect();
        // Wait until every worker is taken and the queue is full (a fixed
        // sleep is not enough on a loaded machine: a job accepted into a
        // queue that is not full yet would wait forever).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while WAITING.load(Ordering::SeqCst) < MAX_WAITING {
            assert!(std::time::Instant::now() < deadline, "queue never filled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(matches!(run(|| ()).await, Err(CpuError::Busy)));
        for _ in 0..jobs.len() {
            tx.send(()).unwrap();
        }
        for j in jobs {
            j.await.unwrap().unwrap();
        }
        assert!(run(|| ()).await.is_ok(), "room again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_jobs_than_workers_at_once() {
        let _serial = SERIAL.lock().await;
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static PEAK: AtomicUsize = AtomicUsize::new(0);
        let jobs: Vec<_> = (0..(workers() + 3))
            .map(|_| {
                tokio::spawn(run(|| {
                    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                    PEAK.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    RUNNING.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for j in jobs {
            j.await.unwrap().unwrap();
        }
        assert_eq!(PEAK.load(Ordering::SeqCst), workers());
    }
}

//! A bounded pool for CPU-heavy request work (key-file decryption).
//!
//! Token calls block on a device and run on tokio's blocking threads;
//! work that burns a core (a KDF) runs here instead, at most
//! [`workers`] at a time, so that requests in flight can never occupy
//! every core: the socket keeps answering and SIGTERM is handled while a
//! costly request waits its turn.

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

/// Why a job did not produce its result.
#[derive(Debug, thiserror::Error)]
#[error("a CPU worker failed: {0}")]
pub struct CpuError(String);

/// Runs `f` on a blocking thread once one of the [`workers`] permits is
/// free; waiting for a permit does not hold a runtime thread.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, CpuError> {
    let permit = permits()
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| CpuError(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(|e| CpuError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_jobs_than_workers_at_once() {
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

//! One byte budget for all pull-time verifications at once.
//!
//! `[verification] max_bytes` bounds what one client update fetches; the
//! mirror runs up to `[mirror] max_requests` of them at once (and `tufctl
//! verify` more), each for a repository the client names, so their sum
//! would be bounded only by their product. [`SharedBytes`]
//! (`[verification] max_total_bytes`) bounds the sum: before each fetch an
//! update reserves the most that fetch may bring (the file's listed length
//! or its limit), keeps what actually arrived once it is in, and gives
//! everything back when the update ends ([`Held`] is dropped). Bytes are
//! counted in KiB, the semaphore's permits.
//!
//! An update that finds the total in use waits for room at most a bounded
//! time (a quarter of `[verification] deadline_seconds`), then is refused
//! as busy ([`TrustError::Busy`]): a tag in enforced mode is then refused,
//! never verified. A file whose limit alone is over the total is refused
//! at once.

use crate::trust::TrustError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes per permit.
const UNIT: u64 = 1024;

/// The daemon-wide budget of bytes held by pull-time verifications.
#[derive(Debug, Clone)]
pub struct SharedBytes {
    permits: Arc<Semaphore>,
    total: u64,
    wait: Duration,
}

/// Permits for `bytes`, rounded up.
fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

impl SharedBytes {
    /// A budget of `total` bytes (rounded down to whole KiB); an update
    /// waits at most `wait` for room.
    pub fn new(total: u64, wait: Duration) -> Self {
        let permits = usize::try_from(total / UNIT)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        SharedBytes {
            permits: Arc::new(Semaphore::new(permits)),
            total: permits as u64 * UNIT,
            wait,
        }
    }

    /// The total, in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes not reserved by any update right now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }

    /// An empty holding for one client update.
    pub fn hold(&self) -> Held {
        Held {
            shared: self.clone(),
            permit: None,
        }
    }
}

/// The bytes one client update holds; given back when dropped.
#[derive(Debug)]
pub struct Held {
    shared: SharedBytes,
    permit: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.permit.as_ref().map_or(0, |p| p.num_permits() as u64) * UNIT
    }

    /// Reserves room for a fetch of up to `bytes` (`what` of `gun`, for
    /// messages), waiting for it at most the configured time.
    pub async fn reserve(&mut self, gun: &str, what: &str, bytes: u64) -> Result<(), TrustError> {
        let n = units(bytes);
        let total = self.shared.total;
        if n * UNIT > total {
            return Err(TrustError::Refused(format!(
                "{gun}: reading {what} may take {bytes} bytes, more than all pull-time verifications together may hold ({total} bytes, [verification] max_total_bytes); raise max_total_bytes"
            )));
        }
        let Ok(n32) = u32::try_from(n) else {
            return Err(TrustError::Internal(format!("{bytes} bytes to reserve")));
        };
        let wait = self.shared.wait;
        let acquired =
            tokio::time::timeout(wait, self.shared.permits.clone().acquire_many_owned(n32)).await;
        let permit = match acquired {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(TrustError::Internal("verification budget closed".into())),
            Err(_) => {
                return Err(TrustError::Busy(format!(
                    "{gun}: the daemon is busy verifying other repositories: reading {what} needs up to {bytes} bytes and all pull-time verifications together may hold {total} bytes ([verification] max_total_bytes), which stayed in use for {} ms; try again shortly, or raise max_total_bytes",
                    wait.as_millis()
                )));
            }
        };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        Ok(())
    }

    /// After a fetch reserved with `reserved` bytes brought `used`: keeps
    /// the room for `used`, gives the rest back.
    pub fn settle(&mut self, reserved: u64, used: u64) {
        let back = units(reserved).saturating_sub(units(used));
        if let (Some(held), Ok(back)) = (&mut self.permit, usize::try_from(back)) {
            drop(held.split(back.min(held.num_permits())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reserves_keeps_what_arrived_and_gives_back_on_drop() {
        let shared = SharedBytes::new(10 * UNIT, Duration::from_millis(50));
        assert_eq!(shared.total(), 10 * UNIT);
        let mut a = shared.hold();
        a.reserve("a", "timestamp.json", 6 * UNIT).await.unwrap();
        assert_eq!(shared.available(), 4 * UNIT);
        // 6 KiB reserved, 1 byte arrived: 1 KiB kept.
        a.settle(6 * UNIT, 1);
        assert_eq!((a.bytes(), shared.available()), (UNIT, 9 * UNIT));
        a.reserve("a", "snapshot.json", 8 * UNIT).await.unwrap();
        assert_eq!(shared.available(), UNIT);

        // Another update waits its bounded time, then is busy.
        let mut b = shared.hold();
        let started = std::time::Instant::now();
        let e = b
            .reserve("b", "timestamp.json", 2 * UNIT)
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(matches!(e, TrustError::Busy(_)), "{e}");
        assert!(e.to_string().contains("max_total_bytes"), "{e}");
        // What fits is granted at once.
        b.reserve("b", "timestamp.json", UNIT).await.unwrap();
        assert_eq!(shared.available(), 0);

        // A waiting update gets the room once another one ends.
        let waiter = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut c = SharedBytes {
                    wait: Duration::from_secs(5),
                    ..shared
                }
                .hold();
                c.reserve("c", "targets.json", 5 * UNIT).await.map(|_| c)
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(a);
        let c = waiter.await.unwrap().unwrap();
        assert_eq!(c.bytes(), 5 * UNIT);
        drop((b, c));
        assert_eq!(shared.available(), 10 * UNIT);

        // More than the total is refused at once, whatever is free.
        let e = shared
            .hold()
            .reserve("d", "root.json", 11 * UNIT)
            .await
            .unwrap_err();
        assert!(matches!(e, TrustError::Refused(_)), "{e}");
        assert!(e.to_string().contains("raise max_total_bytes"), "{e}");
    }
}

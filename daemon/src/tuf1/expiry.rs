//! How long each role's metadata stays valid, and when the daemon signs it
//! again.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tufd_tuf::tuf1::Expires;

use super::error::RepoError;

/// How long each role's metadata stays valid when it is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryPolicy {
    /// Root, seconds.
    pub root: u64,
    /// Targets (and delegated roles), seconds.
    pub targets: u64,
    /// Snapshot, seconds.
    pub snapshot: u64,
    /// Timestamp, seconds.
    pub timestamp: u64,
}

impl Default for ExpiryPolicy {
    /// One year, three months, a week, a day.
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            root: 365 * DAY,
            targets: 90 * DAY,
            snapshot: 7 * DAY,
            timestamp: DAY,
        }
    }
}

impl ExpiryPolicy {
    /// The period of `role` (delegated roles: the targets period).
    pub fn period(&self, role: &str) -> Duration {
        Duration::from_secs(match role {
            "root" => self.root,
            "snapshot" => self.snapshot,
            "timestamp" => self.timestamp,
            _ => self.targets,
        })
    }

    /// Sets one role's period; an error names the roles there are.
    pub fn set(&mut self, role: &str, seconds: u64) -> Result<(), RepoError> {
        if seconds == 0 {
            return Err(RepoError::InvalidRequest(format!(
                "expiry of {role} must be at least one second"
            )));
        }
        match role {
            "root" => self.root = seconds,
            "targets" => self.targets = seconds,
            "snapshot" => self.snapshot = seconds,
            "timestamp" => self.timestamp = seconds,
            other => {
                return Err(RepoError::InvalidRequest(format!(
                    "no role {other:?}: expiry is set for root, targets, snapshot or timestamp"
                )));
            }
        }
        Ok(())
    }

    /// When metadata of `role` signed at `now` expires.
    pub fn expires(&self, role: &str, now: OffsetDateTime) -> Expires {
        Expires::at(now + self.period(role))
    }

    /// When metadata of `role` expiring at `expires` is due to be signed
    /// again: half its period before it expires.
    pub fn due(&self, role: &str, expires: Expires) -> OffsetDateTime {
        expires.time() - self.period(role) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_half_a_period_before_expiry() {
        let e = ExpiryPolicy {
            timestamp: 10,
            ..Default::default()
        };
        let exp = Expires::at(time::macros::datetime!(2030-01-01 00:00:10 UTC));
        assert_eq!(
            e.due("timestamp", exp),
            time::macros::datetime!(2030-01-01 00:00:05 UTC)
        );
        let mut e = ExpiryPolicy::default();
        assert!(e.set("bins", 5).is_err());
        assert!(e.set("root", 0).is_err());
        e.set("root", 7).unwrap();
        assert_eq!(e.period("root"), Duration::from_secs(7));
    }
}

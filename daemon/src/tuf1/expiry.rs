//! How long each role's metadata stays valid, and when the daemon signs it
//! again.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tufd_tuf::tuf1::Expires;

use super::error::RepoError;

/// How long each role's metadata stays valid when it is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiryPolicy {
    /// Root, seconds.
    pub root: u64,
    /// Targets (and delegated roles), seconds.
    pub targets: u64,
    /// Snapshot, seconds.
    pub snapshot: u64,
    /// Timestamp, seconds.
    pub timestamp: u64,
    /// Delegated roles with their own period (seconds); `bins` stands for
    /// every hash bin. Others have the targets period.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub delegated: BTreeMap<String, u64>,
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
            delegated: BTreeMap::new(),
        }
    }
}

impl ExpiryPolicy {
    /// The period of `role` (delegated roles: their own, else the targets
    /// period; a hash bin `bins-…`: that of `bins`).
    pub fn period(&self, role: &str) -> Duration {
        let delegated = |name: &str| {
            let family = match name.split_once('-') {
                Some((prefix, _)) if prefix == super::edit::BINS_PREFIX => prefix,
                _ => name,
            };
            self.delegated.get(family).copied().unwrap_or(self.targets)
        };
        Duration::from_secs(match role {
            "root" => self.root,
            "targets" => self.targets,
            "snapshot" => self.snapshot,
            "timestamp" => self.timestamp,
            other => delegated(other),
        })
    }

    /// Gives delegated role `name` (or `bins`, every hash bin) its own
    /// period.
    pub fn set_delegated(&mut self, name: &str, seconds: u64) -> Result<(), RepoError> {
        if seconds == 0 {
            return Err(RepoError::InvalidRequest(format!(
                "expiry of {name} must be at least one second"
            )));
        }
        self.delegated.insert(name.to_owned(), seconds);
        Ok(())
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
            super::edit::BINS_PREFIX => return self.set_delegated(role, seconds),
            other => {
                return Err(RepoError::InvalidRequest(format!(
                    "no role {other:?}: expiry is set for root, targets, snapshot, timestamp or bins (delegated roles: `tuf delegate --expires`)"
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
        assert!(e.set("nope", 5).is_err());
        assert!(e.set("root", 0).is_err());
        e.set("root", 7).unwrap();
        assert_eq!(e.period("root"), Duration::from_secs(7));
        e.set_delegated("team", 9).unwrap();
        e.set("bins", 11).unwrap();
        assert_eq!(e.period("team"), Duration::from_secs(9));
        assert_eq!(e.period("bins-3ff"), Duration::from_secs(11));
        assert_eq!(e.period("other"), e.period("targets"));
    }
}

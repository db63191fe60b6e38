//! Which of the mirror's refusals are recorded, and how often: the mirror
//! faces the network, and a record per refused request would let anyone
//! who can reach it fill the disk, after which the audit log cannot be
//! written and tufd refuses to sign (see `service::gate`).
//!
//! - **Load shedding** (`429 TOOMANYREQUESTS`) says nothing about a
//!   client's rights: logged, not audited.
//! - **Not a pull API request** (a path outside `/v2/`, a malformed name,
//!   tag or digest): nothing was asked that policy could refuse; logged,
//!   not audited.
//! - **Upstream trouble** (not found, timeouts, errors): logged, not
//!   audited.
//! - **Policy refusals** (`403 DENIED`: a tag the trust data does not
//!   allow, a registry that is not an upstream) and **integrity refusals**
//!   (`502 MANIFEST_INVALID`: upstream content that does not match its
//!   digest or its media type) are what the audit is for: audited, once
//!   per client address and request per [`AUDIT_INTERVAL`], the repeats
//!   counted and recorded in one line when the interval ends; at most
//!   [`AUDIT_REQUESTS`] distinct (address, request) pairs are recorded one
//!   by one per interval, the rest in one count. A client thus writes at
//!   most about 2 × [`AUDIT_REQUESTS`] + 1 lines a minute, however fast it
//!   asks.
//!
//! The daemon log gets at most [`LOG_LINES`] refusals per [`LOG_INTERVAL`],
//! then one line counting those it left out.

use crate::audit::{AuditLog, CallerRecord, Entry, Phase};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The interval over which repeated audited refusals are aggregated.
pub const AUDIT_INTERVAL: Duration = Duration::from_secs(60);
/// Distinct (client address, request) refusals audited one by one per
/// [`AUDIT_INTERVAL`].
pub const AUDIT_REQUESTS: usize = 64;
/// The interval of the daemon log's refusal budget.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Refusals logged one by one per [`LOG_INTERVAL`].
pub const LOG_LINES: u64 = 20;

/// Whether a refusal (`status`, OCI `code`) is audited; see the module
/// documentation for why each class is or is not.
pub fn audited(status: u16, code: &str) -> bool {
    matches!((status, code), (403, "DENIED") | (502, "MANIFEST_INVALID"))
}

/// One (client address, request) in the current audit interval.
struct Seen {
    repository: Option<String>,
    /// Refusals after the recorded one.
    repeated: u64,
}

#[derive(Default)]
struct State {
    audit_started: Option<Instant>,
    seen: HashMap<(IpAddr, String), Seen>,
    /// Refusals beyond [`AUDIT_REQUESTS`] distinct ones.
    overflow: u64,
    log_started: Option<Instant>,
    logged: u64,
    unlogged: u64,
}

/// The mirror's refusal recorder: rate-limited log lines and aggregated
/// audit records.
pub struct Refusals {
    audit: Option<Arc<AuditLog>>,
    state: Mutex<State>,
}

impl Refusals {
    /// A recorder writing to `audit` when it is on.
    pub fn new(audit: Option<Arc<AuditLog>>) -> Self {
        Refusals {
            audit,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs (within the budget) and, when its class is audited and it is
    /// not a repeat in this interval, audits a refusal of `path` (the
    /// request's path and query) to `peer`.
    pub fn refused(
        &self,
        peer: SocketAddr,
        path: &str,
        repository: Option<String>,
        (status, code, message): (u16, &str, &str),
    ) {
        let now = Instant::now();
        let (log, record) = {
            let mut s = self.state();
            let log_started = *s.log_started.get_or_insert(now);
            if now - log_started >= LOG_INTERVAL {
                self.flush_log(&mut s, now);
            }
            let log = s.logged < LOG_LINES;
            if log {
                s.logged += 1;
            } else {
                s.unlogged += 1;
            }
            let record = audited(status, code) && self.audit.is_some() && {
                s.audit_started.get_or_insert(now);
                let full = s.seen.len() >= AUDIT_REQUESTS;
                let key = (peer.ip(), path.to_owned());
                match s.seen.get_mut(&key) {
                    Some(seen) => {
                        seen.repeated += 1;
                        false
                    }
                    None if full => {
                        s.overflow += 1;
                        false
                    }
                    None => {
                        s.seen.insert(
                            key,
                            Seen {
                                repository: repository.clone(),
                                repeated: 0,
                            },
                        );
                        true
                    }
                }
            };
            (log, record)
        };
        if log {
            tracing::warn!(caller = %peer, %path, %status, message, "mirror refused a request");
        }
        if record {
            self.write(
                Some(peer.to_string()),
                repository,
                path,
                format!("denied: {message}"),
            );
        }
    }

    /// Writes what the intervals that ended left to say: the count of
    /// unlogged refusals, and the repeats the audit did not record one by
    /// one. Called every few seconds.
    pub fn tick(&self) {
        let now = Instant::now();
        let mut s = self.state();
        if s.log_started.is_some_and(|t| now - t >= LOG_INTERVAL) {
            self.flush_log(&mut s, now);
        }
        if s.audit_started.is_none_or(|t| now - t < AUDIT_INTERVAL) {
            return;
        }
        let seen = std::mem::take(&mut s.seen);
        let overflow = std::mem::take(&mut s.overflow);
        s.audit_started = None;
        drop(s);
        let secs = AUDIT_INTERVAL.as_secs();
        for ((ip, path), seen) in seen {
            if seen.repeated > 0 {
                self.write(
                    Some(ip.to_string()),
                    seen.repository,
                    &path,
                    format!(
                        "denied: refused {} more times in the last {secs} s (recorded once above; reasons in the daemon log)",
                        seen.repeated
                    ),
                );
            }
        }
        if overflow > 0 {
            self.write(
                None,
                None,
                "",
                format!(
                    "denied: {overflow} more refusals in the last {secs} s, of more than {AUDIT_REQUESTS} distinct requests, not recorded one by one"
                ),
            );
        }
    }

    fn flush_log(&self, s: &mut State, now: Instant) {
        if s.unlogged > 0 {
            tracing::warn!(
                refusals = s.unlogged,
                "mirror: refusals not logged one by one in the last {} s (at most {LOG_LINES} are)",
                LOG_INTERVAL.as_secs()
            );
        }
        s.log_started = Some(now);
        s.logged = 0;
        s.unlogged = 0;
    }

    /// Appends a `denied` mirror-pull record off the request's thread; a
    /// refusal is answered whether or not it could be recorded (it changes
    /// nothing), and a failed write is logged.
    fn write(
        &self,
        address: Option<String>,
        repository: Option<String>,
        path: &str,
        result: String,
    ) {
        let Some(log) = self.audit.clone() else {
            return;
        };
        let entry = Entry {
            phase: Phase::Denied,
            caller: CallerRecord {
                uid: None,
                gid: None,
                pid: None,
                exe: None,
                comm: None,
                user: None,
                address,
            },
            operation: "mirror-pull".into(),
            repositories: repository.into_iter().collect(),
            roles: Vec::new(),
            key_ids: Vec::new(),
            tags: Vec::new(),
            published: Vec::new(),
            detail: path.to_owned(),
            result,
        };
        // Written, then synced by the log's syncer with other lines.
        tokio::spawn(async move {
            match log.append_soon(entry).await {
                Ok(seq) => drop(log.sync_later(seq)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot record a mirror refusal in the audit log");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(audited(403, "DENIED"));
        assert!(audited(502, "MANIFEST_INVALID"));
        for (s, c) in [
            (429, "TOOMANYREQUESTS"),
            (404, "NOT_FOUND"),
            (400, "NAME_INVALID"),
            (400, "DIGEST_INVALID"),
            (404, "MANIFEST_UNKNOWN"),
            (502, "UNKNOWN"),
        ] {
            assert!(!audited(s, c), "{s} {c}");
        }
    }
}

//! The last verified read-back of each (small) repository, kept in memory
//! so that the next transaction's read costs one request.
//!
//! A read before a change normally loads the store, fetches
//! `timestamp.json`, takes every other file from the store by checksum and
//! verifies the whole repository again. When the server still serves the
//! very `timestamp.json` bytes this daemon verified in its last read-back,
//! that read would produce exactly the files of that read-back: the
//! timestamp names the snapshot by sha256, the snapshot names root, targets
//! and every delegation by sha256. Those files verified then; what can have
//! changed since is only the clock, so an entry is used only before the
//! earliest expiry among its roles. The read then costs the one GET, and
//! the race analysis in `txn.rs` is unchanged: the state the intent sees is
//! the state the server served at that GET, exactly as with a full read.
//!
//! An entry is also the floor and the cache by checksum of the next
//! read-back after a publish (`Engine::trusted`): it is never older than
//! the store, which a transaction writes after answering, and it is
//! dropped when a read outside a transaction stores a newer state.
//!
//! Entries are bounded ([`MAX_BYTES`] of metadata per repository,
//! [`MAX_REPOSITORIES`] repositories) so that large repositories keep no
//! memory between operations; `trust forget` drops an entry.

use super::fetch::Fetched;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tufd_tuf::Metadata;

/// Largest repository (bytes of metadata) kept.
pub const MAX_BYTES: usize = 512 << 10;

/// Most repositories kept (an arbitrary one is dropped beyond it).
pub const MAX_REPOSITORIES: usize = 16;

/// A verified read-back and the time it stops being valid.
struct Entry {
    fetched: Arc<Fetched>,
    valid_until: OffsetDateTime,
}

/// Each repository's last verified read-back.
#[derive(Default)]
pub struct Recent {
    entries: Mutex<HashMap<String, Entry>>,
}

/// Bytes of metadata `f` holds.
fn size(f: &Fetched) -> usize {
    super::fetch::metadata_bytes(&f.files)
}

/// The earliest expiry among `f`'s roles.
fn valid_until(f: &Fetched) -> OffsetDateTime {
    let repo = &f.repo;
    let mut until = repo
        .root
        .signed()
        .expires()
        .min(repo.snapshot.signed().expires())
        .min(repo.targets.signed().expires());
    if let Some(t) = &repo.timestamp {
        until = until.min(t.signed().expires());
    }
    for (_, d) in &repo.delegations {
        until = until.min(d.file.signed().expires());
    }
    until
}

impl Recent {
    /// Keeps `f`, a read-back of `gun` that verified with every delegation
    /// (a read before a change must verify strictly), if it is small.
    pub fn remember(&self, gun: &str, f: Arc<Fetched>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !f.repo.skipped.is_empty() || f.repo.timestamp.is_none() || size(&f) > MAX_BYTES {
            entries.remove(gun);
            return;
        }
        if entries.len() >= MAX_REPOSITORIES && !entries.contains_key(gun) {
            let some = entries.keys().next().cloned();
            if let Some(k) = some {
                entries.remove(&k);
            }
        }
        let valid_until = valid_until(&f);
        entries.insert(
            gun.to_owned(),
            Entry {
                fetched: f,
                valid_until,
            },
        );
    }

    /// Drops `gun`'s entry.
    pub fn forget(&self, gun: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(gun);
    }

    /// `gun`'s last verified read-back, if still valid at `now`.
    pub fn get(&self, gun: &str, now: OffsetDateTime) -> Option<Arc<Fetched>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(gun)
            .filter(|e| now < e.valid_until)
            .map(|e| Arc::clone(&e.fetched))
    }

    /// `gun`'s last verified read-back, if the server still serves its
    /// timestamp (`served`, the bytes just fetched) and it is still valid.
    pub fn current(&self, gun: &str, served: &[u8], now: OffsetDateTime) -> Option<Fetched> {
        self.get(gun, now)
            .filter(|f| f.files.timestamp == served)
            .map(|f| as_read(&f))
    }
}

/// A read that found the server still serving `f`, a kept read-back.
pub fn as_read(f: &Fetched) -> Fetched {
    Fetched {
        unchanged: true,
        ..f.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::intent::testkit::Kit;

    #[test]
    fn an_entry_stands_in_only_for_the_same_timestamp_and_before_any_expiry() {
        let kit = Kit::new();
        let repo = kit.repository(&["alice"]);
        let mut read_back = repo.clone();
        // A read-back carries the timestamp the server served.
        read_back.files.timestamp = b"{\"timestamp\":1}".to_vec().into();
        let served = read_back.files.timestamp.clone();
        let recent = Recent::default();
        let now = OffsetDateTime::now_utc();
        recent.remember("g", Arc::new(read_back.clone()));
        // verify_unpublished leaves no timestamp: such a repository is
        // never kept.
        assert!(recent.get("g", now).is_none());

        let mut with_ts = read_back;
        let day = now + time::Duration::days(1);
        with_ts.repo.timestamp =
            Some(tufd_tuf::Signed::from_parts(tufd_tuf::Timestamp::new(day), Vec::new()).unwrap());
        recent.remember("g", Arc::new(with_ts.clone()));
        let got = recent.current("g", &served, now).expect("same timestamp");
        assert!(got.unchanged);
        assert_eq!(got.files.targets, with_ts.files.targets);
        assert!(recent.current("g", b"{\"timestamp\":2}", now).is_none());
        assert!(recent.current("other", &served, now).is_none());
        assert_eq!(valid_until(&with_ts), day);
        assert!(recent.current("g", &served, day).is_none());
        recent.forget("g");
        assert!(recent.current("g", &served, now).is_none());

        let mut big = with_ts.clone();
        big.files.targets = vec![b' '; MAX_BYTES + 1].into();
        recent.remember("g", Arc::new(with_ts));
        recent.remember("g", Arc::new(big));
        assert!(
            recent.get("g", now).is_none(),
            "a large repository drops its entry"
        );
    }
}

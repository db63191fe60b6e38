//! Keeping the online roles fresh: when timestamp and snapshot are due,
//! and re-signing them.

use time::OffsetDateTime;

use super::error::RepoError;
use super::expiry::ExpiryPolicy;
use super::files::{Layout, Online, Publish};
use super::sign::{Signers, sign_snapshot, sign_timestamp};

/// What a refresh of the online roles re-signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// New timestamp version.
    pub timestamp: u64,
    /// New snapshot version, when snapshot was re-signed too.
    pub snapshot: Option<u64>,
}

/// When the online roles are next due to be re-signed.
pub fn next_due(online: &Online, expiry: &ExpiryPolicy) -> OffsetDateTime {
    let ts = expiry.due("timestamp", online.timestamp.metadata.signed.common.expires);
    let snap = expiry.due("snapshot", online.snapshot.metadata.signed.common.expires);
    ts.min(snap)
}

/// Re-signs timestamp, and snapshot (same content, next version) when it
/// is due, if either is due at `now`; with `force` timestamp always.
/// `None`: nothing was due.
pub fn refresh(
    layout: &Layout,
    online: &Online,
    expiry: &ExpiryPolicy,
    signers: &Signers,
    now: OffsetDateTime,
    force: bool,
) -> Result<Option<(Publish, Refreshed)>, RepoError> {
    if !force && next_due(online, expiry) > now {
        return Ok(None);
    }
    let root = &online.root.metadata.signed;
    let previous = &online.snapshot.metadata.signed;
    let snapshot_due = expiry.due("snapshot", previous.common.expires) <= now;
    let mut publish = Publish::default();
    let snapshot = if snapshot_due {
        let s = sign_snapshot(
            root,
            Some(previous),
            previous.meta.clone(),
            expiry,
            signers,
            now,
        )?;
        publish.files.push((
            layout.metadata_file("snapshot", s.version()),
            s.bytes.clone(),
        ));
        s
    } else {
        online.snapshot.clone()
    };
    let timestamp = sign_timestamp(
        root,
        Some(&online.timestamp.metadata.signed),
        &snapshot,
        expiry,
        signers,
        now,
    )?;
    let refreshed = Refreshed {
        timestamp: timestamp.version(),
        snapshot: snapshot_due.then(|| snapshot.version()),
    };
    publish.timestamp = Some(timestamp.bytes);
    Ok(Some((publish, refreshed)))
}

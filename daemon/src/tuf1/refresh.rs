//! Keeping the online roles fresh: when timestamp and snapshot are due,
//! and re-signing them; when targets and the delegated roles are due
//! ([`targets_roles`]; the manager re-signs those whose keys it can use
//! without a person).

use time::OffsetDateTime;
use tufd_tuf::tuf1::{Expires, Root};

use super::error::RepoError;
use super::expiry::ExpiryPolicy;
use super::files::{Layout, Online, Publish};
use super::sign::{Signers, sign_snapshot, sign_timestamp};
use super::tree::Tree;

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

/// A targets role (top-level or delegated) as the refresher sees it.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// Role name.
    pub role: String,
    /// The role that delegates to it (`root` for top-level targets).
    pub parent: String,
    /// Published version.
    pub version: u64,
    /// Published expiry.
    pub expires: Expires,
    /// Its key IDs and threshold.
    pub keyids: Vec<String>,
    /// Its threshold.
    pub threshold: u64,
    /// When it is due to be signed again (half its period before expiry).
    pub due: OffsetDateTime,
    /// Whether it is a hash bin.
    pub bin: bool,
}

/// Top-level targets and every delegated role of `tree`, with when each
/// is due.
pub fn targets_roles(tree: &Tree, root: &Root, expiry: &ExpiryPolicy) -> Vec<Scheduled> {
    let mut out = Vec::with_capacity(tree.nodes().len() + 1);
    if let (Some((version, expires)), Some(keys)) = (tree.targets, root.roles.get("targets")) {
        out.push(Scheduled {
            role: "targets".into(),
            parent: "root".into(),
            version,
            expires,
            keyids: keys.keyids.clone(),
            threshold: keys.threshold,
            due: expiry.due("targets", expires),
            bin: false,
        });
    }
    out.extend(tree.nodes().iter().map(|n| Scheduled {
        role: n.name.clone(),
        parent: n.parent.clone(),
        version: n.version,
        expires: n.expires,
        keyids: n.keyids.clone(),
        threshold: n.threshold,
        due: expiry.due(&n.name, n.expires),
        bin: n.bin,
    }));
    out
}

//! Completing a publish interrupted between a new root and
//! `timestamp.json` ([`NewRoot::BeforeTimestamp`]: the daemon lacked some
//! re-keyed role's old keys): the newest root is published, but the
//! timestamp, snapshot or targets clients find are still signed with the
//! previous root's keys, so every client rejects the repository. Found by
//! checking the published roles under the newest root, and (when they
//! fail) under the one before; completed by signing them again under the
//! newest root with the keys the daemon holds.
//!
//! [`NewRoot::BeforeTimestamp`]: super::files::NewRoot::BeforeTimestamp

use time::OffsetDateTime;
use tufd_tuf::tuf1::{Root, Snapshot, Targets, Timestamp};

use super::edit::Change;
use super::error::RepoError;
use super::expiry::ExpiryPolicy;
use super::files::{
    Layout, Published, RoleFile, check_top_level, listed_version, read_newest_root, read_role,
};
use super::sign::Signers;

/// A published repository whose newest root does not verify the roles it
/// publishes, which the root before it does verify.
pub struct Interrupted {
    /// What is published (the newest root; the other roles checked under
    /// the root before it).
    published: Published,
    /// The top-level roles that do not verify under the newest root.
    stale: Vec<&'static str>,
}

impl Interrupted {
    /// Looks for an interrupted publish in `layout` (the caller holds the
    /// writer lock). `Ok(None)`: the newest root verifies every published
    /// top-level role; an error: neither it nor the root before it does
    /// (the directory was changed outside tufd).
    pub fn find(layout: &Layout) -> Result<Option<Self>, RepoError> {
        let root = read_newest_root(layout)?;
        let version = root.version();
        if version == 1 {
            return Ok(None);
        }
        let previous: RoleFile<Root> =
            read_role(layout, &layout.metadata_file("root", version - 1))?;
        let (new, old) = (&root.metadata.signed, &previous.metadata.signed);
        // Only roles whose keys the newest root changed can fail under it
        // and not under the one before.
        let changed: Vec<&'static str> = ["timestamp", "snapshot", "targets"]
            .into_iter()
            .filter(|r| {
                let (a, b) = (old.roles.get(*r), new.roles.get(*r));
                a != b
                    || a.is_some_and(|k| {
                        k.keyids
                            .iter()
                            .any(|id| old.keys.get(id) != new.keys.get(id))
                    })
            })
            .collect();
        if changed.is_empty() {
            return Ok(None);
        }
        let timestamp: RoleFile<Timestamp> =
            read_role(layout, &layout.metadata_file("timestamp", 0))?;
        let snap_version = listed_version(
            &timestamp.metadata.signed.meta,
            "snapshot.json",
            "timestamp",
        )?;
        let snapshot: RoleFile<Snapshot> =
            read_role(layout, &layout.metadata_file("snapshot", snap_version))?;
        let targets_version =
            listed_version(&snapshot.metadata.signed.meta, "targets.json", "snapshot")?;
        let targets: RoleFile<Targets> =
            read_role(layout, &layout.metadata_file("targets", targets_version))?;
        let mut stale = Vec::new();
        for role in &changed {
            let ok = match *role {
                "timestamp" => check_top_level(new, &timestamp).is_ok(),
                "snapshot" => check_top_level(new, &snapshot).is_ok(),
                _ => check_top_level(new, &targets).is_ok(),
            };
            if !ok {
                stale.push(*role);
            }
        }
        if stale.is_empty() {
            return Ok(None);
        }
        let under_previous = check_top_level(old, &root)
            .and_then(|()| check_top_level(old, &timestamp))
            .and_then(|()| check_top_level(old, &snapshot))
            .and_then(|()| check_top_level(old, &targets));
        if let Err(e) = under_previous {
            return Err(RepoError::Inconsistent(format!(
                "{}: the published {} verify neither under root v{version} nor under root v{} ({e}); the metadata directory was changed outside tufd: restore it from a backup",
                layout.dir().display(),
                stale.join(", "),
                version - 1
            )));
        }
        Ok(Some(Self {
            published: Published {
                root,
                targets,
                snapshot,
                timestamp,
            },
            stale,
        }))
    }

    /// The newest root's version.
    pub fn root_version(&self) -> u64 {
        self.published.root.version()
    }

    /// Completes the publish: signs the stale roles (targets with the same
    /// content at the next version; snapshot and timestamp always) under
    /// the newest root and publishes them. Returns what was done.
    pub fn complete(
        self,
        layout: &Layout,
        expiry: &ExpiryPolicy,
        signers: &Signers,
        now: OffsetDateTime,
    ) -> Result<String, RepoError> {
        let version = self.root_version();
        let roles = self.stale.join(", ");
        let failed = |source: RepoError| RepoError::Interrupted {
            version,
            roles: roles.clone(),
            dir: layout.dir().to_owned(),
            source: Box::new(source),
        };
        let mut change = Change::new(layout, &self.published, expiry, now);
        if self.stale.contains(&"targets") {
            change.resign("targets").map_err(failed)?;
        }
        let (publish, _) = change.finish(signers).map_err(failed)?;
        publish.write(layout, &self.published.referenced(layout))?;
        let summary =
            format!("completed an interrupted publish: re-signed {roles} under root v{version}");
        tracing::warn!(repository = %layout.dir().display(), "{summary}");
        Ok(summary)
    }
}

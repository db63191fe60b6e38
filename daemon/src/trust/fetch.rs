//! Reading a repository from the server as the notary client does, and
//! verifying it against the trusted root.

use super::TrustError;
use super::store::{StoredRepository, Versions};
use bytes::Bytes;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use tufd_remote::{Gun, NotaryClient, RoleName as RemoteRole};
use tufd_tuf::{Metadata, RepositoryFiles, Root, Signed, Snapshot, Timestamp, VerifiedRepository};

/// A repository as read and verified.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Every verified role.
    pub repo: VerifiedRepository,
    /// Nothing changed since the stored read (same timestamp, same root).
    pub unchanged: bool,
    /// The exact bytes fetched, including delegation files that snapshot
    /// lists but no role delegates to any more (their versions matter when
    /// such a role is delegated again).
    pub files: RepositoryFiles,
}

fn sha256_of(meta: &tufd_tuf::FileMeta, role: &str, gun: &str) -> Result<[u8; 32], TrustError> {
    meta.hashes
        .get("sha256")
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or_else(|| {
            TrustError::metadata(
                gun,
                tufd_tuf::Error::InvalidRoot(format!("no sha256 hash listed for {role}")),
            )
        })
}

/// Whether `bytes` has sha256 `sha`.
fn matches(bytes: &[u8], sha: &[u8; 32]) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).as_slice() == sha
}

/// Stored bytes whose sha256 is `sha`, moved out of the store's copy:
/// files the last verified read already holds are not fetched again (the
/// notary client caches the same way), nor copied.
fn cached(bytes: Option<&mut Bytes>, sha: &[u8; 32]) -> Option<Bytes> {
    bytes.filter(|b| matches(b, sha)).map(std::mem::take)
}

/// Bytes one read of a repository has fetched, against the most it may
/// (`[verification] max_bytes`): the per-file limits bound one response,
/// this bounds their sum, which a server could otherwise drive up by
/// listing thousands of delegations or claiming a far newer root.
pub(super) struct Budget {
    pub(super) max: u64,
    pub(super) used: u64,
}

impl Budget {
    /// A budget of `max` bytes, none used.
    pub(super) fn new(max: u64) -> Self {
        Budget { max, used: 0 }
    }

    pub(super) fn remaining(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }

    /// The limit for the next response: `listed` (the parent's meta) when
    /// known, within what is left of the budget.
    pub(super) fn limit(
        &self,
        gun: &str,
        what: &str,
        listed: Option<u64>,
    ) -> Result<u64, TrustError> {
        let left = self.remaining();
        match listed {
            Some(len) if len > left => Err(self.exceeded(gun, what)),
            Some(len) => Ok(len),
            None => Ok(left),
        }
    }

    pub(super) fn exceeded(&self, gun: &str, what: &str) -> TrustError {
        TrustError::Refused(format!(
            "{gun}: reading {what} would exceed the memory budget of {} bytes per read of a repository ([verification] max_bytes); {} bytes already read",
            self.max, self.used
        ))
    }

    /// Counts `n` bytes received; refuses when they go beyond the budget.
    pub(super) fn take(&mut self, gun: &str, what: &str, n: usize) -> Result<(), TrustError> {
        self.used = self.used.saturating_add(n as u64);
        if self.used > self.max {
            return Err(self.exceeded(gun, what));
        }
        Ok(())
    }
}

/// A fetch within a limit; a response cut off at the budget (rather than
/// at the configured or listed size) names the budget.
pub(super) async fn fetch_within<F>(
    gun: &str,
    what: &str,
    budget: &mut Budget,
    listed: Option<u64>,
    get: impl FnOnce(u64) -> F,
) -> Result<Bytes, TrustError>
where
    F: std::future::Future<Output = Result<Bytes, tufd_remote::Error>>,
{
    let limit = budget.limit(gun, what, listed)?;
    match get(limit).await {
        Ok(b) => {
            budget.take(gun, what, b.len())?;
            Ok(b)
        }
        Err(tufd_remote::Error::TooLarge { limit: cut, .. })
            if listed.is_none() && cut == budget.remaining() =>
        {
            Err(budget.exceeded(gun, what))
        }
        Err(e) => Err(TrustError::remote(gun, e)),
    }
}

/// A role by checksum: from the store when it holds those bytes, else from
/// the server, within the length `meta` lists and the read's budget.
async fn by_checksum(
    client: &NotaryClient,
    gun: &Gun,
    role: &str,
    meta: &tufd_tuf::FileMeta,
    stored: Option<&mut Bytes>,
    budget: &mut Budget,
) -> Result<Bytes, TrustError> {
    let sha = sha256_of(meta, role, gun.as_str())?;
    if let Some(b) = cached(stored, &sha) {
        return Ok(b);
    }
    let r = remote_role(gun.as_str(), role)?;
    fetch_within(
        gun.as_str(),
        &format!("{role}.json"),
        budget,
        Some(meta.length),
        |max| client.get_role_by_checksum_within(gun, &r, &sha, max),
    )
    .await
}

/// The meta `listed_in` records for `role`.
fn listed<'a>(
    meta: &'a BTreeMap<String, tufd_tuf::FileMeta>,
    role: &str,
    listed_in: &str,
    gun: &str,
) -> Result<&'a tufd_tuf::FileMeta, TrustError> {
    meta.get(role).ok_or_else(|| {
        TrustError::metadata(
            gun,
            tufd_tuf::Error::MissingMeta {
                role: role.to_owned(),
                listed_in: listed_in.to_owned(),
            },
        )
    })
}

fn remote_role(gun: &str, name: &str) -> Result<RemoteRole, TrustError> {
    RemoteRole::new(name.to_owned()).map_err(|e| TrustError::remote(gun, e))
}

/// Fetches and verifies `gun`, fetching at most `max_bytes` in all (see
/// [`Budget`]). `None` when the server has no such
/// repository. `stored` supplies the trusted root (trust on first use
/// otherwise), the versions a new read must not go below, and the files
/// that need not be fetched again (they move into the result).
pub async fn fetch(
    client: &NotaryClient,
    gun: &Gun,
    stored: Option<StoredRepository>,
    now: OffsetDateTime,
    max_bytes: u64,
) -> Result<Option<Fetched>, TrustError> {
    fetch_with(client, gun, stored, now, max_bytes, false, false).await
}

/// Like [`fetch`], but a delegation that does not verify is skipped and
/// listed in `repo.skipped` (as the notary client skips it) instead of
/// failing the read: for repair, and for telling what a broken repository
/// shows its readers.
pub async fn fetch_lenient(
    client: &NotaryClient,
    gun: &Gun,
    stored: Option<StoredRepository>,
    now: OffsetDateTime,
    max_bytes: u64,
) -> Result<Option<Fetched>, TrustError> {
    fetch_with(client, gun, stored, now, max_bytes, true, false).await
}

/// [`fetch_lenient`] right after a publish: the snapshot has changed for
/// sure, so `snapshot.json` is requested beside `timestamp.json` instead of
/// after it (one round trip less). It is used only when its sha256 is the
/// one the verified timestamp lists — exactly what fetching it by that
/// checksum would have returned; otherwise it is fetched by checksum.
pub async fn fetch_after_publish(
    client: &NotaryClient,
    gun: &Gun,
    stored: Option<StoredRepository>,
    now: OffsetDateTime,
    max_bytes: u64,
) -> Result<Option<Fetched>, TrustError> {
    fetch_with(client, gun, stored, now, max_bytes, true, true).await
}

/// Repositories with more metadata than this are verified on the CPU pool
/// (see [`crate::cpu`]); smaller ones verify in well under a millisecond,
/// where the hop to a pool thread would cost more than the work.
const VERIFY_INLINE_BYTES: usize = 256 << 10;

/// Bytes of metadata in `files`.
pub(super) fn metadata_bytes(files: &RepositoryFiles) -> usize {
    files.root_chain.iter().map(Bytes::len).sum::<usize>()
        + files.timestamp.len()
        + files.snapshot.len()
        + files.targets.len()
        + files.delegations.values().map(Bytes::len).sum::<usize>()
}

#[allow(clippy::too_many_arguments)]
async fn fetch_with(
    client: &NotaryClient,
    gun: &Gun,
    mut stored: Option<StoredRepository>,
    now: OffsetDateTime,
    max_bytes: u64,
    lenient: bool,
    snapshot_changed: bool,
) -> Result<Option<Fetched>, TrustError> {
    let name = gun.as_str();
    // The floor for rollback checks, taken before stored files move into
    // the read.
    let floor = stored.as_ref().map(|s| Versions::of(&s.files));
    let remote = |e| TrustError::remote(name, e);
    let md = |e| TrustError::metadata(name, e);

    let mut budget = Budget::new(max_bytes);

    let (timestamp, mut current_snapshot) = if snapshot_changed {
        // Both within what is left; counted once both are in.
        let left = budget.remaining();
        let (t, s) = tokio::join!(
            client.get_role_within(gun, &RemoteRole::TIMESTAMP, left),
            client.get_role_within(gun, &RemoteRole::SNAPSHOT, left)
        );
        let s = s.ok();
        if let Some(s) = &s {
            budget.take(name, "snapshot.json", s.len())?;
        }
        (t, s)
    } else {
        (
            client
                .get_role_within(gun, &RemoteRole::TIMESTAMP, budget.remaining())
                .await,
            None,
        )
    };
    let timestamp = match timestamp {
        Ok(b) => {
            budget.take(name, "timestamp.json", b.len())?;
            b
        }
        Err(e) if e.is_not_found() => {
            if stored.is_some() {
                return Err(TrustError::NotFound(format!(
                    "{name}: the server has no metadata for this repository any more, although tufd trusted it before; if it was deleted on purpose, forget it with `tufctl trust forget {name}` (the next operation then trusts what the server serves anew)"
                )));
            }
            return Ok(None);
        }
        Err(e) => return Err(remote(e)),
    };
    let ts = Signed::<Timestamp>::from_role_file("timestamp", timestamp.clone()).map_err(md)?;
    let snap_meta = listed(&ts.signed().meta, "snapshot", "timestamp", name)?;
    let snap_sha = sha256_of(snap_meta, "snapshot", name)?;
    let snapshot = match cached(current_snapshot.as_mut(), &snap_sha) {
        Some(b) => b,
        None => {
            by_checksum(
                client,
                gun,
                "snapshot",
                snap_meta,
                stored.as_mut().map(|s| &mut s.files.snapshot),
                &mut budget,
            )
            .await?
        }
    };
    let snap = Signed::<Snapshot>::from_role_file("snapshot", snapshot.clone()).map_err(md)?;

    // Root: the trusted one, then every newer version up to the current.
    // Unchanged when snapshot lists the trusted root's checksum.
    let root_listed = snap.signed().meta.get("root");
    let root_sha = root_listed.and_then(|m| sha256_of(m, "root", name).ok());
    let trusted_bytes = stored.as_ref().map(|s| s.root.clone());
    let current_root = match root_sha
        .and_then(|sha| trusted_bytes.as_ref().filter(|b| matches(b, &sha)).cloned())
    {
        Some(b) => b,
        None => fetch_within(
            name,
            "root.json",
            &mut budget,
            root_listed.map(|m| m.length),
            |max| client.get_role_within(gun, &RemoteRole::ROOT, max),
        )
        .await?
        .to_vec(),
    };
    let current = Signed::<Root>::from_role_bytes("root", &current_root).map_err(md)?;
    let trusted_bytes = trusted_bytes.unwrap_or_else(|| current_root.clone());
    let trusted = Signed::<Root>::from_role_bytes("root", &trusted_bytes).map_err(md)?;
    let mut root_chain = Vec::new();
    let (from, to) = (trusted.signed().version(), current.signed().version());
    if to < from {
        return Err(md(tufd_tuf::Error::BadVersion {
            role: "root".into(),
            found: to,
            expected: format!(">= {from} (the version tufd trusts)"),
        }));
    }
    if to == from && current_root != trusted_bytes {
        return Err(TrustError::Refused(format!(
            "{name}: the server serves a root.json at version {to} whose bytes differ from the root tufd trusts at that same version; a changed root must carry a higher version (the notary client refuses this too). Nothing was changed. If the repository was re-created on purpose, run `tufctl trust forget {name}` and trust it anew"
        )));
    }
    // Each newer root is checked as it arrives (the version to reach is
    // the server's unverified claim): a server without the root keys is
    // refused at its first file, and no read follows more than
    // MAX_ROOT_ROTATIONS of them.
    tufd_tuf::check_rotations(from, to).map_err(md)?;
    let mut chain_root = trusted.clone();
    for v in from + 1..to {
        let bytes = fetch_within(name, &format!("{v}.root.json"), &mut budget, None, |max| {
            client.get_role_by_version_within(gun, &RemoteRole::ROOT, v, max)
        })
        .await?;
        chain_root =
            tufd_tuf::verify_root_step(&chain_root, bytes.clone(), name, now).map_err(md)?;
        root_chain.push(bytes);
    }
    if to > from {
        root_chain.push(current_root.into());
    }

    let targets_meta = listed(&snap.signed().meta, "targets", "snapshot", name)?;
    let targets = by_checksum(
        client,
        gun,
        "targets",
        targets_meta,
        stored.as_mut().map(|s| &mut s.files.targets),
        &mut budget,
    )
    .await?;
    let mut delegations = BTreeMap::new();
    for (role, meta) in &snap.signed().meta {
        if !role.starts_with("targets/") {
            continue;
        }
        let bytes = by_checksum(
            client,
            gun,
            role,
            meta,
            stored
                .as_mut()
                .and_then(|s| s.files.delegations.get_mut(role)),
            &mut budget,
        )
        .await?;
        delegations.insert(role.clone(), bytes);
    }
    let unchanged = root_chain.is_empty()
        && stored
            .as_ref()
            .is_some_and(|s| s.files.timestamp == timestamp);
    let files = RepositoryFiles {
        root_chain,
        timestamp,
        snapshot,
        targets,
        delegations,
        // Roles parsed before (the last read, or a change just signed):
        // used for files whose bytes are theirs.
        parsed: stored
            .as_mut()
            .map(|s| std::mem::take(&mut s.files.parsed))
            .unwrap_or_default(),
    };
    // Every role's version at least the one verified before (targets and
    // every delegation too), checked before the signatures so a rolled-back
    // file is named as such; nothing is signed over a rollback, as reads
    // before a change go through here.
    if let Some(floor) = &floor {
        floor.check_not_older(name, &files)?;
    }
    let verify = if lenient {
        tufd_tuf::verify_repository_lenient
    } else {
        tufd_tuf::verify_repository
    };
    // A large repository takes a core for a long while to verify (most of
    // a second at 100 000 tags): that runs on the CPU pool, never on a
    // runtime thread that serves the socket.
    let (repo, mut files) = if metadata_bytes(&files) <= VERIFY_INLINE_BYTES {
        let repo = verify(&trusted, &files, name, now);
        (repo, files)
    } else {
        let gun_name = name.to_owned();
        crate::cpu::run(move || (verify(&trusted, &files, &gun_name, now), files))
            .await
            .map_err(|e| match e {
                crate::cpu::CpuError::Busy => TrustError::Busy(format!(
                    "{name}: verifying this large repository must wait: {e}"
                )),
                crate::cpu::CpuError::Failed(_) => TrustError::Internal(e.to_string()),
            })?
    };
    let repo = repo.map_err(md)?;
    if let Some(floor) = &floor {
        floor.check_still_listed(name, &repo)?;
    }
    // This read's parses, for the next read (none of the older ones).
    files.keep_parsed(&repo);
    Ok(Some(Fetched {
        repo,
        unchanged,
        files,
    }))
}

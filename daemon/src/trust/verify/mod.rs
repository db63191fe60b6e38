//! Verify before pull: a client update as notary's client does it, then
//! each tag resolved as docker resolves it, under a mode per repository
//! (enforced, passive, disabled), with trust pinning and bounded work.
//!
//! [`Trust::verify`] is the API (the gRPC service and, later, a verifying
//! registry mirror call it). The update fetches timestamp, then snapshot
//! (by the checksum and within the length timestamp lists), root and its
//! rotations, targets, then only the delegations reachable from targets,
//! each within the length snapshot lists; all of it under one deadline and
//! one byte budget. The local store is written only when everything the
//! update kept verified and no role went back in version.

pub mod budget;
pub mod config;

use super::fetch::{Budget, fetch_within};
use super::{Trust, TrustError, gun};
use crate::trust::store::StoredRepository;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;
use time::OffsetDateTime;
use tufd_proto::names;
use tufd_remote::{Gun, NotaryClient, RoleName as RemoteRole};
use tufd_tuf::client::{Unresolved, check_no_rollback_from, resolve_tag};
use tufd_tuf::{
    Root, Signed, SkipReason, SkippedDelegation, Snapshot, Timestamp, VerifiedRepository,
};

/// What happens to a tag that is not signed and verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// Refused, with the reason.
    Enforced,
    /// Warned about; the registry's digest is answered.
    Passive,
    /// Not checked at all; the registry's digest is answered.
    Disabled,
}

impl VerifyMode {
    /// The configuration and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyMode::Enforced => "enforced",
            VerifyMode::Passive => "passive",
            VerifyMode::Disabled => "disabled",
        }
    }
}

impl std::str::FromStr for VerifyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "enforced" => Ok(VerifyMode::Enforced),
            "passive" => Ok(VerifyMode::Passive),
            "disabled" => Ok(VerifyMode::Disabled),
            other => Err(format!("mode {other:?}: use enforced, passive or disabled")),
        }
    }
}

/// One `[[verify]]` rule: the repositories whose name starts with `prefix`.
#[derive(Debug, Clone)]
pub struct VerifyRule {
    /// Repository name prefix (normalized names, e.g. `docker.io/library/`);
    /// the longest matching prefix wins.
    pub prefix: String,
    /// The mode, unless a call overrides it.
    pub mode: VerifyMode,
    /// Root certificate key IDs a first root must be signed with (notary's
    /// `trust_pinning.certs`).
    pub pinned_root_keys: Vec<String>,
    /// CA certificates a first root's certificate must be issued by
    /// (notary's `trust_pinning.ca`).
    pub ca: Vec<x509_cert::Certificate>,
    /// Where `ca` was read from, for messages.
    pub ca_file: Option<PathBuf>,
    /// Trust on first use when nothing is pinned (notary's
    /// `trust_pinning.disable_tofu` inverted).
    pub tofu: bool,
}

/// The verification configuration.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// Rules by repository prefix.
    pub rules: Vec<VerifyRule>,
    /// One deadline for a repository's whole client update.
    pub deadline: Duration,
    /// The bytes one read of a repository may fetch in total: a client
    /// update, an inspect, the reads before and after a change.
    pub max_bytes: u64,
    /// The bytes all pull-time client updates (the mirror's, `tufctl
    /// verify`'s) may hold at once (see [`budget`]).
    pub max_total_bytes: u64,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            rules: Vec::new(),
            deadline: Duration::from_secs(60),
            max_bytes: 64 << 20,
            max_total_bytes: 256 << 20,
        }
    }
}

impl VerifyPolicy {
    /// The rule for `gun`: the longest matching prefix.
    pub fn rule_for(&self, gun: &str) -> Option<&VerifyRule> {
        self.rules
            .iter()
            .filter(|r| gun.starts_with(r.prefix.as_str()))
            .max_by_key(|r| r.prefix.len())
    }
}

/// The answer for one tag.
#[derive(Debug, Clone, PartialEq)]
pub struct TagVerdict {
    /// Normalized repository name.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The mode applied.
    pub mode: VerifyMode,
    /// What was found.
    pub outcome: Outcome,
    /// Delegations left out because they did not verify, which this tag's
    /// resolution did not need.
    pub warnings: Vec<String>,
}

/// A manifest digest and size.
pub type Manifest = ([u8; 32], u64);

/// What verification found for one tag.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Signed and verified.
    Trusted {
        digest: [u8; 32],
        size: u64,
        /// `targets/releases` or `targets`.
        role: String,
        /// Signer roles that signed the same digest.
        signers: Vec<String>,
    },
    /// Not trusted, enforced: refused.
    Refused { reason: String },
    /// Not trusted, passive: the registry's answer (or why there is none).
    Unverified {
        reason: String,
        registry: Result<Manifest, String>,
    },
    /// Disabled: the registry's answer (or why there is none).
    Unchecked { registry: Result<Manifest, String> },
}

fn remote_role(gun: &str, name: &str) -> Result<RemoteRole, TrustError> {
    RemoteRole::new(name.to_owned()).map_err(|e| TrustError::remote(gun, e))
}

fn sha256_and_length(
    meta: &std::collections::BTreeMap<String, tufd_tuf::FileMeta>,
    role: &str,
    listed_in: &str,
    gun: &str,
) -> Result<([u8; 32], u64), TrustError> {
    let m = meta.get(role).ok_or_else(|| {
        TrustError::metadata(
            gun,
            tufd_tuf::Error::MissingMeta {
                role: role.to_owned(),
                listed_in: listed_in.to_owned(),
            },
        )
    })?;
    let sha = m
        .hashes
        .get("sha256")
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or_else(|| {
            TrustError::metadata(
                gun,
                tufd_tuf::Error::NoHashes {
                    role: role.to_owned(),
                    listed_in: listed_in.to_owned(),
                },
            )
        })?;
    Ok((sha, m.length))
}

fn cached<'a, B: AsRef<[u8]>>(bytes: Option<&'a B>, sha: &[u8; 32]) -> Option<&'a B> {
    use sha2::{Digest, Sha256};
    bytes.filter(|b| Sha256::digest(b.as_ref()).as_slice() == sha)
}

/// A verified repository and the delegations the update left out.
pub struct Updated {
    /// What verified.
    pub repo: VerifiedRepository,
    /// Delegations left out (failed or unreachable); resolution that needs
    /// one of them fails.
    pub skipped: Vec<SkippedDelegation>,
}

/// The root-of-trust rules for a first root (no root in the store yet):
/// notary's trust pinning — pinned key IDs, else a CA, else trust on first
/// use unless it is off.
fn check_first_root(
    gun: &str,
    rule: Option<&VerifyRule>,
    root: &Signed<Root>,
    now: OffsetDateTime,
) -> Result<(), TrustError> {
    let md = |e| TrustError::metadata(gun, e);
    let Some(rule) = rule else { return Ok(()) };
    let threshold = root
        .signed()
        .roles
        .get("root")
        .map(|r| r.threshold)
        .unwrap_or(1);
    let keys = tufd_tuf::rootcert::trusted_root_keys(root.signed(), gun, Some(now)).map_err(md)?;
    if !rule.pinned_root_keys.is_empty() {
        let pinned: std::collections::BTreeMap<_, _> = keys
            .iter()
            .filter(|(id, _)| rule.pinned_root_keys.contains(id))
            .map(|(id, k)| (id.clone(), k.clone()))
            .collect();
        if pinned.is_empty() {
            return Err(TrustError::Refused(format!(
                "{gun}: the server's root is signed with root key(s) {}, none of them pinned for this repository (pinned: {}); refusing it",
                keys.keys().cloned().collect::<Vec<_>>().join(", "),
                rule.pinned_root_keys.join(", ")
            )));
        }
        tufd_tuf::verify::verify_threshold("root (pinned keys)", root, &pinned, threshold)
            .map_err(md)?;
        return Ok(());
    }
    if !rule.ca.is_empty() {
        let mut issued = std::collections::BTreeMap::new();
        for (id, key) in &keys {
            let certs = key.certificates().map_err(md)?;
            if let Some(leaf) = certs.first()
                && rule
                    .ca
                    .iter()
                    .any(|ca| tufd_tuf::client::issued_by(leaf, ca, now).is_ok())
            {
                issued.insert(id.clone(), key.clone());
            }
        }
        if issued.is_empty() {
            return Err(TrustError::Refused(format!(
                "{gun}: no root certificate of the server's root is issued by the CA pinned for this repository ({}); refusing it",
                rule.ca_file
                    .as_ref()
                    .map_or_else(|| "configured CA".to_owned(), |p| p.display().to_string())
            )));
        }
        tufd_tuf::verify::verify_threshold("root (CA-issued keys)", root, &issued, threshold)
            .map_err(md)?;
        return Ok(());
    }
    if !rule.tofu {
        return Err(TrustError::Refused(format!(
            "{gun}: tufd has no trusted root for this repository and trust on first use is off for it; pin its root key ID or a CA in [[verify]] (prefix {:?})",
            rule.prefix
        )));
    }
    Ok(())
}

/// [`fetch_within`] with room for the response reserved first in the
/// daemon-wide budget: the read's limit for the file, or the client's
/// `cap` for its kind when lower. What arrived stays reserved until the
/// update ends.
#[allow(clippy::too_many_arguments)]
async fn fetch_held<F>(
    gun: &str,
    what: &str,
    budget: &mut Budget,
    held: &mut budget::Held,
    listed: Option<u64>,
    cap: u64,
    get: impl FnOnce(u64) -> F,
) -> Result<tufd_remote::Bytes, TrustError>
where
    F: std::future::Future<Output = Result<tufd_remote::Bytes, tufd_remote::Error>>,
{
    let reserved = budget.limit(gun, what, listed)?.min(cap);
    held.reserve(gun, what, reserved).await?;
    let got = fetch_within(gun, what, budget, listed, get).await;
    held.settle(reserved, got.as_ref().map_or(0, |b| b.len() as u64));
    got
}

impl Trust {
    /// The client update of one repository: `None` when the server has no
    /// trust data for it. Stores what verified.
    pub async fn client_update(&self, g: &Gun) -> Result<Option<Updated>, TrustError> {
        let name = g.as_str();
        let policy = &self.verify_policy;
        let deadline = policy.deadline;
        tokio::time::timeout(deadline, self.client_update_inner(g))
            .await
            .unwrap_or_else(|_| {
                Err(TrustError::Refused(format!(
                    "{name}: verification did not finish within its deadline of {} s ([verification] deadline_seconds); the notary server is too slow or stalling",
                    deadline.as_secs()
                )))
            })
    }

    async fn client_update_inner(&self, g: &Gun) -> Result<Option<Updated>, TrustError> {
        let name = g.as_str();
        let lock = self.engine.lock_for(name);
        let _guard = lock.lock().await;
        let client: &NotaryClient = self.engine.client(g)?;
        let stored: Option<StoredRepository> = self.engine.stored(name).await?;
        let rule = self.verify_policy.rule_for(name);
        let md = |e| TrustError::metadata(name, e);
        let now = OffsetDateTime::now_utc();
        let mut budget = Budget::new(self.verify_policy.max_bytes);
        // This update's share of the daemon-wide budget, given back when
        // it ends; each fetch reserves its limit first.
        let mut held = self.verify_bytes.hold();
        let limits = client.limits();

        let timestamp = match fetch_held(
            name,
            "timestamp.json",
            &mut budget,
            &mut held,
            None,
            limits.timestamp,
            |max| client.get_role_within(g, &RemoteRole::TIMESTAMP, max),
        )
        .await
        {
            Ok(b) => b,
            Err(TrustError::Remote { source, .. }) if source.is_not_found() => {
                if stored.is_some() {
                    return Err(TrustError::NotFound(format!(
                        "{name}: the server has no trust data for this repository any more, although tufd trusted it before"
                    )));
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let ts = Signed::<Timestamp>::from_role_file("timestamp", timestamp.clone()).map_err(md)?;
        let (snap_sha, snap_len) =
            sha256_and_length(&ts.signed().meta, "snapshot", "timestamp", name)?;
        let snapshot = match cached(stored.as_ref().map(|s| &s.files.snapshot), &snap_sha) {
            Some(b) => b.clone(),
            None => {
                fetch_held(
                    name,
                    "snapshot.json",
                    &mut budget,
                    &mut held,
                    Some(snap_len),
                    limits.snapshot,
                    |max| {
                        client.get_role_by_checksum_within(g, &RemoteRole::SNAPSHOT, &snap_sha, max)
                    },
                )
                .await?
            }
        };
        let snap = Signed::<Snapshot>::from_role_file("snapshot", snapshot.clone()).map_err(md)?;

        // Root: the current one (unchanged when snapshot lists the stored
        // root's checksum), and every version between the trusted and it.
        let root_listed = sha256_and_length(&snap.signed().meta, "root", "snapshot", name).ok();
        let stored_root = stored.as_ref().map(|s| &s.root);
        let current_root = match root_listed.and_then(|(sha, _)| cached(stored_root, &sha)) {
            Some(b) => tufd_remote::Bytes::copy_from_slice(b),
            None => {
                fetch_held(
                    name,
                    "root.json",
                    &mut budget,
                    &mut held,
                    root_listed.map(|(_, l)| l),
                    limits.root,
                    |max| client.get_role_within(g, &RemoteRole::ROOT, max),
                )
                .await?
            }
        };
        let current = Signed::<Root>::from_role_bytes("root", &current_root).map_err(md)?;
        let trusted = match stored_root {
            Some(b) => Signed::<Root>::from_role_bytes("root", b).map_err(md)?,
            None => {
                check_first_root(name, rule, &current, now)?;
                current.clone()
            }
        };
        let (from, to) = (trusted.signed().version, current.signed().version);
        if to < from {
            return Err(md(tufd_tuf::Error::BadVersion {
                role: "root".into(),
                found: to,
                expected: format!(">= {from} (the version tufd trusts)"),
            }));
        }
        // Each newer root checked as it arrives, at most
        // MAX_ROOT_ROTATIONS of them (see `fetch.rs`).
        tufd_tuf::check_rotations(from, to).map_err(md)?;
        let mut root_chain = Vec::new();
        let mut chain_root = trusted.clone();
        for v in from + 1..to {
            let bytes = fetch_held(
                name,
                &format!("{v}.root.json"),
                &mut budget,
                &mut held,
                None,
                limits.root,
                |max| client.get_role_by_version_within(g, &RemoteRole::ROOT, v, max),
            )
            .await?;
            chain_root =
                tufd_tuf::verify_root_step(&chain_root, bytes.clone(), name, now).map_err(md)?;
            root_chain.push(bytes);
        }
        if to > from {
            root_chain.push(current_root);
        }

        let (t_sha, t_len) = sha256_and_length(&snap.signed().meta, "targets", "snapshot", name)?;
        let targets = match cached(stored.as_ref().map(|s| &s.files.targets), &t_sha) {
            Some(b) => b.clone(),
            None => {
                fetch_held(
                    name,
                    "targets.json",
                    &mut budget,
                    &mut held,
                    Some(t_len),
                    limits.targets,
                    |max| client.get_role_by_checksum_within(g, &RemoteRole::TARGETS, &t_sha, max),
                )
                .await?
            }
        };
        let mut files = tufd_tuf::RepositoryFiles {
            root_chain,
            timestamp,
            snapshot,
            targets,
            delegations: Default::default(),
            // The stored state's parses, for files that did not change.
            parsed: stored
                .as_ref()
                .map(|s| s.files.parsed.clone())
                .unwrap_or_default(),
        };

        // Delegations: only those reachable from verified parents, one
        // level per pass (the tuf layer reports the ones it still needs).
        let mut attempted = BTreeSet::new();
        let (repo, skipped) = loop {
            let (repo, skipped) =
                tufd_tuf::verify_client_update(&trusted, &files, name, now).map_err(md)?;
            let wanted: Vec<String> = skipped
                .iter()
                .filter(|s| matches!(s.reason, SkipReason::NotFetched))
                .map(|s| s.name.clone())
                .filter(|n| !attempted.contains(n))
                .collect();
            if wanted.is_empty() {
                break (repo, skipped);
            }
            // The next pass parses only the delegations fetched now.
            files.keep_parsed(&repo);
            for role in wanted {
                attempted.insert(role.clone());
                let (sha, len) = sha256_and_length(&snap.signed().meta, &role, "snapshot", name)?;
                let stored_file = stored.as_ref().and_then(|s| s.files.delegations.get(&role));
                let bytes = match cached(stored_file, &sha) {
                    Some(b) => b.clone(),
                    None => {
                        let r = remote_role(name, &role)?;
                        match fetch_held(
                            name,
                            &format!("{role}.json"),
                            &mut budget,
                            &mut held,
                            Some(len),
                            limits.targets,
                            |max| client.get_role_by_checksum_within(g, &r, &sha, max),
                        )
                        .await
                        {
                            Ok(b) => b,
                            // Left out; resolution that needs it fails.
                            Err(TrustError::Remote { source, .. }) => {
                                tracing::warn!(repository = %name, role = %role, error = %source, "delegation could not be fetched");
                                continue;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                };
                files.delegations.insert(role, bytes);
            }
        };
        // A delegation that did not verify, or whose file could not be
        // fetched, leaves the store as it was: saving without it would
        // drop its rollback floor.
        let mut complete = true;
        for s in &skipped {
            complete = false;
            match &s.reason {
                SkipReason::Failed(e) => {
                    tracing::warn!(repository = %name, role = %s.name, error = %e, "delegation skipped: it did not verify");
                }
                SkipReason::NotFetched => {
                    tracing::warn!(repository = %name, role = %s.name, "delegation skipped: its file could not be fetched");
                }
            }
        }
        // Nothing new since the stored state (same timestamp, same root):
        // every file came from the store, verified again above (expiry
        // moves on); nothing to compare or to write.
        let unchanged = stored
            .as_ref()
            .is_some_and(|s| s.files.timestamp == files.timestamp && files.root_chain.is_empty());
        if unchanged {
            return Ok(Some(Updated { repo, skipped }));
        }
        if let Some(s) = &stored {
            check_no_rollback_from(&s.root, &s.files, &repo).map_err(md)?;
        }
        // The store keeps the last state in which everything verified: a
        // delegation that failed leaves it as it was (and the next update
        // is checked against it again).
        if complete {
            // The write path's kept read-back (`recent.rs`) is older than
            // this now: it must not stand in for the store as the floor.
            self.engine.recent.forget(name);
            self.engine.store.save(name, &repo)?;
        }
        Ok(Some(Updated { repo, skipped }))
    }

    /// Verifies `references` (`REPO:TAG`, normalized as docker does) under
    /// `mode`, or each repository's configured mode. Errors only for bad
    /// input; everything about a tag is in its [`TagVerdict`].
    pub async fn verify(
        &self,
        references: &[String],
        mode: Option<VerifyMode>,
    ) -> Result<Vec<TagVerdict>, TrustError> {
        if references.is_empty() {
            return Err(TrustError::InvalidRequest(
                "give at least one REPO:TAG".into(),
            ));
        }
        // Grouped by repository in the order first named, found by hash.
        let mut by_repo: Vec<(Gun, Vec<String>)> = Vec::new();
        let mut slot_of: HashMap<Gun, usize> = HashMap::new();
        for r in references {
            let (repo, tag) =
                names::tagged(r).map_err(|e| TrustError::InvalidRequest(e.to_string()))?;
            let g = gun(&repo)?;
            let slot = *slot_of.entry(g.clone()).or_insert_with(|| {
                by_repo.push((g, Vec::new()));
                by_repo.len() - 1
            });
            by_repo[slot].1.push(tag);
        }
        let mut out = Vec::new();
        for (g, tags) in by_repo {
            let name = g.as_str();
            let mode = mode
                .or_else(|| self.verify_policy.rule_for(name).map(|r| r.mode))
                .unwrap_or(VerifyMode::Enforced);
            let updated = if mode == VerifyMode::Disabled {
                None
            } else {
                Some(self.client_update(&g).await)
            };
            for tag in tags {
                let verdict: Result<TrustedTag, String> = match &updated {
                    None => Err(String::new()),
                    Some(Err(e)) => Err(e.to_string()),
                    Some(Ok(None)) => Err(format!(
                        "remote trust data does not exist for {name}: {} does not have trust data for {name}",
                        self.engine
                            .client(&g)
                            .map(|c| c.base_url().to_owned())
                            .unwrap_or_else(|_| "the notary server".into())
                    )),
                    Some(Ok(Some(u))) => trusted_tag(&u.repo, &u.skipped, &tag)
                        .map_err(|e| format!("{name}:{tag}: {e}")),
                };
                let outcome = match (mode, verdict) {
                    (VerifyMode::Disabled, _) => {
                        tracing::info!(repository = %name, tag = %tag, "verification disabled: answering the registry's digest unchecked");
                        Outcome::Unchecked {
                            registry: self.registry_digest(name, &tag).await,
                        }
                    }
                    (_, Ok(t)) => Outcome::Trusted {
                        digest: t.digest,
                        size: t.size,
                        role: t.role,
                        signers: t.signers,
                    },
                    (VerifyMode::Enforced, Err(reason)) => {
                        tracing::warn!(repository = %name, tag = %tag, %reason, "verification refused the tag");
                        Outcome::Refused { reason }
                    }
                    (VerifyMode::Passive, Err(reason)) => {
                        tracing::warn!(repository = %name, tag = %tag, %reason, "tag not verified (passive mode): answering the registry's digest");
                        Outcome::Unverified {
                            reason,
                            registry: self.registry_digest(name, &tag).await,
                        }
                    }
                };
                let warnings = match (&updated, &outcome) {
                    (Some(Ok(Some(u))), Outcome::Trusted { .. }) => u
                        .skipped
                        .iter()
                        .filter_map(|s| match &s.reason {
                            SkipReason::Failed(e) => {
                                Some(format!("{name}: {} was skipped: {e}", s.name))
                            }
                            SkipReason::NotFetched => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                out.push(TagVerdict {
                    repository: name.to_owned(),
                    tag,
                    mode,
                    outcome,
                    warnings,
                });
            }
        }
        Ok(out)
    }

    /// The configured mode of a normalized repository name (enforced when
    /// no `[[verify]]` rule matches).
    pub fn mode_for(&self, repository: &str) -> VerifyMode {
        self.verify_policy
            .rule_for(repository)
            .map_or(VerifyMode::Enforced, |r| r.mode)
    }

    async fn registry_digest(&self, repository: &str, tag: &str) -> Result<Manifest, String> {
        self.resolve(repository, tag)
            .await
            .map_err(|e| e.to_string())
    }
}

struct TrustedTag {
    digest: [u8; 32],
    size: u64,
    role: String,
    signers: Vec<String>,
}

fn trusted_tag(
    repo: &VerifiedRepository,
    skipped: &[SkippedDelegation],
    tag: &str,
) -> Result<TrustedTag, Unresolved> {
    let t = resolve_tag(repo, skipped, tag)?;
    let digest = t
        .meta
        .hashes
        .get("sha256")
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .ok_or_else(|| Unresolved::Broken {
            role: t.role.clone(),
            reason: "the target has no sha256 hash".into(),
        })?;
    Ok(TrustedTag {
        digest,
        size: t.meta.length,
        role: t.role,
        signers: t.signers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_rules() {
        assert_eq!("passive".parse::<VerifyMode>(), Ok(VerifyMode::Passive));
        assert!("on".parse::<VerifyMode>().is_err());
        let rule = |prefix: &str, mode| VerifyRule {
            prefix: prefix.into(),
            mode,
            pinned_root_keys: vec![],
            ca: vec![],
            ca_file: None,
            tofu: true,
        };
        let p = VerifyPolicy {
            rules: vec![
                rule("", VerifyMode::Passive),
                rule("localhost:5000/prod/", VerifyMode::Enforced),
            ],
            ..VerifyPolicy::default()
        };
        assert_eq!(
            p.rule_for("localhost:5000/prod/app").map(|r| r.mode),
            Some(VerifyMode::Enforced)
        );
        assert_eq!(
            p.rule_for("docker.io/library/alpine").map(|r| r.mode),
            Some(VerifyMode::Passive)
        );
    }

    #[test]
    fn budget_names_itself() {
        let mut b = Budget::new(100);
        assert_eq!(b.limit("g", "x", Some(60)).unwrap(), 60);
        b.take("g", "x", 60).unwrap();
        let e = b.limit("g", "y", Some(60)).unwrap_err().to_string();
        assert!(e.contains("memory budget of 100 bytes"), "{e}");
        assert_eq!(b.limit("g", "z", None).unwrap(), 40);
    }
}

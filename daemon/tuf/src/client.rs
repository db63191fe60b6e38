//! What a pulling client does with a verified repository: refuse rollbacks
//! against what it trusted before, and resolve a tag the way docker does.

use crate::error::{Error, Result};
use crate::metadata::{Metadata, Root, Snapshot, TargetMeta, Targets, Timestamp};
use crate::repo::{RepositoryFiles, SkipReason, SkippedDelegation, VerifiedRepository};
use crate::signed::Signed;

/// The delegation docker trusts first.
pub const RELEASES: &str = "targets/releases";

/// Refuses `new` when any role is older than the same role in the stored
/// (previously verified) files: root, timestamp, snapshot, targets and
/// every delegation both hold. Stored bytes were verified when stored, so
/// they are only parsed here.
pub fn check_no_rollback_from(
    stored_root: &[u8],
    stored: &RepositoryFiles,
    new: &VerifiedRepository,
) -> Result<()> {
    fn older(role: &str, old: u64, new: u64) -> Result<()> {
        if new < old {
            return Err(Error::BadVersion {
                role: role.to_owned(),
                found: new,
                expected: format!(">= {old} (trusted before: the server rolled back)"),
            });
        }
        Ok(())
    }
    if let Ok(r) = Signed::<Root>::from_role_bytes("root", stored_root) {
        older("root", r.signed().version(), new.root.signed().version())?;
    }
    if let (Ok(t), Some(n)) = (
        Signed::<Timestamp>::from_role_bytes("timestamp", &stored.timestamp),
        &new.timestamp,
    ) {
        older("timestamp", t.signed().version(), n.signed().version())?;
    }
    if let Ok(s) = Signed::<Snapshot>::from_role_bytes("snapshot", &stored.snapshot) {
        older(
            "snapshot",
            s.signed().version(),
            new.snapshot.signed().version(),
        )?;
    }
    // Identical bytes are the same version: no need to parse them again
    // (a targets file of 10 000 tags is a megabyte of JSON).
    if stored.targets != new.targets.bytes()
        && let Ok(t) = Signed::<Targets>::from_role_bytes("targets", &stored.targets)
    {
        older(
            "targets",
            t.signed().version(),
            new.targets.signed().version(),
        )?;
    }
    for (name, d) in &new.delegations {
        if let Some(bytes) = stored.delegations.get(name)
            && &bytes[..] != d.file.bytes()
            && let Ok(old) = Signed::<Targets>::from_role_bytes(name, bytes)
        {
            older(name, old.signed().version(), d.file.signed().version())?;
        }
    }
    // A stored delegation still delegated but no longer listed: hidden
    // by the server (its floor would be lost with it).
    let gone: Vec<(&str, u64)> = stored
        .delegations
        .iter()
        .filter(|(name, _)| !new.delegations.iter().any(|(n, _)| n == *name))
        .filter_map(|(name, bytes)| {
            let old = Signed::<Targets>::from_role_bytes(name, bytes).ok()?;
            Some((name.as_str(), old.signed().version()))
        })
        .collect();
    new.check_still_listed(gone)
}

/// A tag as docker resolves it for a pull.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedTarget {
    /// The role it was found in: `targets/releases` or `targets`.
    pub role: String,
    /// Its hashes and length.
    pub meta: TargetMeta,
    /// Signer roles (other than releases) that list the same sha256, as
    /// `docker trust inspect` shows them.
    pub signers: Vec<String>,
}

/// Why a tag has no trusted target.
#[derive(Debug, Clone, PartialEq)]
pub enum Unresolved {
    /// No role docker trusts lists it (revoked, or never signed).
    NotSigned,
    /// Only a delegation other than `targets/releases` lists it; docker
    /// does not trust it there.
    OnlyIn(String),
    /// Resolution needed a delegation that did not verify.
    Broken { role: String, reason: String },
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unresolved::NotSigned => {
                f.write_str("no trust data for this tag (unsigned or revoked)")
            }
            Unresolved::OnlyIn(role) => write!(
                f,
                "signed only in {role}; docker trusts tags in targets/releases or targets only"
            ),
            Unresolved::Broken { role, reason } => write!(
                f,
                "resolving the tag needs {role}, which did not verify: {reason}"
            ),
        }
    }
}

/// One visited role of a walk: verified (index into the delegations,
/// `None` for targets) or skipped.
enum Step<'a> {
    Verified(Option<usize>),
    Skipped(&'a SkippedDelegation),
}

/// Resolves `tag` as docker does before a pull: notary's
/// `GetTargetByName(tag, targets/releases, targets)` — a walk of the
/// releases subtree, then of targets and every other delegation — and then
/// only a hit in `targets/releases` or `targets` is trusted. A delegation
/// left out of the update that the walk would visit before the tag is
/// found makes the answer an error; one it would not visit is ignored.
pub fn resolve_tag(
    repo: &VerifiedRepository,
    skipped: &[SkippedDelegation],
    tag: &str,
) -> std::result::Result<TrustedTarget, Unresolved> {
    // Walk order: targets, then delegations in breadth-first order with the
    // skipped ones at the positions where they were met.
    let mut order: Vec<(String, Step<'_>)> = vec![("targets".into(), Step::Verified(None))];
    let mut next_skip = skipped
        .iter()
        .filter(|s| matches!(s.reason, SkipReason::Failed(_) | SkipReason::NotFetched))
        .peekable();
    for (i, (name, _)) in repo.delegations.iter().enumerate() {
        while let Some(s) = next_skip.next_if(|s| s.position <= i) {
            order.push((s.name.clone(), Step::Skipped(s)));
        }
        order.push((name.clone(), Step::Verified(Some(i))));
    }
    for s in next_skip {
        order.push((s.name.clone(), Step::Skipped(s)));
    }
    let in_releases = |n: &str| n == RELEASES || n.starts_with("targets/releases/");
    let walks: [&dyn Fn(&str) -> bool; 2] = [&in_releases, &|n: &str| n != RELEASES];
    for in_walk in walks {
        for (name, step) in &order {
            if !in_walk(name) {
                continue;
            }
            match step {
                Step::Skipped(s) if s.covers(tag) => {
                    let reason = match &s.reason {
                        SkipReason::Failed(e) => e.to_string(),
                        SkipReason::NotFetched => "its file could not be fetched".into(),
                    };
                    return Err(Unresolved::Broken {
                        role: s.name.clone(),
                        reason,
                    });
                }
                Step::Skipped(_) => {}
                Step::Verified(None) => {
                    if let Some(meta) = repo.targets.signed().targets.get(tag) {
                        return found(repo, "targets", meta, tag);
                    }
                }
                Step::Verified(Some(i)) => {
                    let d = &repo.delegations[*i].1;
                    if !d.role.allows(tag) {
                        continue;
                    }
                    if let Some(meta) = d.file.signed().targets.get(tag) {
                        return found(repo, name, meta, tag);
                    }
                }
            }
        }
    }
    Err(Unresolved::NotSigned)
}

fn found(
    repo: &VerifiedRepository,
    role: &str,
    meta: &TargetMeta,
    tag: &str,
) -> std::result::Result<TrustedTarget, Unresolved> {
    if role != RELEASES && role != "targets" {
        return Err(Unresolved::OnlyIn(role.to_owned()));
    }
    let sha = meta.hashes.get("sha256");
    let signers = repo
        .delegations
        .iter()
        .filter(|(n, d)| {
            n != RELEASES
                && d.role.allows(tag)
                && d.file
                    .signed()
                    .targets
                    .get(tag)
                    .is_some_and(|m| m.hashes.get("sha256") == sha && sha.is_some())
        })
        .map(|(n, _)| n.strip_prefix("targets/").unwrap_or(n).to_owned())
        .collect();
    Ok(TrustedTarget {
        role: role.to_owned(),
        meta: meta.clone(),
        signers,
    })
}

/// Checks that `leaf` is issued by `ca` (its signature, ECDSA P-256 with
/// SHA-256, made by the CA's key; issuer name = CA subject) and that both
/// are valid at `now`: notary's trust pinning by CA.
pub fn issued_by(
    leaf: &x509_cert::Certificate,
    ca: &x509_cert::Certificate,
    now: time::OffsetDateTime,
) -> Result<()> {
    use der::Encode;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let bad = |why: &str| Error::Certificate(format!("not issued by the pinned CA: {why}"));
    for (what, c) in [("certificate", leaf), ("CA certificate", ca)] {
        let v = c.tbs_certificate().validity();
        let t = now.unix_timestamp();
        if (v.not_before.to_unix_duration().as_secs() as i64) > t
            || (v.not_after.to_unix_duration().as_secs() as i64) < t
        {
            return Err(bad(&format!("the {what} is not valid now")));
        }
    }
    if leaf.tbs_certificate().issuer() != ca.tbs_certificate().subject() {
        return Err(bad("issuer name differs from the CA's subject"));
    }
    const ECDSA_SHA256: der::asn1::ObjectIdentifier =
        der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
    if leaf.signature_algorithm().oid != ECDSA_SHA256 {
        return Err(bad("only ECDSA with SHA-256 CA signatures are supported"));
    }
    let spki = ca
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| bad(&e.to_string()))?;
    let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
        .map_err(|_| bad("the CA key is not a P-256 key"))?;
    let sig = p256::ecdsa::Signature::from_der(leaf.signature().raw_bytes())
        .map_err(|_| bad("malformed signature"))?;
    let tbs = leaf
        .tbs_certificate()
        .to_der()
        .map_err(|e| bad(&e.to_string()))?;
    vk.verify(&tbs, &sig)
        .map_err(|_| bad("the CA's signature does not match"))
}

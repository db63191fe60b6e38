//! `repair` and `trust forget`: the explicit ways out of a repository that
//! does not verify, or that tufd must stop trusting.

use super::draft::{Draft, HeldKeys};
use super::fetch::Fetched;
use super::store::StoredRepository;
use super::txn::{Change, Outcome, Read};
use super::{EventSink, Trust, TrustError, existing, gun, no_targets_key};
use tufd_tuf::{RoleName, Signed, Targets};

impl Trust {
    /// `repair`: makes a repository whose delegations do not all verify
    /// verify again, naming every tag dropped and why (see [`plan`]).
    pub async fn repair(&self, repository: &str, events: &EventSink) -> Result<Change, TrustError> {
        let g = gun(repository)?;
        let engine = &self.engine;
        engine
            .transact_with(&g, events, Read::Lenient, |fetched, held| {
                let g = g.clone();
                async move {
                    let name = g.as_str();
                    let (f, draft) = existing(name, fetched)?;
                    let stored = engine.store.load(name)?;
                    plan(name, &f, draft, &held, stored.as_ref())
                }
            })
            .await
    }

    /// `trust forget`: removes `repository` from the local trust store, so
    /// the next operation trusts what the server serves anew. Whether it
    /// was stored.
    pub async fn forget(&self, repository: &str) -> Result<bool, TrustError> {
        let g = gun(repository)?;
        let lock = self.engine.lock_for(g.as_str());
        let _guard = lock.lock().await;
        let forgotten = self.engine.store.forget(g.as_str())?;
        tracing::warn!(gun = %g.as_str(), forgotten, "repository removed from the trust store");
        Ok(forgotten)
    }
}

/// The repair of a repository read leniently: every delegation that does
/// not verify is either re-signed with a key tufd holds and that the
/// delegation lists, with its last verified content (from the trust store;
/// empty if tufd never verified it), or, when tufd holds no such key, no
/// longer delegated by targets (needs the targets key). Tags in the broken
/// file are never re-signed as they are: a key the delegation does not list
/// signed them.
pub fn plan(
    name: &str,
    f: &Fetched,
    mut draft: Draft,
    held: &HeldKeys,
    stored: Option<&StoredRepository>,
) -> Result<Outcome, TrustError> {
    if f.repo.skipped.is_empty() {
        return Ok(Outcome::Unchanged(format!(
            "{name}: the repository verifies; nothing to repair"
        )));
    }
    let mut parts = Vec::new();
    let mut undelegate = Vec::new();
    let mut repaired = Vec::new();
    for s in &f.repo.skipped {
        repaired.push(s.name.clone());
        let last_good = stored
            .and_then(|st| st.files.delegations.get(&s.name))
            .and_then(|b| Signed::<Targets>::from_role_bytes(&s.name, b).ok())
            .map(|t| t.into_signed());
        let why = &s.reason;
        if !draft.signers_for(&s.name, held).is_empty() {
            let restored = last_good
                .as_ref()
                .map(|t| t.targets.clone())
                .unwrap_or_default();
            let role = draft.delegation_mut(&s.name);
            let dropped: Vec<String> = role
                .targets
                .iter()
                .filter(|(k, m)| restored.get(*k) != Some(*m))
                .map(|(k, _)| k.clone())
                .collect();
            role.targets = restored;
            if let Some(t) = &last_good {
                role.delegations = t.delegations.clone();
            }
            draft.mark(&s.name);
            parts.push(format!(
                "re-signed {} with {} ({}); dropped {}",
                s.name,
                match &last_good {
                    Some(t) => format!("its last verified content (v{})", t.version),
                    None => "no tags (tufd never verified a version of it)".into(),
                },
                why,
                list(&dropped)
            ));
        } else {
            let parent = RoleName::parse(&s.name)
                .ok()
                .and_then(|r| r.parent())
                .map(|p| p.to_string());
            if parent.as_deref() != Some("targets") {
                return Err(TrustError::NoKey(format!(
                    "{name}: {} does not verify ({why}) and tufd holds no key it lists, nor a key of its parent {}; load one with `tufctl key load`",
                    s.name,
                    parent.unwrap_or_default()
                )));
            }
            if draft.signers_for("targets", held).is_empty() {
                return Err(no_targets_key(name, &draft));
            }
            undelegate.push(s.name.clone());
            parts.push(format!(
                "{} is no longer delegated ({why}; tufd holds no key it lists); dropped {}; add its signers again with `tufctl signer add`",
                s.name,
                list(&s.targets)
            ));
        }
    }
    for role in &undelegate {
        draft.targets.delegations.remove_role(role);
        draft.mark("targets");
    }
    // Tags clients see now must still resolve the same afterwards.
    draft.expect = f
        .repo
        .resolved_targets()
        .into_iter()
        .filter(|t| !repaired.contains(&t.role))
        .map(|t| (t.name, Some(t.meta)))
        .collect();
    Ok(Outcome::Publish(
        Box::new(draft),
        format!("{name}: repaired: {}", parts.join("; ")),
    ))
}

fn list(tags: &[String]) -> String {
    if tags.is_empty() {
        "no tags".into()
    } else {
        format!("tags {}", tags.join(", "))
    }
}

//! `key rotate`: a repository key replaced in root.json.

use crate::trust::TrustError;
use crate::trust::draft::{Draft, HeldKeys};
use crate::trust::txn::Outcome;
use tufd_tuf::{Key, RoleName};

/// The new key, made (on a token or by the server) before the edit.
pub enum NewKey {
    /// A new targets key on a token.
    Targets(Key),
    /// A new snapshot key: on token `Some(name)`, or server-managed.
    Snapshot { key: Key, token: Option<String> },
    /// The server's new timestamp key.
    Timestamp(Key),
    /// A new root certificate key; the old root keys sign this root too.
    Root { cert: Key, old: Vec<Key> },
}

/// Refuses early (before any key is made) when tufd cannot sign root.
pub fn check(name: &str, draft: &Draft, held: &HeldKeys) -> Result<(), TrustError> {
    if draft.signers_for("root", held).is_empty() {
        return Err(TrustError::NoKey(format!(
            "{name}: rotating a key changes root.json, and tufd holds no root key of this repository"
        )));
    }
    Ok(())
}

/// The held root keys that sign now (they co-sign a root rotation).
pub fn current_root_keys(draft: &Draft, held: &HeldKeys) -> Vec<Key> {
    draft
        .signers_for("root", held)
        .into_iter()
        .map(|(k, _)| k.clone())
        .collect()
}

/// Puts `new` into root (and re-signs targets with a new targets key).
pub fn apply(name: &str, mut draft: Draft, new: NewKey) -> Result<Outcome, TrustError> {
    let md = |e| TrustError::metadata(name, e);
    let summary = match new {
        NewKey::Targets(key) => {
            draft
                .set_root_keys(&RoleName::Targets, std::slice::from_ref(&key))
                .map_err(md)?;
            draft.resign("targets");
            format!("{name}: targets key rotated to {}", key.id())
        }
        NewKey::Snapshot { key, token } => {
            draft
                .set_root_keys(&RoleName::Snapshot, std::slice::from_ref(&key))
                .map_err(md)?;
            match token {
                Some(t) => format!(
                    "{name}: snapshot key rotated to {} on token '{t}'",
                    key.id()
                ),
                None => format!(
                    "{name}: snapshot key rotated to the server-managed key {}",
                    key.id()
                ),
            }
        }
        NewKey::Timestamp(key) => {
            draft
                .set_root_keys(&RoleName::Timestamp, std::slice::from_ref(&key))
                .map_err(md)?;
            format!(
                "{name}: timestamp key rotated to the server-managed key {}",
                key.id()
            )
        }
        NewKey::Root { cert, old } => {
            draft
                .set_root_keys(&RoleName::Root, std::slice::from_ref(&cert))
                .map_err(md)?;
            draft.cosign_root(old);
            format!(
                "{name}: root key rotated to {} (signed by the old and the new root key)",
                cert.id()
            )
        }
    };
    Ok(Outcome::Publish(Box::new(draft), summary))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Kit;
    use super::*;

    #[test]
    fn a_targets_rotation_changes_root_and_resigns_targets() {
        let kit = Kit::new();
        let repo = kit.repository(&["alice"]);
        assert!(check(Kit::GUN, &kit.draft(&repo), &kit.held(&["alice"])).is_err());
        check(Kit::GUN, &kit.draft(&repo), &kit.admin()).unwrap();
        let Ok(Outcome::Publish(d, summary)) = apply(
            Kit::GUN,
            kit.draft(&repo),
            NewKey::Targets(kit.key("carol")),
        ) else {
            panic!()
        };
        assert_eq!(d.changed_roles(), ["root", "targets"], "{summary}");
        // Signed with the new targets key, the repository verifies.
        let mut held = kit.admin();
        held.extend(&kit.held(&["carol"]));
        let after = kit.publish(&repo, *d, &held);
        assert_eq!(after.repo.root.signed().version, 2);
    }
}

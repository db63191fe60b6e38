//! `repair`: a repository whose delegations do not all verify made to
//! verify again.

use super::signer::no_targets_key;
use crate::trust::TrustError;
use crate::trust::draft::{Draft, Expected, HeldKeys};
use crate::trust::fetch::Fetched;
use crate::trust::store::StoredRepository;
use crate::trust::txn::Outcome;
use tufd_tuf::{RoleName, Signed, Targets};

/// The repair of a repository read leniently: every delegation that does
/// not verify is either re-signed with a key tufd holds and that the
/// delegation lists, with its last verified content (from the trust store;
/// empty if tufd never verified it), or, when tufd holds no such key, no
/// longer delegated by targets (needs the targets key). Tags in the broken
/// file are never re-signed as they are: a key the delegation does not list
/// signed them.
pub fn apply(
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
            .and_then(|b| Signed::<Targets>::from_role_file(&s.name, b.clone()).ok())
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
            draft.resign(&s.name);
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
        draft.undelegate(role);
    }
    // Tags clients see now must still resolve the same afterwards.
    draft.expect = f
        .repo
        .resolved_targets()
        .into_iter()
        .filter(|t| !repaired.contains(&t.role))
        .map(|t| Expected {
            name: t.name,
            want: Some(t.meta),
            roles: Vec::new(),
        })
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

#[cfg(test)]
mod tests {
    use super::super::testkit::Kit;
    use super::*;

    /// releases signed by bob only, then bob removed with --force.
    fn broken(kit: &Kit) -> (Fetched, Fetched) {
        let repo = kit.repository(&["alice", "bob"]);
        let good = kit.sign(&repo, &kit.held(&["bob"]), "v1");
        let f = kit.fetched(&good);
        let Ok(Outcome::Publish(d, _)) = super::super::signer::remove(
            Kit::GUN,
            &f,
            kit.draft(&good),
            &kit.admin(),
            "bob",
            &RoleName::parse("targets/bob").unwrap(),
            true,
        ) else {
            panic!()
        };
        (good, kit.publish_lenient(*d))
    }

    #[test]
    fn with_a_listed_key_the_last_verified_content_is_resigned() {
        let kit = Kit::new();
        let (good, broken) = broken(&kit);
        assert_eq!(broken.repo.skipped.len(), 1);
        let stored = StoredRepository {
            root: Vec::new(),
            files: good.files.clone(),
        };
        let held = kit.held(&["alice"]);
        let Ok(Outcome::Publish(d, summary)) =
            apply(Kit::GUN, &broken, kit.draft(&broken), &held, Some(&stored))
        else {
            panic!()
        };
        assert!(summary.contains("last verified content"), "{summary}");
        assert!(summary.contains("dropped no tags"), "{summary}");
        let fixed = kit.publish(&broken, *d, &held);
        assert!(fixed.repo.skipped.is_empty());
        assert_eq!(fixed.repo.resolved_targets().len(), 1);
    }

    #[test]
    fn with_only_the_targets_key_the_role_is_undelegated_and_its_tags_named() {
        let kit = Kit::new();
        let (_, broken) = broken(&kit);
        let Ok(Outcome::Publish(d, summary)) =
            apply(Kit::GUN, &broken, kit.draft(&broken), &kit.admin(), None)
        else {
            panic!()
        };
        assert!(
            summary.contains("targets/releases is no longer delegated")
                && summary.contains("dropped tags v1"),
            "{summary}"
        );
        let fixed = kit.publish(&broken, *d, &kit.admin());
        assert!(fixed.repo.skipped.is_empty());
        // Without any key: refused with what to load.
        assert!(apply(Kit::GUN, &broken, kit.draft(&broken), &kit.held(&[]), None).is_err());
        // A repository that verifies needs nothing.
        assert!(matches!(
            apply(Kit::GUN, &fixed, kit.draft(&fixed), &kit.admin(), None),
            Ok(Outcome::Unchanged(_))
        ));
    }
}

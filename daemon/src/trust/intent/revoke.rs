//! `revoke`: a tag (or every tag) out of every role that lists it.

use crate::trust::TrustError;
use crate::trust::draft::{Draft, Expected, HeldKeys};
use crate::trust::txn::Outcome;

/// Removes `tag` (every tag when `None`) from every targets-type role that
/// lists it. Refused as a whole when a listing role cannot be signed by tufd.
pub fn apply(
    name: &str,
    mut draft: Draft,
    held: &HeldKeys,
    tag: Option<&str>,
    allowed: &dyn Fn(&str) -> bool,
) -> Result<Outcome, TrustError> {
    let mut roles: Vec<String> = vec!["targets".into()];
    roles.extend(draft.delegated_roles());
    let mut plan = Vec::new();
    let mut blocked = Vec::new();
    for r in &roles {
        let names: Vec<String> = draft
            .targets_role(r)
            .map(|t| {
                t.targets
                    .keys()
                    .filter(|k| tag.is_none_or(|x| x == k.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            continue;
        }
        if draft.signers_for(r, held).is_empty() {
            blocked.push(r.clone());
        } else {
            plan.push((r.clone(), names));
        }
    }
    let what = tag.map_or_else(|| "any tag".to_owned(), |t| format!("tag {t}"));
    let refused: Vec<&str> = plan
        .iter()
        .map(|(r, _)| r.as_str())
        .filter(|r| !allowed(r))
        .collect();
    if !refused.is_empty() {
        return Err(TrustError::NoKey(format!(
            "{name}: {what} is signed in {}, which the policy does not let you write; nothing was revoked",
            refused.join(", ")
        )));
    }
    if !blocked.is_empty() {
        return Err(TrustError::NoKey(format!(
            "{name}: {what} is also signed in {}, whose key tufd does not hold; nothing was revoked",
            blocked.join(", ")
        )));
    }
    if plan.is_empty() {
        return Err(TrustError::NotFound(format!("{name}: no {what} is signed")));
    }
    let mut parts = Vec::new();
    for (r, names) in &plan {
        for n in names {
            draft.remove_target(r, n);
            if !draft.expect.iter().any(|e| e.name == *n) {
                draft.expect.push(Expected {
                    name: n.clone(),
                    want: None,
                    roles: Vec::new(),
                });
            }
        }
        parts.push(format!("{} from {r}", names.join(", ")));
    }
    Ok(Outcome::Publish(
        Box::new(draft),
        format!("{name}: revoked {}", parts.join("; ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Kit;
    use super::*;

    #[test]
    fn revokes_from_every_role_or_from_none() {
        let kit = Kit::new();
        let held = kit.held(&["alice", "bob"]);
        let repo = kit.repository(&["alice", "bob"]);
        let repo = kit.sign(&repo, &held, "v1");
        // bob's key gone: bob's role lists v1, so nothing is revoked.
        let e = apply(
            Kit::GUN,
            kit.draft(&repo),
            &kit.held(&["alice"]),
            Some("v1"),
            &|_| true,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("targets/bob"), "{e}");
        // A role the caller's policy does not let it write: nothing revoked.
        let e = apply(Kit::GUN, kit.draft(&repo), &held, Some("v1"), &|r| {
            r != "targets/bob"
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("policy"), "{e}");
        let Outcome::Publish(draft, summary) =
            apply(Kit::GUN, kit.draft(&repo), &held, Some("v1"), &|_| true).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            draft.changed_roles(),
            ["targets/alice", "targets/bob", "targets/releases"],
            "{summary}"
        );
        assert_eq!(
            draft.expect,
            [Expected {
                name: "v1".to_owned(),
                want: None,
                roles: Vec::new(),
            }]
        );
        assert!(matches!(
            apply(Kit::GUN, kit.draft(&repo), &held, Some("nope"), &|_| true),
            Err(TrustError::NotFound(_))
        ));
    }
}

//! `sign`: tags into every signer role tufd holds a key of, as docker does.

use super::RELEASES;
use crate::trust::TagSpec;
use crate::trust::TrustError;
use crate::trust::draft::{Draft, Expected, HeldKeys};
use crate::trust::txn::Outcome;
use tufd_tuf::TargetMeta;

/// Signs `specs` (tags of one repository) into `draft`. As `docker trust
/// sign`: without delegations into targets; with them into every direct
/// delegation of targets whose key tufd holds and whose paths allow every
/// tag (targets/releases and the signer's own role). Unchanged when every
/// role already lists the same content. Only roles `allowed` (the caller's
/// policy) are written.
pub fn apply(
    name: &str,
    mut draft: Draft,
    held: &HeldKeys,
    specs: &[TagSpec],
    allowed: &dyn Fn(&str) -> bool,
) -> Result<Outcome, TrustError> {
    Ok(match apply_to(name, &mut draft, held, specs, allowed)? {
        Applied::Changed(summary) => Outcome::Publish(Box::new(draft), summary),
        Applied::Unchanged(why) => Outcome::Unchanged(why),
    })
}

/// What [`apply_to`] did.
pub enum Applied {
    /// The tags were put in; `draft.expect` lists them. The text describes it.
    Changed(String),
    /// Every role already lists them; the draft is untouched.
    Unchanged(String),
}

/// [`apply`] on a draft the caller keeps: on an error, or when nothing
/// changes, the draft is left exactly as it was (so a group of signs can
/// apply each caller's in turn without copying a repository of 100 000
/// tags for each).
pub fn apply_to(
    name: &str,
    draft: &mut Draft,
    held: &HeldKeys,
    specs: &[TagSpec],
    allowed: &dyn Fn(&str) -> bool,
) -> Result<Applied, TrustError> {
    let direct = draft.direct_delegations();
    let roles: Vec<String> = if direct.is_empty() {
        if draft.signers_for("targets", held).is_empty() {
            return Err(TrustError::NoKey(format!(
                "{name}: the repository has no signers and tufd holds no targets key; add a signer first (`tufctl signer add`)"
            )));
        }
        if !allowed("targets") {
            return Err(TrustError::NoKey(format!(
                "{name}: the policy does not let you write targets; nothing was signed"
            )));
        }
        vec!["targets".to_owned()]
    } else {
        let signable: Vec<String> = direct
            .iter()
            .filter(|r| !draft.signers_for(r, held).is_empty())
            .filter(|r| {
                let entry = draft.targets.delegations.role(r);
                specs
                    .iter()
                    .all(|s| entry.is_some_and(|e| e.allows(&s.tag)))
            })
            .cloned()
            .collect();
        let refused: Vec<&str> = signable
            .iter()
            .map(String::as_str)
            .filter(|r| !allowed(r))
            .collect();
        if !signable.is_empty() && refused.len() == signable.len() {
            return Err(TrustError::NoKey(format!(
                "{name}: the policy does not let you write {}; nothing was signed",
                refused.join(", ")
            )));
        }
        let signable: Vec<String> = signable.into_iter().filter(|r| allowed(r)).collect();
        if signable.is_empty() {
            let ids = draft
                .delegation_keys(RELEASES)
                .map(|(ids, _)| ids.join(", "))
                .unwrap_or_default();
            return Err(TrustError::NoKey(format!(
                "{name}: tufd holds no key of targets/releases or of any signer role (releases keys: {ids}); load your signer key with `tufctl key load`, or have an admin add you with `tufctl signer add`"
            )));
        }
        signable
    };
    let mut signed = Vec::new();
    for role in &roles {
        let mut changed = false;
        for s in specs {
            changed |= draft.put_target(role, &s.tag, TargetMeta::sha256_only(s.digest, s.size));
        }
        if changed {
            signed.push(role.clone());
        }
    }
    if signed.is_empty() {
        return Ok(Applied::Unchanged(format!(
            "{name}: already signed with these digests in {}",
            roles.join(", ")
        )));
    }
    draft.expect = specs
        .iter()
        .map(|s| Expected {
            name: s.tag.clone(),
            want: Some(TargetMeta::sha256_only(s.digest, s.size)),
            roles: roles.clone(),
        })
        .collect();
    Ok(Applied::Changed(format!(
        "{name}: signed {} into {}",
        tag_list(specs),
        signed.join(", ")
    )))
}

/// Most tags an answer names one by one; a larger batch is summed up.
const LISTED_TAGS: usize = 10;

/// The tags of `specs` for an answer: all of them up to [`LISTED_TAGS`],
/// else how many, with the first few and the last (a sign of 100 000 tags
/// answers in one line, not in 800 KB).
fn tag_list(specs: &[TagSpec]) -> String {
    let tags: Vec<&str> = specs.iter().map(|s| s.tag.as_str()).collect();
    match tags.split_last() {
        Some((last, rest)) if tags.len() > LISTED_TAGS => format!(
            "{} tags ({}, … {last})",
            tags.len(),
            rest[..LISTED_TAGS - 1].join(", ")
        ),
        _ => tags.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Kit;
    use super::*;

    #[test]
    fn a_large_batch_is_summed_up_in_the_answer() {
        let few: Vec<TagSpec> = (0..LISTED_TAGS)
            .map(|i| spec(&format!("t{i}"), 1))
            .collect();
        assert_eq!(tag_list(&few), "t0, t1, t2, t3, t4, t5, t6, t7, t8, t9");
        let many: Vec<TagSpec> = (0..100_000).map(|i| spec(&format!("t{i}"), 1)).collect();
        assert_eq!(
            tag_list(&many),
            "100000 tags (t0, t1, t2, t3, t4, t5, t6, t7, t8, … t99999)"
        );
    }

    fn spec(tag: &str, b: u8) -> TagSpec {
        TagSpec {
            repository: Kit::GUN.into(),
            tag: tag.into(),
            digest: [b; 32],
            size: 7,
        }
    }

    #[test]
    fn signs_into_releases_and_the_signers_own_role_only_with_held_keys() {
        let kit = Kit::new();
        let repo = kit.repository(&["alice", "bob"]);
        let held = kit.held(&["alice"]);
        let Outcome::Publish(draft, summary) =
            apply(Kit::GUN, kit.draft(&repo), &held, &[spec("v1", 1)], &|_| {
                true
            })
            .unwrap()
        else {
            panic!("nothing to publish")
        };
        assert!(
            summary.contains("into targets/alice, targets/releases"),
            "{summary}"
        );
        assert!(
            draft
                .targets_role("targets/bob")
                .is_none_or(|t| t.targets.is_empty())
        );
        assert_eq!(draft.changed_roles(), ["targets/alice", "targets/releases"]);
        // Signing the same content again changes nothing.
        let repo = kit.publish(&repo, *draft, &held);
        assert!(matches!(
            apply(Kit::GUN, kit.draft(&repo), &held, &[spec("v1", 1)], &|_| {
                true
            }),
            Ok(Outcome::Unchanged(_))
        ));
    }

    #[test]
    fn without_a_signer_key_it_says_what_to_do() {
        let kit = Kit::new();
        let repo = kit.repository(&["alice"]);
        let e = apply(
            Kit::GUN,
            kit.draft(&repo),
            &kit.held(&[]),
            &[spec("v1", 1)],
            &|_| true,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("tufctl key load"), "{e}");
    }
}

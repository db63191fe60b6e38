//! `signer add` and `signer remove`.

use super::RELEASES;
use crate::trust::TrustError;
use crate::trust::draft::{Draft, HeldKeys};
use crate::trust::fetch::Fetched;
use crate::trust::txn::Outcome;
use tufd_tuf::{Key, RoleName, Signed, Targets};

/// The error when tufd holds no targets key of the repository.
pub fn no_targets_key(gun: &str, draft: &Draft) -> TrustError {
    let ids = draft
        .root
        .roles
        .get("targets")
        .map(|r| r.keyids.join(", "))
        .unwrap_or_default();
    TrustError::NoKey(format!(
        "{gun}: tufd holds no targets key of this repository (key IDs {ids}); load it into a token with `tufctl key load`"
    ))
}

/// `signer add`: `key` becomes targets/NAME's key and joins targets/releases.
pub fn add(
    name: &str,
    mut draft: Draft,
    held: &HeldKeys,
    signer: &str,
    role: &RoleName,
    key: &Key,
) -> Result<Outcome, TrustError> {
    if draft.signers_for("targets", held).is_empty() {
        return Err(no_targets_key(name, &draft));
    }
    let id = key.id();
    let has = |r: &str| {
        draft
            .targets
            .delegations
            .role(r)
            .is_some_and(|d| d.keyids.contains(&id))
    };
    if has(role.as_str()) && has(RELEASES) {
        return Ok(Outcome::Unchanged(format!(
            "{name}: signer {signer} already has key {id}"
        )));
    }
    let md = |e| TrustError::metadata(name, e);
    draft.delegate(role, key).map_err(md)?;
    draft
        .delegate(&RoleName::parse(RELEASES).map_err(md)?, key)
        .map_err(md)?;
    Ok(Outcome::Publish(
        Box::new(draft),
        format!("{name}: added signer {signer} (key {id}) to {role} and {RELEASES}"),
    ))
}

/// Whether the published file of `role` carries a signature by one of
/// `keyids`.
fn still_signed(f: &Fetched, role: &str, keyids: &[String]) -> bool {
    f.files
        .delegations
        .get(role)
        .and_then(|b| Signed::<Targets>::from_role_file(role, b.clone()).ok())
        .is_some_and(|s| s.signatures().iter().any(|sig| keyids.contains(&sig.keyid)))
}

/// `signer remove`: drops targets/NAME and its keys from targets/releases.
/// Refuses to remove the last releases key, or to leave targets/releases
/// signed only by removed keys, unless `force`. With a remaining releases
/// key, re-signs targets/releases in the same publish (v1 when it has no
/// file yet), so a sign racing the removal conflicts on that role's
/// version (see the transaction engine's module doc).
pub fn remove(
    name: &str,
    f: &Fetched,
    mut draft: Draft,
    held: &HeldKeys,
    signer: &str,
    role: &RoleName,
    force: bool,
) -> Result<Outcome, TrustError> {
    let Some(entry) = draft.targets.delegations.role(role.as_str()).cloned() else {
        return Err(TrustError::NotFound(format!(
            "{name}: there is no signer {signer}"
        )));
    };
    if draft.signers_for("targets", held).is_empty() {
        return Err(no_targets_key(name, &draft));
    }
    draft.undelegate(role.as_str());
    let mut summary = format!(
        "{name}: removed signer {signer} ({})",
        entry.keyids.join(", ")
    );
    if draft.targets.delegations.role(RELEASES).is_some() {
        draft.remove_delegation_keys(RELEASES, &entry.keyids);
        let remaining = draft
            .targets
            .delegations
            .role(RELEASES)
            .map(|r| r.keyids.clone())
            .unwrap_or_default();
        if remaining.is_empty() && !force {
            return Err(TrustError::Refused(format!(
                "{name}: {signer} holds the last key of {RELEASES}; without it no one can sign tags that `docker pull` trusts, and the tags signed now stop verifying. Add another signer first, or pass --allow-last-signer to remove it anyway"
            )));
        }
        if !remaining.is_empty() {
            if !draft.signers_for(RELEASES, held).is_empty() {
                draft.resign(RELEASES);
                summary.push_str(&format!("; re-signed {RELEASES}"));
            } else if draft.targets_role(RELEASES).is_some()
                && !still_signed(f, RELEASES, &remaining)
                && !force
            {
                return Err(TrustError::Refused(format!(
                    "{name}: {RELEASES} is signed only by {signer}'s key, and tufd holds no remaining signer key to re-sign it; after the removal its tags would not verify. Have a remaining signer sign first, or pass --allow-last-signer"
                )));
            }
        }
    }
    Ok(Outcome::Publish(Box::new(draft), summary))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Kit;
    use super::*;

    fn role(n: &str) -> RoleName {
        RoleName::parse(&format!("targets/{n}")).unwrap()
    }

    #[test]
    fn adding_twice_changes_nothing_and_needs_the_targets_key() {
        let kit = Kit::new();
        let repo = kit.repository(&["alice"]);
        let alice = kit.key("alice");
        let out = add(
            Kit::GUN,
            kit.draft(&repo),
            &kit.admin(),
            "alice",
            &role("alice"),
            &alice,
        );
        assert!(matches!(out, Ok(Outcome::Unchanged(_))));
        let bob = kit.key("bob");
        let e = add(
            Kit::GUN,
            kit.draft(&repo),
            &kit.held(&["alice"]),
            "bob",
            &role("bob"),
            &bob,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("no targets key"), "{e}");
        let Ok(Outcome::Publish(d, _)) = add(
            Kit::GUN,
            kit.draft(&repo),
            &kit.admin(),
            "bob",
            &role("bob"),
            &bob,
        ) else {
            panic!()
        };
        assert_eq!(d.changed_roles(), ["targets"]);
    }

    #[test]
    fn removal_refuses_to_orphan_releases_and_resigns_it_with_a_remaining_key() {
        let kit = Kit::new();
        let repo = kit.repository(&["alice", "bob"]);
        // Only bob signed: releases is signed by bob alone.
        let repo = kit.sign(&repo, &kit.held(&["bob"]), "v1");
        let f = kit.fetched(&repo);
        let e = remove(
            Kit::GUN,
            &f,
            kit.draft(&repo),
            &kit.admin(),
            "bob",
            &role("bob"),
            false,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("signed only by bob's key"), "{e}");
        assert!(
            remove(
                Kit::GUN,
                &f,
                kit.draft(&repo),
                &kit.admin(),
                "bob",
                &role("bob"),
                true
            )
            .is_ok()
        );
        // With alice's key held too, releases is re-signed in the same publish.
        let mut held = kit.admin();
        held.extend(&kit.held(&["alice"]));
        let Ok(Outcome::Publish(d, summary)) = remove(
            Kit::GUN,
            &f,
            kit.draft(&repo),
            &held,
            "bob",
            &role("bob"),
            false,
        ) else {
            panic!()
        };
        assert_eq!(
            d.changed_roles(),
            ["targets", "targets/releases"],
            "{summary}"
        );
        // The last releases key needs --force.
        let repo = kit.repository(&["alice"]);
        let f = kit.fetched(&repo);
        let e = remove(
            Kit::GUN,
            &f,
            kit.draft(&repo),
            &kit.admin(),
            "alice",
            &role("alice"),
            false,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("last key"), "{e}");
    }

    #[test]
    fn removal_with_a_releases_key_publishes_releases_even_without_a_file() {
        let kit = Kit::new();
        let repo = kit.repository(&["alice", "bob"]);
        let f = kit.fetched(&repo);
        let mut held = kit.admin();
        held.extend(&kit.held(&["alice"]));
        let Ok(Outcome::Publish(d, _)) = remove(
            Kit::GUN,
            &f,
            kit.draft(&repo),
            &held,
            "bob",
            &role("bob"),
            false,
        ) else {
            panic!()
        };
        assert_eq!(d.changed_roles(), ["targets", "targets/releases"]);
    }
}

//! Where a client's search for a target ends (TUF 1.0 §5.6.7, python-tuf's
//! `_preorder_depth_first_walk`): top-level targets first, then the
//! delegated roles whose paths match, depth first in the order they are
//! listed; a matching terminating delegation ends every search still
//! pending; the first role that lists the target is the answer; at most
//! [`MAX_VISITS`] roles are visited. A target tufd adds must be where that
//! search finds it.

use std::collections::HashSet;

use tufd_tuf::tuf1::Targets;

use super::super::error::RepoError;
use super::Change;

/// How many roles a client visits in one search at most (tufctl's client;
/// python-tuf's `max_delegations` of 32 lets it visit one more).
pub const MAX_VISITS: usize = 32;

impl Change<'_> {
    /// Checks that a client searching for `target` in the version this
    /// change makes comes to `role` (top-level `targets`, a named role or
    /// a hash bin), and that no role it searches before lists `target`
    /// (that role's entry would be the one clients get).
    pub(super) fn check_found_in(&mut self, target: &str, role: &str) -> Result<(), RepoError> {
        let mut stack = vec![("targets".to_owned(), String::new())];
        let mut visited: HashSet<String> = HashSet::new();
        // The matching terminating delegation that cut the search short,
        // and the role that delegates to it.
        let mut stopped: Option<(String, String)> = None;
        while let Some((current, _parent)) = stack.pop() {
            if !visited.insert(current.clone()) {
                continue;
            }
            if visited.len() > MAX_VISITS {
                return Err(RepoError::InvalidRequest(format!(
                    "clients would never find {target:?} in {role}: their search for it visits at most {MAX_VISITS} roles and {role} comes later; delegate {role} closer to targets, or add the target to a role searched earlier"
                )));
            }
            if current == role {
                return Ok(());
            }
            let content = self.searched(&current)?;
            if content.targets.contains_key(target) {
                let remove = if current == "targets" {
                    format!(
                        "`tufctl tuf remove {} {target}`",
                        self.layout.dir().display()
                    )
                } else {
                    format!(
                        "`tufctl tuf remove {} {target} --role {current}`",
                        self.layout.dir().display()
                    )
                };
                return Err(RepoError::AlreadyExists(format!(
                    "clients would not get {target:?} from {role}: their search for it reaches {current} first, which already lists it; add it to {current}, or remove it there first ({remove})"
                )));
            }
            let children = content
                .delegations
                .as_ref()
                .map(|d| d.roles_for_target(target))
                .unwrap_or_default();
            if let Some((terminating, _)) = children.iter().find(|(_, t)| *t) {
                stack.clear();
                stopped = Some((terminating.clone(), current.clone()));
            }
            for (name, _) in children.into_iter().rev() {
                stack.push((name, current.clone()));
            }
        }
        Err(RepoError::InvalidRequest(match stopped {
            Some((at, by)) => format!(
                "clients would never find {target:?} in {role}: their search for it stops at {at}, a terminating delegation from {by} whose paths match it (roles are searched depth first, in the order they are listed); add the target to {at}, or delegate {role} from {at}"
            ),
            None => format!(
                "clients would never find {target:?} in {role}: their search for it does not come to {role}"
            ),
        }))
    }

    /// A targets role as this change leaves it: staged, or as published
    /// (read once, checked link by link from top-level targets).
    fn searched(&mut self, name: &str) -> Result<&Targets, RepoError> {
        if name == "targets" {
            return Ok(self.targets());
        }
        if !self.delegated.contains_key(name) && !self.searched.contains_key(name) {
            let loaded = self.load_published(name)?;
            self.searched.insert(name.to_owned(), loaded);
        }
        Ok(self
            .delegated
            .get(name)
            .or_else(|| self.searched.get(name))
            .map(|(_, t)| t)
            .expect("loaded above"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use time::OffsetDateTime;
    use tufd_tuf::tuf1::{
        Common, DelegatedRole, Delegations, Metadata, Snapshot, TargetFile, Targets, Timestamp,
        Unrecognized,
    };

    use super::super::super::dir::Beneath;
    use super::super::super::expiry::ExpiryPolicy;
    use super::super::super::files::{Layout, Published, RoleFile};
    use super::*;

    fn soon() -> tufd_tuf::tuf1::Expires {
        tufd_tuf::tuf1::Expires::at(OffsetDateTime::now_utc())
    }

    fn role(name: &str, paths: &[&str], terminating: bool) -> DelegatedRole {
        DelegatedRole {
            name: name.into(),
            keyids: Vec::new(),
            threshold: 1,
            terminating,
            paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
            path_hash_prefixes: None,
            unrecognized: Unrecognized::new(),
        }
    }

    fn targets(roles: Vec<DelegatedRole>) -> Targets {
        Targets {
            common: Common::new("targets", soon()),
            targets: BTreeMap::new(),
            delegations: (!roles.is_empty()).then(|| Delegations {
                keys: BTreeMap::new(),
                roles: Some(roles),
                succinct_roles: None,
                unrecognized: Unrecognized::new(),
            }),
            unrecognized: Unrecognized::new(),
        }
    }

    fn file() -> TargetFile {
        TargetFile {
            length: 1,
            hashes: BTreeMap::from([("sha256".into(), "00".into())]),
            unrecognized: Unrecognized::new(),
        }
    }

    /// A published state whose top-level targets delegates `top`; the
    /// roles in `staged` are staged in the change (nothing is read from
    /// disk: the search must not need to).
    fn check(
        top: Vec<DelegatedRole>,
        top_lists: &[&str],
        staged: Vec<(&str, &str, Targets)>,
        target: &str,
        role: &str,
    ) -> Result<(), RepoError> {
        let d = tempfile::tempdir().unwrap();
        let layout =
            Layout::open(&Beneath::new(d.path().to_owned(), PathBuf::from("r")), true).unwrap();
        let mut t = targets(top);
        for name in top_lists {
            t.targets.insert((*name).to_owned(), file());
        }
        let snapshot = Snapshot {
            common: Common::new("snapshot", soon()),
            meta: BTreeMap::new(),
            unrecognized: Unrecognized::new(),
        };
        let timestamp = Timestamp {
            common: Common::new("timestamp", soon()),
            meta: BTreeMap::new(),
            unrecognized: Unrecognized::new(),
        };
        let published = Published {
            root: RoleFile::new(Metadata::new(tufd_tuf::tuf1::Root {
                common: Common::new("root", soon()),
                consistent_snapshot: Some(true),
                keys: BTreeMap::new(),
                roles: BTreeMap::new(),
                unrecognized: Unrecognized::new(),
            }))
            .unwrap(),
            targets: RoleFile::new(Metadata::new(t)).unwrap(),
            snapshot: RoleFile::new(Metadata::new(snapshot)).unwrap(),
            timestamp: RoleFile::new(Metadata::new(timestamp)).unwrap(),
        };
        let expiry = ExpiryPolicy::default();
        let mut change = Change::new(&layout, &published, &expiry, OffsetDateTime::now_utc());
        for (name, parent, content) in staged {
            change
                .delegated
                .insert(name.to_owned(), (parent.to_owned(), content));
        }
        change.check_found_in(target, role)
    }

    #[test]
    fn a_terminating_role_listed_first_hides_the_roles_after_it() {
        let top = vec![role("A", &["app/*"], true), role("B", &["app/*"], false)];
        let staged = || {
            vec![
                ("A", "targets", targets(Vec::new())),
                ("B", "targets", targets(Vec::new())),
            ]
        };
        let e = check(top.clone(), &[], staged(), "app/x.txt", "B").unwrap_err();
        assert!(
            e.to_string()
                .contains("stops at A, a terminating delegation from targets"),
            "{e}"
        );
        check(top.clone(), &[], staged(), "app/x.txt", "A").unwrap();
        // Not terminating: the search goes on to B.
        let top = vec![role("A", &["app/*"], false), role("B", &["app/*"], false)];
        check(top.clone(), &[], staged(), "app/x.txt", "B").unwrap();
        // Unless A lists the target already.
        let mut a = targets(Vec::new());
        a.targets.insert("app/x.txt".into(), file());
        let e = check(
            top.clone(),
            &[],
            vec![("A", "targets", a), ("B", "targets", targets(Vec::new()))],
            "app/x.txt",
            "B",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("reaches A first, which already lists it")
                && e.to_string().contains("--role A"),
            "{e}"
        );
        // Top-level targets is searched before every delegated role.
        let e = check(top, &["app/x.txt"], staged(), "app/x.txt", "B").unwrap_err();
        assert!(e.to_string().contains("reaches targets first"), "{e}");
    }

    #[test]
    fn the_search_is_depth_first_and_a_nested_terminating_role_ends_it() {
        // targets → A (a/*) → A1 (a/*, terminating); targets → B (a/*).
        let top = vec![role("A", &["a/*"], false), role("B", &["a/*"], false)];
        let staged = || {
            vec![
                ("A", "targets", targets(vec![role("A1", &["a/*"], true)])),
                ("A1", "A", targets(Vec::new())),
                ("B", "targets", targets(Vec::new())),
            ]
        };
        check(top.clone(), &[], staged(), "a/x", "A1").unwrap();
        let e = check(top.clone(), &[], staged(), "a/x", "B").unwrap_err();
        assert!(
            e.to_string()
                .contains("stops at A1, a terminating delegation from A"),
            "{e}"
        );
        // A path A1 does not serve: A's subtree yields nothing, B is next.
        let top = vec![
            role("A", &["a/*", "b/*"], false),
            role("B", &["b/*"], false),
        ];
        check(top, &[], staged(), "b/x", "B").unwrap();
    }

    #[test]
    fn roles_past_the_clients_visit_limit_are_refused() {
        // targets → R0 → R1 → … each matching, none listing the target.
        let mut staged = Vec::new();
        let names: Vec<String> = (0..=MAX_VISITS).map(|i| format!("R{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            let parent = if i == 0 {
                "targets"
            } else {
                names[i - 1].as_str()
            };
            let below = match names.get(i + 1) {
                Some(next) => vec![role(next, &["*"], false)],
                None => Vec::new(),
            };
            staged.push((name.as_str(), parent, targets(below)));
        }
        let top = vec![role("R0", &["*"], false)];
        check(
            top.clone(),
            &[],
            staged.clone(),
            "x",
            &names[MAX_VISITS - 2],
        )
        .unwrap();
        let last = &names[MAX_VISITS - 1];
        let e = check(top, &[], staged, "x", last).unwrap_err();
        assert!(e.to_string().contains("visits at most 32 roles"), "{e}");
    }
}

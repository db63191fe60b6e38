//! Edits of the delegation graph: finding and loading delegated roles at
//! any depth (each checked link by link from top-level targets),
//! delegating (nested), removing a delegation, rotating a delegated
//! role's keys.

use std::collections::BTreeMap;

use tufd_tuf::tuf1::{DelegatedRole, Delegations, Key, Targets, Unrecognized};

use super::super::error::RepoError;
use super::super::sign::check_threshold;
use super::super::tree::{MAX_DEPTH, Tree};
use super::{BINS_PREFIX, Change, check_role_name, empty_targets};

impl Change<'_> {
    /// The published named roles (not verified: for finding roles).
    pub(super) fn tree(&mut self) -> Result<&Tree, RepoError> {
        if self.tree.is_none() {
            let tree = Tree::read(
                self.layout,
                &self.published.snapshot.metadata.signed,
                false,
                None,
            )?;
            self.tree = Some(tree);
        }
        Ok(self.tree.as_ref().expect("read above"))
    }

    /// The published role `name` (a named role at any depth or a hash
    /// bin), checked link by link from top-level targets, and the role
    /// that delegates to it.
    pub(super) fn load_published(&mut self, name: &str) -> Result<(String, Targets), RepoError> {
        let chain: Vec<String> = match self.tree()?.get(name) {
            Some(_) => self
                .tree()?
                .chain(name)
                .iter()
                .map(|n| n.name.clone())
                .collect(),
            None => vec![name.to_owned()],
        };
        let mut parent_name = "targets".to_owned();
        let mut parent: Option<Targets> = None;
        for link in chain {
            let p = parent
                .as_ref()
                .unwrap_or(&self.published.targets.metadata.signed);
            let file = self.published.read_delegated(self.layout, &link, p)?;
            if link == name {
                return Ok((parent_name, file.metadata.signed));
            }
            parent = Some(file.metadata.signed);
            parent_name = link;
        }
        Err(RepoError::NotFound(no_role(name)))
    }

    pub(super) fn delegated_mut(&mut self, name: &str) -> Result<&mut Targets, RepoError> {
        if !self.delegated.contains_key(name) {
            let loaded = match self.searched.remove(name) {
                Some(read) => read,
                None => self.load_published(name)?,
            };
            self.delegated.insert(name.to_owned(), loaded);
        }
        Ok(&mut self.delegated.get_mut(name).expect("inserted above").1)
    }

    /// The targets role `name` (`targets` or a delegated role), staged for
    /// the next version.
    pub(super) fn role_mut(&mut self, name: &str) -> Result<&mut Targets, RepoError> {
        if name == "targets" {
            Ok(self.targets_mut())
        } else {
            self.delegated_mut(name)
        }
    }

    /// Whether a named role exists (published or created in this change).
    pub(super) fn role_exists(&mut self, name: &str) -> Result<bool, RepoError> {
        Ok(self.delegated.contains_key(name) || self.tree()?.get(name).is_some())
    }

    /// Delegates `paths` from `parent` (`targets` or a named delegated
    /// role) to a new role signed by `key`. Role names are unique in the
    /// repository (snapshot lists every role by name).
    pub fn delegate(
        &mut self,
        name: &str,
        parent: &str,
        key: Key,
        paths: Vec<String>,
        terminating: bool,
    ) -> Result<(), RepoError> {
        check_role_name(name)?;
        if paths.is_empty() {
            return Err(RepoError::InvalidRequest(format!(
                "delegate at least one path pattern to {name}"
            )));
        }
        if self.role_exists(name)? {
            let by = self
                .tree()?
                .get(name)
                .map_or("this change".to_owned(), |n| n.parent.clone());
            return Err(RepoError::AlreadyExists(format!(
                "the repository already has a role {name} (delegated by {by}); role names are unique"
            )));
        }
        if parent != "targets" {
            let Some(p) = self.tree()?.get(parent) else {
                return Err(RepoError::NotFound(format!(
                    "{}; delegate from targets or an existing delegated role",
                    no_role(parent)
                )));
            };
            if p.depth >= MAX_DEPTH {
                return Err(RepoError::InvalidRequest(format!(
                    "{parent} is {} levels below targets: delegations nest at most {MAX_DEPTH} deep",
                    p.depth
                )));
            }
        }
        let keyid = key.key_id();
        let expiry = self.expiry;
        let now = self.now;
        let d = self
            .role_mut(parent)?
            .delegations
            .get_or_insert_with(|| Delegations {
                keys: BTreeMap::new(),
                roles: Some(Vec::new()),
                succinct_roles: None,
                unrecognized: Unrecognized::new(),
            });
        if d.succinct_roles.is_some() {
            return Err(RepoError::InvalidRequest(format!(
                "{parent} delegates to hash bins; TUF allows either hash bins or named roles in one delegation"
            )));
        }
        d.roles.get_or_insert_with(Vec::new).push(DelegatedRole {
            name: name.to_owned(),
            keyids: vec![keyid.clone()],
            threshold: 1,
            terminating,
            paths: Some(paths.clone()),
            path_hash_prefixes: None,
            unrecognized: Unrecognized::new(),
        });
        d.keys.insert(keyid, key);
        self.delegated.insert(
            name.to_owned(),
            (parent.to_owned(), empty_targets(name, expiry, now)),
        );
        self.summary.push(format!(
            "delegated {} from {parent} to {name}",
            paths.join(", ")
        ));
        Ok(())
    }

    /// Removes the delegation to `name` from the role that delegates to
    /// it. A role that delegates further is refused: its roles are
    /// removed first, one by one, so nothing is dropped by surprise. The
    /// role stays listed in snapshot (python-tuf refuses a snapshot that
    /// drops a role it listed before); clients no longer reach it.
    pub fn undelegate(&mut self, name: &str) -> Result<(), RepoError> {
        let tree = self.tree()?;
        let node = tree.get(name).ok_or_else(|| {
            RepoError::NotFound(format!(
                "{} (hash bins are not removed one by one)",
                no_role(name)
            ))
        })?;
        let children: Vec<String> = tree.children(name).iter().map(|c| c.name.clone()).collect();
        if !children.is_empty() {
            return Err(RepoError::InvalidRequest(format!(
                "{name} delegates to {}: remove those roles first (`tufctl tuf undelegate {} {}`)",
                children.join(", "),
                self.layout.dir().display(),
                children[0]
            )));
        }
        let parent = node.parent.clone();
        let d = self
            .role_mut(&parent)?
            .delegations
            .as_mut()
            .ok_or_else(|| RepoError::NotFound(no_role(name)))?;
        if let Some(roles) = d.roles.as_mut() {
            roles.retain(|r| r.name != name);
        }
        prune_keys(d);
        if d.roles.as_ref().is_none_or(Vec::is_empty) && d.succinct_roles.is_none() {
            self.role_mut(&parent)?.delegations = None;
        }
        self.delegated.remove(name);
        self.summary
            .push(format!("removed the delegation from {parent} to {name}"));
        Ok(())
    }

    /// Replaces the keys of delegated role `name` (at any depth), or of
    /// every hash bin (`name` = `bins`), by `keys` (threshold
    /// `threshold`) in the role that delegates to it, and re-signs the
    /// role (each bin) with them.
    pub fn rotate_delegated(
        &mut self,
        name: &str,
        keys: Vec<Key>,
        threshold: u64,
    ) -> Result<(), RepoError> {
        check_threshold(name, threshold, keys.len())?;
        let ids: Vec<String> = keys.iter().map(Key::key_id).collect();
        let parent = match self.tree()?.get(name) {
            Some(n) => n.parent.clone(),
            None if name == BINS_PREFIX => "targets".to_owned(),
            None => {
                return Err(RepoError::NotFound(format!(
                    "{}: rotate a top-level role, a delegated role or bins",
                    no_role(name)
                )));
            }
        };
        let no_role = || RepoError::NotFound(no_role(name));
        let d = self
            .role_mut(&parent)?
            .delegations
            .as_mut()
            .ok_or_else(no_role)?;
        let unchanged = |keyids: &[String], t: u64| {
            if keyids == ids.as_slice() && t == threshold {
                return Err(RepoError::InvalidRequest(format!(
                    "the new {name} keys are the keys the role has: nothing rotated"
                )));
            }
            Ok(())
        };
        let resign: Vec<String> = match (name, d.succinct_roles.as_mut()) {
            (BINS_PREFIX, Some(bins)) => {
                unchanged(&bins.keyids, bins.threshold)?;
                bins.keyids = ids;
                bins.threshold = threshold;
                (0..bins.bin_count()).map(|n| bins.bin_name(n)).collect()
            }
            _ => {
                let role = d
                    .roles
                    .iter_mut()
                    .flatten()
                    .find(|r| r.name == name)
                    .ok_or_else(no_role)?;
                unchanged(&role.keyids, role.threshold)?;
                role.keyids = ids;
                role.threshold = threshold;
                vec![name.to_owned()]
            }
        };
        d.keys.extend(keys.into_iter().map(|k| (k.key_id(), k)));
        prune_keys(d);
        for role in resign {
            self.delegated_mut(&role)?;
        }
        self.summary.push(format!("rotated the {name} keys"));
        Ok(())
    }
}

/// "the repository delegates no role NAME".
pub(super) fn no_role(name: &str) -> String {
    format!("the repository delegates no role {name:?}")
}

/// Drops the keys no role of `d` uses any more.
fn prune_keys(d: &mut Delegations) {
    let used: Vec<String> = d
        .roles
        .iter()
        .flatten()
        .flat_map(|r| r.keyids.iter())
        .chain(d.succinct_roles.iter().flat_map(|s| s.keyids.iter()))
        .cloned()
        .collect();
    d.keys.retain(|id, _| used.contains(id));
}

//! The delegation graph of a published repository: every targets role a
//! client can reach from top-level targets (named roles at any depth, hash
//! bins), in the pre-order a client searches them, with who delegates
//! each, its keys, version and expiry.
//!
//! Roles are skimmed, not verified (their `targets` maps are skipped, so a
//! flat 100 000-target role costs a scan, not a model): the tree is for
//! finding roles and scheduling, never to build on. Edits load the roles
//! they change verified ([`super::edit::Change`]).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use tufd_tuf::tuf1::names::path_matches;
use tufd_tuf::tuf1::{Delegations, Expires, Snapshot};

use super::error::RepoError;
use super::files::Layout;

/// How deep delegations may nest below top-level targets (python-tuf
/// visits at most 32 roles per search).
pub const MAX_DEPTH: usize = 8;

/// The delegations, version and expiry of a targets role; its targets
/// are skipped.
#[derive(Deserialize)]
struct Skim {
    signed: SkimSigned,
}

#[derive(Deserialize)]
struct SkimSigned {
    version: u64,
    expires: Expires,
    #[serde(default)]
    delegations: Option<Delegations>,
}

/// One delegated role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Role name.
    pub name: String,
    /// The role that delegates to it (`targets` or a named role).
    pub parent: String,
    /// Its delegation's path patterns (empty for a hash bin).
    pub paths: Vec<String>,
    /// Whether it is a hash bin (TAP 15).
    pub bin: bool,
    /// Key IDs the parent lists for it.
    pub keyids: Vec<String>,
    /// Its threshold.
    pub threshold: u64,
    /// Published version.
    pub version: u64,
    /// Published expiry.
    pub expires: Expires,
    /// Depth below top-level targets (1: delegated by targets).
    pub depth: usize,
}

/// The delegated roles of a published version, in search order.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// Top-level targets' version and expiry.
    pub targets: Option<(u64, Expires)>,
    nodes: Vec<Node>,
    /// Position of each role in `nodes`.
    index: HashMap<String, usize>,
    bins: bool,
}

fn skim(layout: &Layout, role: &str, version: u64) -> Result<SkimSigned, RepoError> {
    let path = layout.metadata_file(role, version);
    let bytes = layout.read(&path)?;
    let s: Skim = serde_json::from_slice(&bytes)
        .map_err(|e| RepoError::Internal(format!("{}: not TUF metadata: {e}", path.display())))?;
    Ok(s.signed)
}

/// The version of `role` that `snapshot` lists.
fn listed(snapshot: &Snapshot, role: &str) -> Result<u64, RepoError> {
    snapshot
        .meta
        .get(&format!("{role}.json"))
        .map(|m| m.version)
        .ok_or_else(|| RepoError::Internal(format!("snapshot lists no {role}.json")))
}

impl Tree {
    /// Reads the graph of the version `snapshot` describes; with
    /// `bins`, every hash bin too. A hash bin at the version `previous`
    /// (a graph read before) knows is not read again: a published
    /// version's files never change, and an edit changes few bins.
    pub fn read(
        layout: &Layout,
        snapshot: &Snapshot,
        bins: bool,
        previous: Option<&Tree>,
    ) -> Result<Self, RepoError> {
        let top = skim(layout, "targets", listed(snapshot, "targets")?)?;
        let mut tree = Tree {
            targets: Some((top.version, top.expires)),
            nodes: Vec::new(),
            index: HashMap::new(),
            bins,
        };
        tree.walk(layout, snapshot, previous, "targets", top.delegations, 1)?;
        Ok(tree)
    }

    fn push(&mut self, node: Node) {
        self.index.insert(node.name.clone(), self.nodes.len());
        self.nodes.push(node);
    }

    /// Adds the roles `parent` delegates to (and theirs), depth first.
    fn walk(
        &mut self,
        layout: &Layout,
        snapshot: &Snapshot,
        previous: Option<&Tree>,
        parent: &str,
        delegations: Option<Delegations>,
        depth: usize,
    ) -> Result<(), RepoError> {
        let Some(d) = delegations else {
            return Ok(());
        };
        if let Some(bins) = d.succinct_roles.as_ref().filter(|_| self.bins) {
            for n in 0..bins.bin_count() {
                let name = bins.bin_name(n);
                let version = listed(snapshot, &name)?;
                let known = previous
                    .and_then(|p| p.get(&name))
                    .filter(|b| b.bin && b.version == version);
                let expires = match known {
                    Some(b) => b.expires,
                    None => skim(layout, &name, version)?.expires,
                };
                self.push(Node {
                    name,
                    parent: parent.to_owned(),
                    paths: Vec::new(),
                    bin: true,
                    keyids: bins.keyids.clone(),
                    threshold: bins.threshold,
                    version,
                    expires,
                    depth,
                });
            }
        }
        for r in d.roles.iter().flatten() {
            if self.get(&r.name).is_some() || r.name == "targets" {
                // A name already reached (a cycle, or a second way to
                // it): searched once, as a client does.
                continue;
            }
            let s = skim(layout, &r.name, listed(snapshot, &r.name)?)?;
            self.push(Node {
                name: r.name.clone(),
                parent: parent.to_owned(),
                paths: r.paths.clone().unwrap_or_default(),
                bin: false,
                keyids: r.keyids.clone(),
                threshold: r.threshold,
                version: s.version,
                expires: s.expires,
                depth,
            });
            if depth < MAX_DEPTH {
                self.walk(
                    layout,
                    snapshot,
                    previous,
                    &r.name,
                    s.delegations,
                    depth + 1,
                )?;
            }
        }
        Ok(())
    }

    /// Every delegated role, in search order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The role `name`.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// The named roles `name` delegates to.
    pub fn children(&self, name: &str) -> Vec<&Node> {
        self.nodes.iter().filter(|n| n.parent == name).collect()
    }

    /// The roles from the one targets delegates to down to `name`.
    pub fn chain(&self, name: &str) -> Vec<&Node> {
        let mut out = Vec::new();
        let mut at = self.get(name);
        while let Some(n) = at {
            out.push(n);
            if out.len() > MAX_DEPTH + 1 {
                break;
            }
            at = self.get(&n.parent);
        }
        out.reverse();
        out
    }

    /// Whether a client searching for `target` can reach `name`: every
    /// delegation on the way matches the path.
    pub fn reaches(&self, name: &str, target: &str) -> bool {
        self.chain(name)
            .iter()
            .all(|n| n.bin || n.paths.iter().any(|p| path_matches(p, target)))
    }
}

/// The versions a snapshot lists, by file name: equal maps, equal trees.
pub fn versions(snapshot: &Snapshot) -> BTreeMap<String, u64> {
    snapshot
        .meta
        .iter()
        .map(|(k, v)| (k.clone(), v.version))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, parent: &str, paths: &[&str], depth: usize) -> Node {
        Node {
            name: name.into(),
            parent: parent.into(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            bin: false,
            keyids: Vec::new(),
            threshold: 1,
            version: 1,
            expires: Expires::at(time::OffsetDateTime::UNIX_EPOCH),
            depth,
        }
    }

    #[test]
    fn a_nested_role_is_reached_only_through_every_delegation_above_it() {
        let mut tree = Tree::default();
        tree.push(node("A", "targets", &["a/*", "a/b/*"], 1));
        tree.push(node("B", "A", &["a/b/*", "c/*"], 2));
        tree.push(node("C", "targets", &["c/*"], 1));
        let chain: Vec<&str> = tree.chain("B").iter().map(|n| n.name.as_str()).collect();
        assert_eq!(chain, ["A", "B"]);
        assert!(tree.reaches("B", "a/b/x"));
        // B's own pattern matches c/x, A's do not: a client never gets there.
        assert!(!tree.reaches("B", "c/x"));
        assert!(!tree.reaches("B", "a/x"));
        assert!(tree.reaches("A", "a/x"));
        let children: Vec<&str> = tree.children("A").iter().map(|n| n.name.as_str()).collect();
        assert_eq!(children, ["B"]);
        assert!(tree.children("B").is_empty());
        assert!(tree.chain("nobody").is_empty());
    }
}

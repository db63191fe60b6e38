//! What `tuf status` reports of each role: version, expiry, keys, who
//! delegates it, and when the daemon signs it next on its own, or that it
//! needs its key holder.

use tufd_tuf::tuf1::Expires;

use super::expiry::ExpiryPolicy;
use super::files::Published;
use super::refresh::{Scheduled, targets_roles};
use super::requests::RoleState;
use super::sign::Signers;
use super::tree::Tree;

/// The roles of `published`: the top-level ones, then, given `tree`,
/// every delegated role (hash bins as one `bins-*` entry: newest version,
/// earliest expiry). `online` holds the keys the daemon signs with on its
/// own.
pub fn role_states(
    published: &Published,
    tree: Option<&Tree>,
    expiry: &ExpiryPolicy,
    online: &Signers,
) -> Vec<RoleState> {
    let root = &published.root.metadata.signed;
    let top = |role: &str, version: u64, expires: Expires| {
        let keys = root.roles.get(role);
        let keyids = keys.map(|k| k.keyids.clone()).unwrap_or_default();
        let threshold = keys.map_or(0, |k| k.threshold);
        // The daemon never signs root on its own: a new root is staged
        // and signed by its holders (`tuf stage`, `tuf sign`). Targets is
        // re-signed only with keys the daemon can use alone; snapshot and
        // timestamp are always tried (a failure is reported as the last
        // refresh error).
        let can = role != "root" && online.can_sign(&keyids, threshold);
        let tried = can || role == "snapshot" || role == "timestamp";
        RoleState {
            role: role.to_owned(),
            version,
            expires: expires.time(),
            keyids,
            threshold,
            parent: if role == "root" { "" } else { "root" }.into(),
            next_refresh: tried.then(|| expiry.due(role, expires)),
            needs_holder: !can,
        }
    };
    let mut roles = vec![
        top("root", published.root.version(), root.common.expires),
        top(
            "targets",
            published.targets.version(),
            published.targets.metadata.signed.common.expires,
        ),
        top(
            "snapshot",
            published.snapshot.version(),
            published.snapshot.metadata.signed.common.expires,
        ),
        top(
            "timestamp",
            published.timestamp.version(),
            published.timestamp.metadata.signed.common.expires,
        ),
    ];
    let Some(tree) = tree else {
        return roles;
    };
    let mut bins: Option<RoleState> = None;
    for s in targets_roles(tree, root, expiry)
        .into_iter()
        .filter(|s| s.role != "targets")
    {
        let state = delegated_state(&s, online);
        if !s.bin {
            roles.push(state);
            continue;
        }
        bins = Some(match bins {
            None => RoleState {
                role: format!("{}-*", prefix(&s.role)),
                ..state
            },
            Some(b) => RoleState {
                version: b.version.max(state.version),
                expires: b.expires.min(state.expires),
                next_refresh: b.next_refresh.min(state.next_refresh),
                ..b
            },
        });
    }
    roles.extend(bins);
    roles
}

fn prefix(bin: &str) -> &str {
    bin.rsplit_once('-').map_or(bin, |(p, _)| p)
}

fn delegated_state(s: &Scheduled, online: &Signers) -> RoleState {
    let can = online.can_sign(&s.keyids, s.threshold);
    RoleState {
        role: s.role.clone(),
        version: s.version,
        expires: s.expires.time(),
        keyids: s.keyids.clone(),
        threshold: s.threshold,
        parent: s.parent.clone(),
        next_refresh: can.then_some(s.due),
        needs_holder: !can,
    }
}

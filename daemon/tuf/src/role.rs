//! Role names: `root`, `targets`, `snapshot`, `timestamp` and delegations
//! `targets/<name>` (nesting allowed), validated as notary's
//! `data.IsDelegation` does.

use std::fmt;

use crate::error::{Error, Result};

/// A role of a Notary v1 repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoleName {
    /// `root`
    Root,
    /// `targets`
    Targets,
    /// `snapshot`
    Snapshot,
    /// `timestamp`
    Timestamp,
    /// `targets/<name>`; the full name including the `targets/` prefix.
    Delegation(String),
}

impl RoleName {
    /// Parses and validates a role name.
    ///
    /// Delegations must start with `targets/`, use only `a-z 0-9 - _ /`,
    /// be shorter than 256 bytes and be a clean path (no empty, `.` or `..`
    /// segments, no trailing slash).
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "root" => RoleName::Root,
            "targets" => RoleName::Targets,
            "snapshot" => RoleName::Snapshot,
            "timestamp" => RoleName::Timestamp,
            _ if is_delegation(name) => RoleName::Delegation(name.to_owned()),
            _ => return Err(Error::InvalidRoleName(name.to_owned())),
        })
    }

    /// The name as written in metadata and URLs.
    pub fn as_str(&self) -> &str {
        match self {
            RoleName::Root => "root",
            RoleName::Targets => "targets",
            RoleName::Snapshot => "snapshot",
            RoleName::Timestamp => "timestamp",
            RoleName::Delegation(name) => name,
        }
    }

    /// Whether this is a targets-type role (targets or a delegation).
    pub fn is_targets_type(&self) -> bool {
        matches!(self, RoleName::Targets | RoleName::Delegation(_))
    }

    /// The delegating role: `targets` for `targets/a`, `targets/a` for
    /// `targets/a/b`; `None` for top-level roles.
    pub fn parent(&self) -> Option<RoleName> {
        match self {
            RoleName::Delegation(name) => {
                let (parent, _) = name.rsplit_once('/')?;
                if parent == "targets" {
                    Some(RoleName::Targets)
                } else {
                    Some(RoleName::Delegation(parent.to_owned()))
                }
            }
            _ => None,
        }
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RoleName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RoleName::parse(s)
    }
}

fn is_delegation(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("targets/") else {
        return false;
    };
    name.len() < 256
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'/'))
        && rest
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(RoleName::parse("root").unwrap(), RoleName::Root);
        let nested = RoleName::parse("targets/a/b-c_1").unwrap();
        assert_eq!(
            nested.parent(),
            Some(RoleName::Delegation("targets/a".into()))
        );
        assert_eq!(
            RoleName::parse("targets/a").unwrap().parent(),
            Some(RoleName::Targets)
        );
        for bad in [
            "targets/",
            "targets//a",
            "targets/a/",
            "targets/A",
            "targets/../x",
            "foo",
            "targets/a.b",
        ] {
            assert!(RoleName::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Validated repository (GUN) and role names.
//!
//! Both end up unescaped in URL paths (`/v2/<gun>/_trust/tuf/<role>.json`), as
//! notary does it, so anything that a URL parser would reinterpret (`?`, `#`,
//! `%`, `..` segments, whitespace) is refused up front instead of silently
//! addressing another resource.

use std::borrow::Cow;
use std::fmt;

use crate::Error;

/// A notary repository name (Globally Unique Name), e.g. `localhost:5000/library/app`.
///
/// May contain `/` and `:`; they are sent unescaped, exactly as notary does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gun(String);

impl Gun {
    /// Validates `name` as a GUN that can be put into a URL path unchanged.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        check_path(&name).map_err(|reason| Error::InvalidName {
            kind: "repository",
            name: name.clone(),
            reason,
        })?;
        Ok(Gun(name))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Gun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Gun {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Gun::new(s)
    }
}

/// A TUF role name as notary-server addresses it: `root`, `targets`,
/// `snapshot`, `timestamp` or a delegation `targets/<name>[/<name>…]`.
///
/// Validation only guarantees the name is safe in a URL path; see
/// [`RoleName::is_notary_compatible`] for notary's stricter delegation rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleName(Cow<'static, str>);

impl RoleName {
    /// The root role.
    pub const ROOT: RoleName = RoleName(Cow::Borrowed("root"));
    /// The top-level targets role.
    pub const TARGETS: RoleName = RoleName(Cow::Borrowed("targets"));
    /// The snapshot role.
    pub const SNAPSHOT: RoleName = RoleName(Cow::Borrowed("snapshot"));
    /// The timestamp role.
    pub const TIMESTAMP: RoleName = RoleName(Cow::Borrowed("timestamp"));

    /// Validates a role name (`root`, `targets`, `snapshot`, `timestamp`, `targets/…`).
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name: String = name.into();
        let invalid = |reason| Error::InvalidName {
            kind: "role",
            name: name.clone(),
            reason,
        };
        match name.as_str() {
            "root" | "targets" | "snapshot" | "timestamp" => {}
            other => {
                let Some(rest) = other.strip_prefix("targets/") else {
                    return Err(invalid(
                        "must be root, targets, snapshot, timestamp or targets/<name>",
                    ));
                };
                check_path(rest).map_err(invalid)?;
                if rest.contains(':') {
                    return Err(invalid("':' is not allowed in a role name"));
                }
            }
        }
        Ok(RoleName(Cow::Owned(name)))
    }

    /// The name as notary writes it, e.g. `targets/releases`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether notary-server 0.7 accepts this name on publish: base roles, and
    /// delegations matching `^[-a-z0-9_/]+$` (`data.IsDelegation`). Other
    /// names are valid here (TUF allows them) but notary answers `INVALID_ROLE`.
    pub fn is_notary_compatible(&self) -> bool {
        match self.0.strip_prefix("targets/") {
            None => true,
            Some(_) => self
                .0
                .bytes()
                .all(|b| matches!(b, b'-' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'/')),
        }
    }

    /// True for `targets` and every delegation under it.
    pub fn is_targets_type(&self) -> bool {
        self.0 == "targets" || self.0.starts_with("targets/")
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RoleName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        RoleName::new(s)
    }
}

/// A `/`-separated path that survives URL parsing unchanged.
fn check_path(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > 255 {
        return Err("is longer than 255 bytes");
    }
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(if c.is_control() || c.is_whitespace() {
            "contains whitespace or a control character"
        } else if c.is_ascii() {
            "contains a character that would change the URL (allowed: letters, digits, . _ - / : @)"
        } else {
            "contains a non-ASCII character"
        });
    }
    for segment in name.split('/') {
        match segment {
            "" => return Err("has an empty path segment (leading, trailing or double '/')"),
            "." | ".." => return Err("has a '.' or '..' path segment"),
            _ => {}
        }
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guns() {
        for ok in [
            "docker.io/library/alpine",
            "localhost:5000/org/app",
            "a",
            "127.0.0.1:5000/x_y-z.w",
        ] {
            assert!(Gun::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "a/../b", "..", "a?b", "a#b", "a%2fb", "a b", "a\nb", "ü", "a*",
        ] {
            assert!(Gun::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles() {
        for ok in [
            "root",
            "targets",
            "snapshot",
            "timestamp",
            "targets/releases",
            "targets/a/b",
        ] {
            assert_eq!(
                RoleName::new(ok).map(|r| r.to_string()).ok().as_deref(),
                Some(ok)
            );
        }
        for bad in [
            "",
            "foo",
            "targets/",
            "targets//x",
            "targets/../root",
            "targets/a:b",
            "Root",
        ] {
            assert!(RoleName::new(bad).is_err(), "{bad:?}");
        }
        assert!(RoleName::new("targets/x").is_ok_and(|r| r.is_targets_type()));
        assert!(!RoleName::ROOT.is_targets_type());
        assert!(RoleName::ROOT.is_notary_compatible());
        assert!(RoleName::new("targets/re-leases_2/a").is_ok_and(|r| r.is_notary_compatible()));
        assert!(RoleName::new("targets/Releases").is_ok_and(|r| !r.is_notary_compatible()));
        assert!(RoleName::new("targets/v1.0").is_ok_and(|r| !r.is_notary_compatible()));
    }
}

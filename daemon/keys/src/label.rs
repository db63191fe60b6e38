//! Key names as stored on tokens.

use crate::KeyError;

const PREFIX: &str = "tufd:";

/// What a key is for: a name (a signer such as `alice`, or a role such as
/// `root`) and, for role keys, the repository (GUN) it belongs to.
///
/// Stored on the token as `CKA_LABEL = "tufd:<name>:<gun>"`, so the daemon
/// recognises its keys and rebuilds its index from the token alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyLabel {
    name: String,
    gun: String,
}

impl KeyLabel {
    /// Validates and builds a label. Names are 1-64 characters of
    /// `[A-Za-z0-9._-]` starting with a letter or digit; a GUN has no control
    /// characters and at most 255 bytes.
    pub fn new(name: &str, gun: &str) -> Result<Self, KeyError> {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid_name {
            return Err(KeyError::InvalidLabel(format!(
                "{name:?}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )));
        }
        if gun.len() > 255 || gun.chars().any(char::is_control) {
            return Err(KeyError::InvalidLabel(format!(
                "repository {gun:?}: at most 255 bytes and no control characters"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            gun: gun.to_owned(),
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The repository, empty for signer keys.
    pub fn gun(&self) -> &str {
        &self.gun
    }

    /// The `CKA_LABEL` value.
    pub fn to_token_label(&self) -> String {
        format!("{PREFIX}{}:{}", self.name, self.gun)
    }

    /// Parses a `CKA_LABEL`; `None` for objects that are not tufd's.
    pub fn from_token_label(label: &str) -> Option<Self> {
        let rest = label.strip_prefix(PREFIX)?;
        let (name, gun) = rest.split_once(':')?;
        Self::new(name, gun).ok()
    }
}

impl std::fmt::Display for KeyLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.gun.is_empty() {
            write!(f, "'{}'", self.name)
        } else {
            write!(f, "'{}' of {}", self.name, self.gun)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_token_label() {
        let l = KeyLabel::new("root", "localhost:5000/library/app").unwrap();
        assert_eq!(l.to_token_label(), "tufd:root:localhost:5000/library/app");
        assert_eq!(KeyLabel::from_token_label(&l.to_token_label()), Some(l));
        let s = KeyLabel::new("alice", "").unwrap();
        assert_eq!(KeyLabel::from_token_label("tufd:alice:"), Some(s));
    }

    #[test]
    fn rejects_bad_names_and_foreign_labels() {
        for bad in ["", "-x", "a b", "a:b", "ü", &"x".repeat(65)] {
            assert!(KeyLabel::new(bad, "").is_err(), "{bad:?}");
        }
        assert!(KeyLabel::new("a", "x\ny").is_err());
        assert_eq!(KeyLabel::from_token_label("my-ssh-key"), None);
        assert_eq!(KeyLabel::from_token_label("tufd:nocolon"), None);
    }
}

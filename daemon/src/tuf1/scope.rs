//! Which token keys may sign for a repository.
//!
//! A key's label says whose it is: `tuf1:<dir>` a key tufd generated for
//! the TUF 1.0 repository at `dir`, another repository name a Docker
//! Content Trust repository's key, no repository a key of its holder
//! (`tufctl key generate NAME`, as root key holders make theirs). Metadata
//! of one repository is signed only with that repository's own keys and
//! holders' keys: what a root lists is chosen by whoever could stage or
//! publish it, so a root listing another repository's keys never brings
//! their signatures. A holder's key NAME is used for a request only when
//! the caller may use it ([`KeyScope::holder_keys`]; the policy calls it
//! role `targets/NAME` in any repository).

use std::path::PathBuf;
use std::sync::Arc;

use tufd_keys::KeyLabel;

/// Decides whether a request may sign with the holder's key NAME (a key
/// of no repository): `Err` says why not.
pub type HolderCheck = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The keys one signing operation may use.
#[derive(Clone)]
pub struct KeyScope {
    /// The managed repository whose keys may sign (its directory as its
    /// keys' labels record it); `None`: no repository's keys.
    pub repository: Option<PathBuf>,
    /// Which holders' keys may sign.
    pub holder_keys: HolderCheck,
}

/// A key that could have signed but was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedKey {
    /// Its TUF 1.0 key ID.
    pub key_id: String,
    /// Why it was not used, for the person who asked.
    pub reason: String,
}

impl KeyScope {
    /// The repository at `dir`'s keys and every holder's key: the daemon's
    /// own work on a repository (refresh) and requests the policy allowed
    /// on the repository.
    pub fn repository(dir: &std::path::Path) -> Self {
        Self {
            repository: Some(dir.to_owned()),
            holder_keys: Arc::new(|_| Ok(())),
        }
    }

    /// Whether a key labelled `label` may sign here (`Err`: why not).
    pub fn admits(&self, label: &KeyLabel) -> Result<(), String> {
        let gun = label.gun();
        if gun.is_empty() {
            return (self.holder_keys)(label.name());
        }
        let Some(dir) = gun.strip_prefix(super::LABEL_PREFIX) else {
            return Err(format!(
                "a Docker Content Trust key of {gun}; it signs no TUF 1.0 metadata"
            ));
        };
        match &self.repository {
            Some(own) if own.as_os_str() == dir => Ok(()),
            Some(_) => Err(
                "a key of another TUF 1.0 repository; it signs only that repository's metadata"
                    .into(),
            ),
            None => Err(
                "a key of a TUF 1.0 repository this daemon manages, and this change is not that repository's; it signs only that repository's metadata"
                    .into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_signs_with_its_own_and_allowed_holders_keys_only() {
        let label = |name: &str, gun: &str| KeyLabel::new(name, gun).unwrap();
        let mut scope = KeyScope::repository(std::path::Path::new("/srv/tuf/mine"));
        assert!(scope.admits(&label("root-1", "tuf1:/srv/tuf/mine")).is_ok());
        for other in [
            "tuf1:/srv/tuf/prod",
            "tuf1:/srv/tuf/mine/x",
            "tuf1:/srv/tuf/min",
        ] {
            let e = scope.admits(&label("root-1", other)).unwrap_err();
            assert!(e.contains("another TUF 1.0 repository"), "{other}: {e}");
        }
        let e = scope
            .admits(&label("root", "docker.io/library/alpine"))
            .unwrap_err();
        assert!(e.contains("Docker Content Trust"), "{e}");
        assert!(scope.admits(&label("holder", "")).is_ok());
        scope.holder_keys = Arc::new(|name| {
            (name == "mine")
                .then_some(())
                .ok_or_else(|| format!("not {name}"))
        });
        assert!(scope.admits(&label("mine", "")).is_ok());
        assert_eq!(
            scope.admits(&label("theirs", "")).unwrap_err(),
            "not theirs"
        );
        scope.repository = None;
        let e = scope
            .admits(&label("root-1", "tuf1:/srv/tuf/mine"))
            .unwrap_err();
        assert!(e.contains("not that repository's"), "{e}");
    }
}

//! Checks of names and values a user types, shared by the verbs (the rules
//! themselves are [`names`], shared with the daemon).

use crate::output::Failure;
use tufd_proto::names;

/// A name refused by the shared rules ([`names`]), as bad input (exit 2).
pub fn bad_name(e: names::NameError) -> Failure {
    Failure::input(e.to_string())
}

/// A repository without a tag (signer and rotation verbs act on
/// repositories), normalized as docker does: the name the daemon uses.
pub fn check_untagged(repo: &str) -> Result<String, Failure> {
    names::repository(repo).map_err(bad_name)
}

/// `sha256:` followed by 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), Failure> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        Failure::input(format!(
            "digest \"{digest}\" must start with sha256: (e.g. sha256:0f8b…, 64 hex digits)"
        ))
    })?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Failure::input(format!(
            "digest \"{digest}\" must be sha256: followed by 64 lowercase hex digits ({} given)",
            hex.len()
        )));
    }
    Ok(())
}

/// docker's signer names: `^[a-z0-9][a-z0-9_-]*$`, not `releases`.
pub fn check_signer_name(name: &str) -> Result<(), Failure> {
    names::check_signer_name(name).map_err(bad_name)
}

/// `REPO` or `REPO:TAG`: the normalized repository and the tag.
pub fn check_reference(reference: &str) -> Result<(String, Option<String>), Failure> {
    names::maybe_tagged(reference).map_err(bad_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signer_names_follow_docker() {
        for ok in ["alice", "ci-bot_2", "0day"] {
            check_signer_name(ok).expect(ok);
        }
        for bad in ["", "Alice", "-x", "_x", "a b", "releases", "a/b"] {
            assert!(check_signer_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        assert_eq!(
            check_untagged("localhost:5000/a").unwrap(),
            "localhost:5000/a"
        );
        assert_eq!(
            check_untagged("alpine").unwrap(),
            "docker.io/library/alpine"
        );
        assert_eq!(
            check_reference("localhost:5000/a:v1").unwrap(),
            ("localhost:5000/a".to_owned(), Some("v1".to_owned()))
        );
        assert!(check_untagged("reg/a:v1").is_err());
        assert!(check_untagged("reg//a").is_err());
        assert!(check_untagged("").is_err());
        let e = check_untagged("reg/App").unwrap_err();
        assert!(e.message.contains("must be lowercase"), "{}", e.message);
    }
}

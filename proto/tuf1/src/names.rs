//! Names as TUF 1.0 uses them: role names in file names and URLs, and the
//! path patterns of delegations. Shared by the daemon (which writes
//! repositories) and tufctl's client (which reads them).

/// A role name or target path as a single file name or URL segment:
/// percent-encoded as python-tuf does (unreserved ASCII kept, every other
/// byte, `/` included, as `%XX`).
pub fn percent_encode(role: &str) -> String {
    let mut out = String::with_capacity(role.len());
    for b in role.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a delegation path pattern matches a target path: shell globs
/// matched part by part (`*` and `?` never match `/`), as python-tuf does.
pub fn path_matches(pattern: &str, target: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = target.split('/').collect();
    p.len() == t.len()
        && p.iter()
            .zip(&t)
            .all(|(p, t)| glob(p.as_bytes(), t.as_bytes()))
}

fn glob(p: &[u8], t: &[u8]) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], t) || (!t.is_empty() && glob(p, &t[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &t[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &t[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegation_paths_are_globs_per_part() {
        assert!(path_matches("team/*", "team/a.tgz"));
        assert!(
            !path_matches("team/*", "team/x/a.tgz"),
            "* does not match /"
        );
        assert!(path_matches("*/*.tgz", "x/a.tgz"));
        assert!(path_matches("v?.txt", "v1.txt"));
        assert!(!path_matches("v?.txt", "v10.txt"));
        assert!(!path_matches("team/*", "other/a.tgz"));
        assert!(path_matches("*", "a"));
        assert!(!path_matches("*", "a/b"));
    }
}

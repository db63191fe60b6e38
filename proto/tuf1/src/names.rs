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

/// `*` (any run of bytes) and `?` (one byte) matching in O(|p|·|t|): on a
/// mismatch only the latest `*` takes one more byte, so a pattern full of
/// stars (from signed but hostile metadata) cannot make the search
/// exponential.
fn glob(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // After the latest `*`: where the pattern resumes, and the text
    // position that `*` has consumed up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ti));
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((resume, consumed)) => {
                    pi = resume;
                    ti = consumed + 1;
                    star = Some((resume, ti));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
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
        assert!(path_matches("*", ""));
        assert!(path_matches("a*b*c", "aXbYbZc"));
        assert!(!path_matches("a*b*c", "aXbYbZ"));
        assert!(path_matches("*.tar.*", "x.tar.gz"));
        assert!(path_matches("**?", "ab"));
        assert!(!path_matches("?*?", "a"));
    }

    #[test]
    fn many_stars_do_not_make_matching_exponential() {
        // Backtracking into every `*` would try ~C(200, 40) splits here.
        let pattern = format!("{}b", "*a".repeat(40));
        let text = "a".repeat(200);
        assert!(!path_matches(&pattern, &text));
        assert!(path_matches(&pattern, &format!("{text}b")));
    }
}

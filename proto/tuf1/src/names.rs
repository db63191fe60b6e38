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
/// matched part by part (`*` and `?` never match `/`), with `[seq]` and
/// `[!seq]` classes, as python-tuf does with `fnmatch`.
pub fn path_matches(pattern: &str, target: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = target.split('/').collect();
    p.len() == t.len() && p.iter().zip(&t).all(|(p, t)| glob(p, t))
}

/// One element of a glob.
enum Token {
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    Any,
    /// A character standing for itself.
    Lit(char),
    /// `[…]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Lit(l) => *l == c,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

/// Splits a glob into tokens as Python's `fnmatch.translate` reads it: a
/// `[` without a closing `]` is literal, a `]` first in a class is a
/// member, `a-z` is a range (an empty one when reversed), a `-` first or
/// last is a member.
fn tokens(pattern: &str) -> Vec<Token> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        i += 1;
        match c {
            '*' => {
                if !matches!(out.last(), Some(Token::Star)) {
                    out.push(Token::Star);
                }
            }
            '?' => out.push(Token::Any),
            '[' => {
                let mut j = i;
                if p.get(j) == Some(&'!') {
                    j += 1;
                }
                if p.get(j) == Some(&']') {
                    j += 1;
                }
                while j < p.len() && p[j] != ']' {
                    j += 1;
                }
                if j >= p.len() {
                    out.push(Token::Lit('['));
                    continue;
                }
                let mut body = &p[i..j];
                i = j + 1;
                let negated = body.first() == Some(&'!');
                if negated {
                    body = &body[1..];
                }
                let mut ranges = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    if k + 2 < body.len() && body[k + 1] == '-' {
                        ranges.push((body[k], body[k + 2]));
                        k += 3;
                    } else {
                        ranges.push((body[k], body[k]));
                        k += 1;
                    }
                }
                out.push(Token::Class { negated, ranges });
            }
            c => out.push(Token::Lit(c)),
        }
    }
    out
}

/// Glob matching in O(|pattern|·|text|): on a mismatch only the latest `*`
/// takes one more character, so a pattern full of stars (from signed but
/// hostile metadata) cannot make the search exponential.
fn glob(pattern: &str, text: &str) -> bool {
    let p = tokens(pattern);
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // After the latest `*`: where the pattern resumes, and the text
    // position that `*` has consumed up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(Token::Star) => {
                pi += 1;
                star = Some((pi, ti));
            }
            Some(tok) if tok.matches(t[ti]) => {
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
    p[pi..].iter().all(|t| matches!(t, Token::Star))
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
    fn classes_as_fnmatch_reads_them() {
        assert!(path_matches("v[0-9].txt", "v7.txt"));
        assert!(!path_matches("v[0-9].txt", "vx.txt"));
        assert!(path_matches("v[!0-9].txt", "vx.txt"));
        assert!(!path_matches("v[!0-9].txt", "v7.txt"));
        assert!(path_matches("[]a]", "]"));
        assert!(path_matches("[!]a]", "b"));
        assert!(path_matches("[a-]", "-"));
        assert!(!path_matches("[z-a]", "z"), "a reversed range is empty");
        assert!(path_matches("a[b", "a[b"), "an unclosed [ is literal");
        assert!(path_matches("[a-c-e]", "-"));
        assert!(!path_matches("[a-c-e]", "d"));
        assert!(path_matches("?", "é"), "? is one character, not one byte");
        assert!(!path_matches("[a-z]", "/"));
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

//! Glob patterns over repository and role names.
//!
//! `*` matches any run of characters except `/`, `**` any run including
//! `/`, `?` one character other than `/`; everything else matches itself.
//! `registry.example.com/team/*` matches `registry.example.com/team/app`
//! but not `registry.example.com/team/app/sub`; `**` matches every name.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
}

impl Glob {
    /// Accepts any non-empty pattern without control characters.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern matches nothing; use \"**\" for everything".into());
        }
        if text.chars().any(char::is_control) {
            return Err(format!("pattern {text:?} contains a control character"));
        }
        Ok(Glob { text: text.into() })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        matches(self.text.as_bytes(), name.as_bytes())
    }
}

fn matches(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| matches(rest, &s[i..])),
        [b'*', rest @ ..] => {
            let seg = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
            (0..=seg).any(|i| matches(rest, &s[i..]))
        }
        [b'?', rest @ ..] => s.first().is_some_and(|&c| c != b'/') && matches(rest, &s[1..]),
        [c, rest @ ..] => s.first() == Some(c) && matches(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s)
    }

    #[test]
    fn stars_stay_within_a_path_segment() {
        assert!(m(
            "registry.example.com/team/*",
            "registry.example.com/team/app"
        ));
        assert!(!m(
            "registry.example.com/team/*",
            "registry.example.com/team/app/x"
        ));
        assert!(!m(
            "registry.example.com/team/*",
            "registry.example.com/other/app"
        ));
        assert!(m(
            "registry.example.com/team/**",
            "registry.example.com/team/a/b"
        ));
        assert!(m("**", "docker.io/library/alpine"));
        assert!(m("targets/*", "targets/releases"));
        assert!(!m("targets/*", "targets"));
        assert!(m("targets", "targets"));
        assert!(!m("targets", "targets/releases"));
        assert!(m("app-?", "app-1"));
        assert!(!m("app-?", "app-10"));
        assert!(m("*/app", "x/app"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(Glob::new("").is_err());
        assert!(Glob::new("a\nb").is_err());
    }
}

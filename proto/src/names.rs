//! One vocabulary of names for the daemon and its clients: image
//! references as docker parses and normalizes them, tags, signer names, key
//! names and token names.
//!
//! The daemon enforces these rules on every request; `tufctl` applies the
//! same functions before it connects, so a bad name gets the same answer
//! (docker's wording where docker has one) without a round trip.
//!
//! References follow docker's grammar (`github.com/distribution/reference`,
//! `ParseNormalizedNamed`): `alpine:3` is `docker.io/library/alpine:3`,
//! `index.docker.io` is `docker.io`, a first component is a registry only
//! when it contains `.` or `:`, is `localhost`, or has upper case; the
//! repository path is lower case. Content trust names a repository by its
//! full normalized name (the GUN): `docker trust` signs `alpine` under
//! `docker.io/library/alpine` and `localhost:5000/app` under
//! `localhost:5000/app`.

use std::cmp::Ordering;
use std::fmt;

/// Docker Hub as docker writes it in full names.
pub const DOCKER_HUB: &str = "docker.io";
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
/// Longest repository name docker accepts (domain and path).
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// Longest tag docker accepts.
pub const TAG_LENGTH_MAX: usize = 128;
/// Longest key name.
pub const KEY_NAME_LENGTH_MAX: usize = 64;
/// Longest signer name (notary-server refuses role names over 255 bytes
/// with the `targets/` prefix; docker has no shorter rule).
pub const SIGNER_NAME_LENGTH_MAX: usize = 64;
/// Longest token name.
pub const TOKEN_NAME_LENGTH_MAX: usize = 64;

/// Why a name was refused. `Display` gives docker's message where docker
/// has one, prefixed with the kind of name and the name itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// What was named: "reference", "repository", "tag", "signer name"…
    pub kind: &'static str,
    /// The name as given.
    pub name: String,
    /// Why it was refused.
    pub reason: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: {}", self.kind, self.name, self.reason)
    }
}

impl std::error::Error for NameError {}

fn refuse(kind: &'static str, name: &str, reason: impl Into<String>) -> NameError {
    NameError {
        kind,
        name: name.to_owned(),
        reason: reason.into(),
    }
}

// docker's error texts (distribution/reference errors.go).
const INVALID_FORMAT: &str = "invalid reference format";
const INVALID_TAG: &str = "invalid tag format";
const INVALID_DIGEST: &str = "invalid digest format";
const NAME_EMPTY: &str = "repository name must have at least one component";
const NAME_TOO_LONG: &str = "repository name must not be more than 255 characters";

/// A parsed, normalized image reference: `domain/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes `s` as docker's `ParseNormalizedNamed` does.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let err = |reason: &str| refuse("reference", s, reason);
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(refuse(
                "reference",
                s,
                format!(
                    "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
                ),
            ));
        }
        if s.is_empty() {
            return Err(err(NAME_EMPTY));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote_name = remainder.split(':').next().unwrap_or_default();
        if remote_name.to_lowercase() != remote_name {
            return Err(err(&format!(
                "{INVALID_FORMAT}: repository name ({remote_name}) must be lowercase"
            )));
        }
        // What remains: path[:tag][@digest]. Path characters include neither
        // ':' nor '@', so the first of them ends the path.
        let (rest, digest) = match remainder.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match rest.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (rest, None),
        };
        if !valid_domain(domain) || path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(err(INVALID_FORMAT));
        }
        if let Some(t) = tag
            && !valid_tag(t)
        {
            // `repo:a:b`, `repo:` and other tags outside docker's grammar.
            return Err(err(INVALID_FORMAT));
        }
        if let Some(d) = digest
            && !valid_digest(d)
        {
            return Err(err(if d.contains(':') {
                INVALID_DIGEST
            } else {
                INVALID_FORMAT
            }));
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(err(NAME_TOO_LONG));
        }
        Ok(Reference {
            domain: domain.to_owned(),
            path: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// The registry, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/alpine`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full repository name, e.g. `docker.io/library/alpine`: the GUN
    /// content trust signs under.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), if one was given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The name as docker shows it to people: `alpine` for
    /// `docker.io/library/alpine`, `user/app` for `docker.io/user/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DOCKER_HUB {
            self.path
                .strip_prefix(OFFICIAL_PREFIX)
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            self.name()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// docker's `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (&str, String) {
    let (mut domain, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first, rest.to_owned())
        }
        _ => (DOCKER_HUB, name.to_owned()),
    };
    if domain == LEGACY_DOCKER_HUB {
        domain = DOCKER_HUB;
    }
    if domain == DOCKER_HUB && !remainder.contains('/') {
        return (domain, format!("{OFFICIAL_PREFIX}{remainder}"));
    }
    (domain, remainder)
}

/// `host[:port]`: host a domain name (`[a-zA-Z0-9]` components, inner
/// `-`, separated by `.`) or a bracketed IPv6 address.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => (None, p.strip_prefix(':')),
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|c| {
                !c.is_empty()
                    && !c.starts_with('-')
                    && !c.ends_with('-')
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    });
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok && (host.is_some() || port.is_some())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// docker's tag grammar `[\w][\w.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= TAG_LENGTH_MAX
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// A digest docker accepts: `sha256:` and 64, `sha384:` 96 or `sha512:`
/// 128 lowercase hex digits.
fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A repository name (no tag, no digest), normalized: the GUN.
pub fn repository(name: &str) -> Result<String, NameError> {
    let r = Reference::parse(name).map_err(|e| NameError {
        kind: "repository",
        ..e
    })?;
    if let Some(t) = r.tag() {
        return Err(refuse(
            "repository",
            name,
            format!(
                "names a tag (:{t}); give the repository alone: {}",
                r.name()
            ),
        ));
    }
    if r.digest().is_some() {
        return Err(refuse(
            "repository",
            name,
            format!("names a digest; give the repository alone: {}", r.name()),
        ));
    }
    Ok(r.name())
}

/// `REPO:TAG` for signing, revoking and verifying: the normalized GUN and
/// the tag. A digest reference is refused (content trust signs tags).
pub fn tagged(reference: &str) -> Result<(String, String), NameError> {
    let r = Reference::parse(reference)?;
    if r.digest().is_some() {
        return Err(refuse(
            "reference",
            reference,
            "a digest reference already names its manifest; give REPOSITORY:TAG",
        ));
    }
    match r.tag() {
        Some(t) => Ok((r.name(), t.to_owned())),
        None => Err(refuse(
            "reference",
            reference,
            "no tag given (REPOSITORY:TAG)",
        )),
    }
}

/// `REPO` or `REPO:TAG` (inspect, revoke of every tag): the normalized
/// GUN and the tag, if any.
pub fn maybe_tagged(reference: &str) -> Result<(String, Option<String>), NameError> {
    let r = Reference::parse(reference)?;
    if r.digest().is_some() {
        return Err(refuse(
            "reference",
            reference,
            "a digest reference names a manifest, not a tag; give REPOSITORY[:TAG]",
        ));
    }
    Ok((r.name(), r.tag().map(str::to_owned)))
}

/// A tag as docker allows it: `[\w][\w.-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), NameError> {
    if valid_tag(tag) {
        return Ok(());
    }
    Err(refuse(
        "tag",
        tag,
        format!(
            "{INVALID_TAG}: a tag is 1 to {TAG_LENGTH_MAX} letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        ),
    ))
}

/// A signer name: docker's `^[a-z0-9][a-z0-9_-]*$` (notary-server accepts
/// role names `^[-a-z0-9_/]+$`), not the reserved `releases`.
pub fn check_signer_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= SIGNER_NAME_LENGTH_MAX
        && name.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && matches!(b, b'_' | b'-'))
        });
    if !ok {
        return Err(refuse(
            "signer name",
            name,
            format!(
                "use 1 to {SIGNER_NAME_LENGTH_MAX} lowercase letters, digits, '-' and '_', starting with a letter or digit (docker's and notary-server's rule)"
            ),
        ));
    }
    if name == "releases" {
        return Err(refuse(
            "signer name",
            name,
            "releases is reserved (the role targets/releases); choose another name",
        ));
    }
    Ok(())
}

/// A key name: 1-64 of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn check_key_name(name: &str) -> Result<(), NameError> {
    simple_name("key name", name, KEY_NAME_LENGTH_MAX)
}

/// A token name as configured: 1-64 of `[A-Za-z0-9._-]`, starting with a
/// letter or digit.
pub fn check_token_name(name: &str) -> Result<(), NameError> {
    simple_name("token name", name, TOKEN_NAME_LENGTH_MAX)
}

fn simple_name(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(refuse(
            kind,
            name,
            format!(
                "use 1 to {max} letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ))
    }
}

/// Natural order as docker sorts tags and signer names (`fvbommel/sortorder.NaturalLess`):
/// runs of digits compare by value (leading zeros ignored, fewer zeros
/// first), everything else bytewise, and digits sort before other bytes.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (nz_a, nz_b) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let order = (i - nz_a)
            .cmp(&(j - nz_b))
            .then_with(|| a[nz_a..i].cmp(&b[nz_b..j]))
            .then_with(|| nz_a.cmp(&nz_b));
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> String {
        Reference::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .name()
    }

    /// distribution/reference normalize_test.go `TestValidateReferenceName`
    /// and `TestParseRepositoryInfo`.
    #[test]
    fn docker_normalization_vectors() {
        for (input, full) in [
            ("docker/docker", "docker.io/docker/docker"),
            ("library/debian", "docker.io/library/debian"),
            ("debian", "docker.io/library/debian"),
            ("docker.io/docker/docker", "docker.io/docker/docker"),
            ("docker.io/library/debian", "docker.io/library/debian"),
            ("docker.io/debian", "docker.io/library/debian"),
            ("index.docker.io/docker/docker", "docker.io/docker/docker"),
            ("index.docker.io/library/debian", "docker.io/library/debian"),
            ("index.docker.io/debian", "docker.io/library/debian"),
            (
                "127.0.0.1:5000/docker/docker",
                "127.0.0.1:5000/docker/docker",
            ),
            (
                "127.0.0.1:5000/library/debian",
                "127.0.0.1:5000/library/debian",
            ),
            ("127.0.0.1:5000/debian", "127.0.0.1:5000/debian"),
            ("192.168.0.1", "docker.io/library/192.168.0.1"),
            ("192.168.0.1:80", "docker.io/library/192.168.0.1"),
            ("192.168.0.1:8/debian", "192.168.0.1:8/debian"),
            ("192.168.0.2:25000/debian", "192.168.0.2:25000/debian"),
            (
                "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
                "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            ),
            (
                "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
                "docker.io/library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            ),
            ("fooo/bar", "docker.io/fooo/bar"),
            ("library/ubuntu", "docker.io/library/ubuntu"),
            ("nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu"),
            ("ubuntu", "docker.io/library/ubuntu"),
            ("docker.io/ubuntu", "docker.io/library/ubuntu"),
            ("index.docker.io/ubuntu", "docker.io/library/ubuntu"),
            (
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
            ),
            ("127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase"),
            (
                "localhost:8000/private/moonbase",
                "localhost:8000/private/moonbase",
            ),
            ("localhost:8000/privatebase", "localhost:8000/privatebase"),
            (
                "example.com/private/moonbase",
                "example.com/private/moonbase",
            ),
            ("example.com/privatebase", "example.com/privatebase"),
            (
                "example.com:8000/private/moonbase",
                "example.com:8000/private/moonbase",
            ),
            (
                "example.com:8000/privatebase",
                "example.com:8000/privatebase",
            ),
            ("localhost/privatebase", "localhost/privatebase"),
            ("Foo/bar", "Foo/bar"),
            ("ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base"),
            (
                "index.docker.io/library/ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
            ),
            ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000/repo"),
            (
                "[2001:db8:1:2:3:4:5:6]/repo:tag",
                "[2001:db8:1:2:3:4:5:6]/repo",
            ),
            (
                "sub-dom1.foo.com/bar/baz/quux",
                "sub-dom1.foo.com/bar/baz/quux",
            ),
            (
                "b.gcr.io/test.example.com/my-app:test.example.com",
                "b.gcr.io/test.example.com/my-app",
            ),
            ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage"),
            ("foo_bar.com:8080", "docker.io/library/foo_bar.com"),
            ("foo/foo_bar.com:8080", "docker.io/foo/foo_bar.com"),
            ("a__b---c/d", "docker.io/a__b---c/d"),
        ] {
            assert_eq!(name(input), full, "{input}");
        }
        let r = Reference::parse("alpine:3").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/alpine:3");
        assert_eq!(r.familiar_name(), "alpine");
        assert_eq!(
            Reference::parse("user/app").unwrap().familiar_name(),
            "user/app"
        );
        let d = format!("sha256:{}", "f".repeat(64));
        let r = Reference::parse(&format!("test:5000/repo:tag@{d}")).unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("test:5000", "repo", Some("tag"))
        );
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(
            Reference::parse("lowercase:Uppercase").unwrap().tag(),
            Some("Uppercase")
        );
    }

    #[test]
    fn docker_refusals_with_docker_reasons() {
        for (input, reason) in [
            ("", NAME_EMPTY),
            ("https://github.com/docker/docker", INVALID_FORMAT),
            (
                "docker/Docker",
                "invalid reference format: repository name (docker/Docker) must be lowercase",
            ),
            (
                "Alpine",
                "invalid reference format: repository name (library/Alpine) must be lowercase",
            ),
            (
                "Uppercase:tag",
                "invalid reference format: repository name (library/Uppercase) must be lowercase",
            ),
            (
                "test:5000/Uppercase/lowercase:tag",
                "invalid reference format: repository name (Uppercase/lowercase) must be lowercase",
            ),
            ("-docker", INVALID_FORMAT),
            ("-docker/docker", INVALID_FORMAT),
            ("-docker.io/docker/docker", INVALID_FORMAT),
            ("docker///docker", INVALID_FORMAT),
            ("docker.io/docker///docker", INVALID_FORMAT),
            (
                "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
                "invalid repository name (1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a), cannot specify 64-byte hexadecimal strings",
            ),
            ("repo:a:b", INVALID_FORMAT),
            (":justtag", INVALID_FORMAT),
            ("aa/asdf$$^/aa", INVALID_FORMAT),
            ("a/../b", INVALID_FORMAT),
            ("a b", INVALID_FORMAT),
            ("a/", INVALID_FORMAT),
            ("/a", INVALID_FORMAT),
            ("a?b", INVALID_FORMAT),
            ("repo:", INVALID_FORMAT),
            ("repo:-tag", INVALID_FORMAT),
            ("[fe80::1%eth0]:5000/repo", INVALID_FORMAT),
            (
                "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                INVALID_DIGEST,
            ),
            ("repo@sha256:ffff", INVALID_DIGEST),
        ] {
            let e = Reference::parse(input).expect_err(input);
            assert_eq!(e.reason, reason, "{input}");
        }
        let long = format!("a/{}", "a".repeat(250));
        assert_eq!(Reference::parse(&long).unwrap_err().reason, NAME_TOO_LONG);
        let tag = format!("repo:{}", "t".repeat(129));
        assert_eq!(Reference::parse(&tag).unwrap_err().reason, INVALID_FORMAT);
        assert!(Reference::parse(&format!("repo:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn repositories_and_tagged_references() {
        assert_eq!(repository("localhost:5000/x").unwrap(), "localhost:5000/x");
        assert_eq!(repository("alpine").unwrap(), "docker.io/library/alpine");
        assert!(
            repository("alpine:3")
                .unwrap_err()
                .reason
                .contains("docker.io/library/alpine")
        );
        assert_eq!(
            tagged("alpine:3").unwrap(),
            ("docker.io/library/alpine".to_owned(), "3".to_owned())
        );
        assert!(tagged("alpine").is_err());
        assert!(tagged(&format!("alpine@sha256:{}", "a".repeat(64))).is_err());
        assert_eq!(maybe_tagged("localhost:5000/a/b").unwrap().1, None);
    }

    #[test]
    fn tags_signers_keys_tokens() {
        for ok in ["v1", "_x", "1.0-rc_2", "Latest"] {
            check_tag(ok).unwrap();
        }
        for bad in [
            "",
            ".x",
            "-x",
            "../../x",
            "a<b>",
            "ü",
            "a\tb",
            &"t".repeat(129),
        ] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
        check_signer_name("alice-2_ci").unwrap();
        for bad in ["Alice", "releases", "", "a/b", "a b", "-a", &"a".repeat(65)] {
            assert!(check_signer_name(bad).is_err(), "{bad:?}");
        }
        for ok in ["alice", "root-2", "A.b_c"] {
            check_key_name(ok).unwrap();
            check_token_name(ok).unwrap();
        }
        for bad in ["", ".a", "a b", "a:b", "a/b", &"k".repeat(65)] {
            assert!(check_key_name(bad).is_err(), "{bad:?}");
            assert!(check_token_name(bad).is_err(), "{bad:?}");
        }
    }
}

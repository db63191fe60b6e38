//! Where TUF 1.0 repositories may live: the `[tuf]` configuration.
//!
//! The daemon writes repository directories and reads target files for its
//! callers, so a request never chooses a place freely. It names either a
//! configured repository or a path that resolves inside a configured root;
//! target files are read only from inside a root, a `sources` directory or
//! a configured repository, and below a root or in a configured repository
//! only where the caller may also sign ([`Source::resource`]).
//!
//! Nothing on disk is looked at for a caller before the policy has judged
//! the name the caller gave ([`Places::claim`], [`Places::source_claim`]:
//! the path as written, `.` and `..` removed without following links): a
//! path that does not lie, as written, inside a configured place gets one
//! refusal whether it exists or not, and the daemon (which may read what
//! its caller cannot) never tells a caller what lies outside the places.
//!
//! A path is then resolved once (links followed, `..` removed) to decide
//! whether it is allowed and what the policy calls it. What it resolved to
//! is then opened as the configured directory it lies in plus the
//! components below it ([`Beneath`]), and no symbolic link below the
//! configured directory is followed there ([`super::dir`]): a component
//! swapped for a link after the check is refused, never followed, so the
//! name the policy judged is the directory or file the request works on.
//!
//! ```toml
//! [tuf]
//! roots = ["/srv/tuf"]          # repositories may be created by path below these
//! sources = ["/srv/incoming"]   # more places target files may be read from
//! [[tuf.repository]]
//! name = "releases"             # `tufctl tuf add releases FILE`
//! directory = "/srv/www/releases"
//! expiry = { timestamp = 3600 } # per-role defaults (seconds) for `tuf init`
//! ```
//!
//! The policy ([`crate::policy`]) sees a configured repository as
//! `tuf:NAME` and one named by path as `tuf:/its/canonical/path`, so rules
//! such as `repositories = ["tuf:releases", "tuf:/srv/tuf/team/**"]` grant
//! TUF operations. Neither form can be a normalized Docker repository name
//! (a registry host `tuf` would need a numeric port).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::dir::Beneath;
use super::error::RepoError;

/// The policy name prefix of TUF 1.0 repositories.
pub const RESOURCE_PREFIX: &str = "tuf:";

/// `[tuf]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPlaces {
    #[serde(default)]
    roots: Vec<PathBuf>,
    #[serde(default)]
    sources: Vec<PathBuf>,
    #[serde(default, rename = "repository")]
    repositories: Vec<RawRepository>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    name: String,
    directory: PathBuf,
    #[serde(default)]
    expiry: BTreeMap<String, u64>,
}

/// A configured repository.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    directory: PathBuf,
    expiry: Vec<(String, u64)>,
}

/// The configured places.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places {
    roots: Vec<PathBuf>,
    sources: Vec<PathBuf>,
    named: BTreeMap<String, Named>,
}

/// A request's repository, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The canonical directory, as the configured place it lies in and the
    /// components below it, opened without following links.
    pub at: Beneath,
    /// The name the policy and the audit log see.
    pub resource: String,
    /// Per-role expiry defaults (seconds) of a configured repository.
    pub expiry: Vec<(String, u64)>,
}

impl Place {
    /// The canonical directory.
    pub fn dir(&self) -> PathBuf {
        self.at.path()
    }
}

/// A target file a request may read, once the policy agrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Its canonical path, as opened (no link followed below its
    /// configured place).
    pub at: Beneath,
    /// What the caller must be allowed to sign before the daemon reads the
    /// file: `tuf:/its/path` below a root, `tuf:NAME` inside a configured
    /// repository; `None` inside a `sources` directory, which the
    /// configuration opens to every caller allowed to change a repository.
    pub resource: Option<String>,
}

impl Source {
    /// Its canonical path.
    pub fn path(&self) -> PathBuf {
        self.at.path()
    }
}

/// Checks a repository name: a lower-case letter, then up to 63 lower-case
/// letters, digits, `.`, `_` or `-`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tuf.repository name {name:?}: use a lower-case letter, then lower-case letters, digits, '.', '_' or '-' (at most 64)"
        ))
    }
}

fn absolute(what: &str, p: &Path) -> Result<(), String> {
    if p.is_absolute() && !p.components().any(|c| c == Component::ParentDir) {
        Ok(())
    } else {
        Err(format!(
            "{what} {}: give an absolute path without '..'",
            p.display()
        ))
    }
}

const EXPIRY_ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

impl RawPlaces {
    /// Validates names, paths and expiry defaults.
    pub fn into_places(self) -> Result<Places, String> {
        for r in &self.roots {
            absolute("tuf.roots entry", r)?;
        }
        for s in &self.sources {
            absolute("tuf.sources entry", s)?;
        }
        let mut named = BTreeMap::new();
        for r in self.repositories {
            check_name(&r.name)?;
            absolute(
                &format!("tuf.repository {:?} directory", r.name),
                &r.directory,
            )?;
            for (role, secs) in &r.expiry {
                if !EXPIRY_ROLES.contains(&role.as_str()) || *secs == 0 {
                    return Err(format!(
                        "tuf.repository {:?}: expiry.{role} = {secs}: give seconds (at least 1) for root, targets, snapshot or timestamp",
                        r.name
                    ));
                }
            }
            let entry = Named {
                directory: r.directory,
                expiry: r.expiry.into_iter().collect(),
            };
            if named.insert(r.name.clone(), entry).is_some() {
                return Err(format!("tuf.repository {:?} is given twice", r.name));
            }
        }
        Ok(Places {
            roots: self.roots,
            sources: self.sources,
            named,
        })
    }
}

/// The canonical form of `path`: every symbolic link followed. A path that
/// does not exist yet (`creating`) is its canonical parent joined with its
/// last component, which must be a plain name.
fn canonical(path: &Path, creating: bool) -> Result<PathBuf, RepoError> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && creating => {
            let (Some(parent), Some(Component::Normal(name))) =
                (path.parent(), path.components().next_back())
            else {
                return Err(RepoError::InvalidRequest(format!(
                    "{}: not a directory tufd can create",
                    path.display()
                )));
            };
            let parent = std::fs::canonicalize(parent)
                .map_err(RepoError::io(parent, "resolving the parent directory"))?;
            Ok(parent.join(name))
        }
        Err(e) => Err(RepoError::io(path, "resolving the path")(e)),
    }
}

/// `path` as written with `.` dropped and each `..` removing the component
/// before it: nothing on disk is looked at, no link followed.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// A configured directory as written and in its canonical form (the
/// configuration's own paths may be resolved: they are no caller's).
fn forms(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![lexical(dir)];
    if let Ok(c) = std::fs::canonicalize(dir)
        && c != out[0]
    {
        out.push(c);
    }
    out
}

/// Whether `path` lies, as written, strictly below one of `dirs`.
fn lexically_below(path: &Path, dirs: &[PathBuf]) -> bool {
    dirs.iter()
        .flat_map(|d| forms(d))
        .any(|d| path != d && path.starts_with(&d))
}

/// `path` as below the first of `dirs` it lies strictly below (compared
/// canonically; directories that do not exist contain nothing).
fn below(path: &Path, dirs: &[PathBuf]) -> Option<Beneath> {
    dirs.iter().find_map(|d| {
        let d = std::fs::canonicalize(d).ok()?;
        let rel = path.strip_prefix(&d).ok()?;
        (!rel.as_os_str().is_empty()).then(|| Beneath::new(d.clone(), rel.to_owned()))
    })
}

/// A configured repository's directory: canonical, and as opened. One
/// configured below a root (as written, or below the root's canonical
/// form) is opened below the root like any path there, so a member who
/// can write in the root cannot swap it for a link; any other is opened
/// as configured (itself, or its last component below its parent while it
/// does not exist yet).
fn configured(directory: &Path, roots: &[PathBuf]) -> Result<Beneath, RepoError> {
    for root in roots {
        let Ok(base) = std::fs::canonicalize(root) else {
            continue;
        };
        let rel = directory
            .strip_prefix(root)
            .or_else(|_| directory.strip_prefix(&base));
        if let Ok(rel) = rel
            && !rel.as_os_str().is_empty()
        {
            return Ok(Beneath::new(base, rel.to_owned()));
        }
    }
    let dir = canonical(directory, true)?;
    Ok(if dir.exists() {
        Beneath::new(dir, PathBuf::new())
    } else {
        let parent = dir.parent().unwrap_or(Path::new("/")).to_owned();
        let name = dir.file_name().map(PathBuf::from).unwrap_or_default();
        Beneath::new(parent, name)
    })
}

impl Places {
    /// Whether nothing is configured (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.named.is_empty()
    }

    fn refuse(&self, what: String) -> RepoError {
        let mut allowed: Vec<String> = self.named.keys().cloned().collect();
        allowed.extend(
            self.roots
                .iter()
                .map(|r| format!("paths below {}", r.display())),
        );
        let hint = if allowed.is_empty() {
            "no TUF repositories are configured: add [[tuf.repository]] or tuf.roots to the daemon's configuration".to_owned()
        } else {
            format!("allowed: {}", allowed.join(", "))
        };
        RepoError::Refused(format!("{what}; {hint}"))
    }

    /// The refusal of a path outside every root: the same words whether it
    /// exists or not, nothing of what it resolves to.
    fn outside_roots(&self, given: &str) -> RepoError {
        self.refuse(format!("{given} is outside the configured TUF roots"))
    }

    /// What the policy calls a request's repository before anything on
    /// disk is looked at: `tuf:NAME` for a configured name or a configured
    /// repository's directory as written, `tuf:/the/path/as/written` for a
    /// path below a root. A path outside every root is refused here, in
    /// the same words whether it exists or not. The caller must be allowed
    /// this name before [`resolve`](Self::resolve) looks at the path (whose
    /// canonical name the policy then judges too).
    pub fn claim(&self, given: &str) -> Result<String, RepoError> {
        if !given.contains('/') {
            return if self.named.contains_key(given) {
                Ok(format!("{RESOURCE_PREFIX}{given}"))
            } else {
                Err(self.refuse(format!("no TUF repository is named {given:?}")))
            };
        }
        let path = Path::new(given);
        if !path.is_absolute() {
            return Err(RepoError::InvalidRequest(format!(
                "{given}: give a configured repository name or an absolute path"
            )));
        }
        let path = lexical(path);
        for (name, n) in &self.named {
            if forms(&n.directory).contains(&path) {
                return Ok(format!("{RESOURCE_PREFIX}{name}"));
            }
        }
        if lexically_below(&path, &self.roots) {
            return Ok(format!("{RESOURCE_PREFIX}{}", path.display()));
        }
        Err(self.outside_roots(given))
    }

    /// Resolves a request's repository: a configured name, or an absolute
    /// path inside a root (its last component may not exist yet: `init`
    /// creates it, other requests learn there is no repository). Only for
    /// a caller allowed what [`claim`](Self::claim) calls it: what a path
    /// resolves to, and why it cannot be, is told.
    pub fn resolve(&self, given: &str) -> Result<Place, RepoError> {
        self.claim(given)?;
        if !given.contains('/') {
            let named = self
                .named
                .get(given)
                .ok_or_else(|| self.refuse(format!("no TUF repository is named {given:?}")))?;
            return Ok(Place {
                at: configured(&named.directory, &self.roots)?,
                resource: format!("{RESOURCE_PREFIX}{given}"),
                expiry: named.expiry.clone(),
            });
        }
        let path = Path::new(given);
        if !path.is_absolute() {
            return Err(RepoError::InvalidRequest(format!(
                "{given}: give a configured repository name or an absolute path"
            )));
        }
        let dir = canonical(path, true)?;
        for (name, n) in &self.named {
            if canonical(&n.directory, true).is_ok_and(|d| d == dir) {
                return Ok(Place {
                    at: configured(&n.directory, &self.roots)?,
                    resource: format!("{RESOURCE_PREFIX}{name}"),
                    expiry: n.expiry.clone(),
                });
            }
        }
        let Some(at) = below(&dir, &self.roots) else {
            return Err(self.refuse(format!(
                "{given} (resolved to {}) is outside the configured TUF roots",
                dir.display()
            )));
        };
        Ok(Place {
            resource: format!("{RESOURCE_PREFIX}{}", dir.display()),
            at,
            expiry: Vec::new(),
        })
    }

    /// Resolves a target file the daemon is asked to read: it must lie
    /// inside a `sources` directory, a root or a configured repository.
    /// Below a root or in a configured repository, the caller must also be
    /// allowed to change what holds it ([`Source::resource`]): a member
    /// allowed one team's repository cannot publish (and so read) another
    /// team's files.
    pub fn source(&self, given: &Path) -> Result<Source, RepoError> {
        self.source_claim(given)?;
        let file = canonical(given, false)?;
        let found = below(&file, &self.sources)
            .map(|at| (at, None))
            .or_else(|| {
                below(&file, &self.roots)
                    .map(|at| (at, Some(format!("{RESOURCE_PREFIX}{}", file.display()))))
            })
            .or_else(|| {
                self.named.iter().find_map(|(name, n)| {
                    below(&file, std::slice::from_ref(&n.directory))
                        .map(|at| (at, Some(format!("{RESOURCE_PREFIX}{name}"))))
                })
            });
        if let Some((at, resource)) = found {
            return Ok(Source { at, resource });
        }
        Err(RepoError::Refused(format!(
            "{} (resolved to {}): {}",
            given.display(),
            file.display(),
            self.sources_hint()
        )))
    }

    /// Where target files may be read from, for refusals.
    fn sources_hint(&self) -> String {
        let mut dirs: Vec<String> = self
            .roots
            .iter()
            .chain(&self.sources)
            .chain(self.named.values().map(|n| &n.directory))
            .map(|d| d.display().to_string())
            .collect();
        if dirs.is_empty() {
            dirs.push("none configured: set tuf.roots or tuf.sources".into());
        }
        format!(
            "tufd reads target files only from inside {}",
            dirs.join(", ")
        )
    }

    /// A target file as written (`.` and `..` removed, nothing on disk
    /// looked at) and what the caller must be allowed to sign before the
    /// daemon looks at it: `None` inside a `sources` directory,
    /// `tuf:/the/path` below a root, `tuf:NAME` inside a configured
    /// repository. A path inside none of them is refused in the same words
    /// whether it exists or not.
    pub fn source_claim(&self, given: &Path) -> Result<(PathBuf, Option<String>), RepoError> {
        if !given.is_absolute() {
            return Err(RepoError::InvalidRequest(format!(
                "{}: give target files as absolute paths",
                given.display()
            )));
        }
        let file = lexical(given);
        if lexically_below(&file, &self.sources) {
            return Ok((file, None));
        }
        if lexically_below(&file, &self.roots) {
            let resource = format!("{RESOURCE_PREFIX}{}", file.display());
            return Ok((file, Some(resource)));
        }
        for (name, n) in &self.named {
            if lexically_below(&file, std::slice::from_ref(&n.directory)) {
                return Ok((file, Some(format!("{RESOURCE_PREFIX}{name}"))));
            }
        }
        Err(RepoError::Refused(format!(
            "{}: {}",
            given.display(),
            self.sources_hint()
        )))
    }

    /// What the policy calls the configured repository or root-relative
    /// repository at the canonical directory `dir` (a directory this
    /// daemon manages, as its registry and its keys' labels record it; no
    /// caller's path): `None` when the configuration no longer has it.
    pub fn resource_of(&self, dir: &Path) -> Option<String> {
        for (name, n) in &self.named {
            if canonical(&n.directory, true).is_ok_and(|d| d == dir) {
                return Some(format!("{RESOURCE_PREFIX}{name}"));
            }
        }
        below(dir, &self.roots).map(|_| format!("{RESOURCE_PREFIX}{}", dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(root: &Path, named: &Path) -> Places {
        let text = format!(
            "roots = [{root:?}]\n[[repository]]\nname = \"rel\"\ndirectory = {named:?}\nexpiry = {{ timestamp = 60 }}\n"
        );
        toml::from_str::<RawPlaces>(&text)
            .unwrap()
            .into_places()
            .unwrap()
    }

    #[test]
    fn names_and_paths_resolve_inside_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let p = places(&root, &base.join("named"));

        let named = p.resolve("rel").unwrap();
        assert_eq!(named.dir(), base.join("named"));
        assert_eq!(named.resource, "tuf:rel");
        assert_eq!(named.expiry, vec![("timestamp".to_owned(), 60)]);
        // The same directory by path is the same resource.
        let by_path = p.resolve(base.join("named").to_str().unwrap());
        assert_eq!(by_path.unwrap().resource, "tuf:rel");

        let new = p.resolve(root.join("a").to_str().unwrap()).unwrap();
        assert_eq!(new.resource, format!("tuf:{}", root.join("a").display()));
        // Opened below the root, without links; a configured repository
        // that does not exist yet, below its parent.
        assert_eq!(new.at, Beneath::new(root.clone(), "a".into()));
        assert_eq!(named.at, Beneath::new(base.clone(), "named".into()));
        for bad in [
            outside.join("a"),
            root.clone(),
            root.join("../outside/a"),
            PathBuf::from("/etc"),
        ] {
            let e = p.resolve(bad.to_str().unwrap()).unwrap_err();
            assert!(matches!(e, RepoError::Refused(_)), "{bad:?}: {e}");
        }
        // A symbolic link inside the root to a place outside it.
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let e = p
            .resolve(root.join("link/a").to_str().unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("outside the configured"), "{e}");
        assert!(matches!(p.resolve("nope"), Err(RepoError::Refused(_))));
        assert!(matches!(
            p.resolve("rel/x"),
            Err(RepoError::InvalidRequest(_))
        ));

        std::fs::write(root.join("f"), b"x").unwrap();
        std::fs::write(outside.join("f"), b"x").unwrap();
        let f = p.source(&root.join("f")).unwrap();
        assert_eq!(f.at, Beneath::new(root.clone(), "f".into()));
        assert_eq!(
            f.resource,
            Some(format!("{RESOURCE_PREFIX}{}", root.join("f").display()))
        );
        assert!(matches!(
            p.source(&outside.join("f")),
            Err(RepoError::Refused(_))
        ));
        assert!(matches!(
            p.source(&root.join("link/f")),
            Err(RepoError::Refused(_))
        ));
    }

    #[test]
    fn a_name_is_claimed_as_written_before_anything_on_disk_is_looked_at() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let (root, outside) = (base.join("root"), base.join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(outside.join("exists")).unwrap();
        std::os::unix::fs::symlink(outside.join("exists"), outside.join("link")).unwrap();
        let p = places(&root, &base.join("named"));
        assert_eq!(p.claim("rel").unwrap(), "tuf:rel");
        assert_eq!(
            p.claim(base.join("named/./").to_str().unwrap()).unwrap(),
            "tuf:rel"
        );
        // As written: a link below the root is named as the link.
        let via = root.join("x/../link/a");
        assert_eq!(
            p.claim(via.to_str().unwrap()).unwrap(),
            format!("tuf:{}", root.join("link/a").display())
        );
        // Outside: one answer, whatever is there.
        let answer = |path: PathBuf| {
            let given = path.to_str().unwrap().to_owned();
            let e = p.claim(&given).unwrap_err();
            assert!(matches!(e, RepoError::Refused(_)), "{e}");
            e.to_string().replace(&given, "PATH")
        };
        let missing = answer(outside.join("missing"));
        for path in [
            outside.join("exists"),
            outside.join("link"),
            outside.join("link/a"),
            root.join("../outside/exists"),
        ] {
            assert_eq!(answer(path), missing);
        }
        assert!(matches!(
            p.claim(root.to_str().unwrap()),
            Err(RepoError::Refused(_))
        ));
        assert!(!missing.contains("resolved"), "{missing}");
        let source = |path: PathBuf| {
            let e = p.source_claim(&path).unwrap_err();
            e.to_string().replace(path.to_str().unwrap(), "PATH")
        };
        assert_eq!(
            source(outside.join("exists")),
            source(outside.join("missing"))
        );
        assert_eq!(
            p.source_claim(&root.join("f")).unwrap().1,
            Some(format!("tuf:{}", root.join("f").display()))
        );
    }

    #[test]
    fn a_configured_repository_below_a_root_is_opened_below_it() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let (root, other) = (base.join("root"), base.join("other"));
        std::fs::create_dir_all(root.join("team/rel")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let p = places(&root, &root.join("team/rel"));
        let place = p.resolve("rel").unwrap();
        assert_eq!(place.at, Beneath::new(root.clone(), "team/rel".into()));
        assert_eq!(place.dir(), root.join("team/rel"));
        place.at.open_dir(false).unwrap();
        // Swapped for a link by someone who can write in the root: the
        // name still resolves, the open refuses the link.
        std::fs::rename(root.join("team/rel"), root.join("team/moved")).unwrap();
        std::os::unix::fs::symlink(&other, root.join("team/rel")).unwrap();
        let place = p.resolve("rel").unwrap();
        let e = place.at.open_dir(false).unwrap_err();
        assert!(
            e.to_string().contains("team/rel: a symbolic link below"),
            "{e}"
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        for (text, want) in [
            ("roots = [\"rel\"]", "absolute"),
            (
                "[[repository]]\nname = \"A\"\ndirectory = \"/x\"",
                "lower-case",
            ),
            (
                "[[repository]]\nname = \"a\"\ndirectory = \"/x\"\nexpiry = { weekly = 1 }",
                "expiry.weekly",
            ),
            (
                "[[repository]]\nname = \"a\"\ndirectory = \"/x\"\n[[repository]]\nname = \"a\"\ndirectory = \"/y\"",
                "twice",
            ),
        ] {
            let e = toml::from_str::<RawPlaces>(text)
                .unwrap()
                .into_places()
                .unwrap_err();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }
}

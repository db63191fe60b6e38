//! `docker trust inspect`, reproduced from a verified repository.
//!
//! [`inspect`] computes what docker CLI 28 (`cli/command/trust/inspect.go`,
//! `common.go`, `helpers.go`, with the notary 0.7 client's
//! `GetAllTargetMetadataByName`, `ListRoles` and `GetDelegationRoles`)
//! reports for a repository, in the order docker's JSON prints it:
//!
//! - **Signed tags** are the targets of `targets` and `targets/releases`
//!   (docker's "released" roles), one row per distinct (tag, hex sha256)
//!   pair. A row's signers are the *other* roles (delegations such as
//!   `targets/alice`, named without `targets/`: `alice`, `carol/nightly`)
//!   that list the same tag with the same digest, in the client's walk order
//!   (breadth first, each parent's delegation order). A row no other role
//!   signed shows the single signer `"Repo Admin"`. Tags only a non-released
//!   delegation signed are not shown. Rows are sorted by natural order of
//!   the tag (`v2` before `v10`); docker leaves the order of two rows with
//!   the same tag to chance, tufd orders them by digest.
//! - Listing every tag, docker ignores delegation paths (it reads every
//!   target of every published role); asking for one tag (`REPO:TAG`), only
//!   roles whose paths cover the tag are walked, and a role whose paths do
//!   not cover it hides its whole subtree.
//! - **Signers** are every delegation entry of every published targets-type
//!   role except `targets/releases` (also entries whose role file was never
//!   published, and entries left without keys), with their *canonical* key
//!   IDs (the `ecdsa` key ID of an `ecdsa-x509` certificate's key), in
//!   metadata order, sorted by signer name in *descending* byte order.
//! - **Administrative keys** are `Root` (root.json `roles.root.keyids`, the
//!   certificate key IDs) then `Repository` (`roles.targets.keyids`), key
//!   IDs in root.json order.
//!
//! Evidence: `tests/fixtures/inspect/` holds repositories made with docker
//! 28.2.2 and notary 0.7.0 and what `docker trust inspect` printed for
//! them; the unit tests compare against those files.
//!
//! Beyond docker, [`Inspection::expiry_warnings`] lists roles (and root
//! certificates) that expire within six months.

use std::collections::{BTreeMap, BTreeSet};
use tufd_proto::names::{self, natural_cmp};

use time::{Date, Month, OffsetDateTime};
use tufd_tuf::{Key, Metadata, Targets, VerifiedRepository};

/// Signer name docker shows for tags signed only by the targets key or
/// only into `targets/releases`.
pub const REPO_ADMIN: &str = "Repo Admin";

/// The role docker treats as "released" besides `targets`.
pub const RELEASES_ROLE: &str = "targets/releases";

/// Name of the administrative entry for the root keys.
pub const ROOT_KEYS: &str = "Root";

/// Name of the administrative entry for the targets keys.
pub const REPOSITORY_KEYS: &str = "Repository";

/// One element of `docker trust inspect`'s JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The repository as the caller named it (`Name`), tag included.
    pub name: String,
    /// `SignedTags`, in docker's order.
    pub signed_tags: Vec<SignedTag>,
    /// `Signers`, in docker's JSON order (name descending).
    pub signers: Vec<RoleKeys>,
    /// `AdministrativeKeys`: `Root`, then `Repository`.
    pub administrative_keys: Vec<RoleKeys>,
    /// Roles that expire within six months of the inspection time (or have
    /// expired). Not part of docker's output.
    pub expiry_warnings: Vec<ExpiryWarning>,
}

/// One signed tag row (`SignedTag`, `Digest`, `Signers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTag {
    /// The tag (target name).
    pub tag: String,
    /// Hex SHA-256 of the manifest, without `sha256:`; empty when the
    /// target has no sha256 hash (as docker prints it).
    pub digest: String,
    /// Manifest size from the first released role listing the row (not
    /// shown by docker).
    pub size: u64,
    /// Signer names in docker's JSON order; `["Repo Admin"]` when no
    /// delegation other than `targets/releases` signed it.
    pub signers: Vec<String>,
}

impl SignedTag {
    /// Whether only the repository's administrative roles signed the tag
    /// (docker's pretty output shows `(Repo Admin)`).
    pub fn is_admin_only(&self) -> bool {
        self.signers.len() == 1 && self.signers[0] == REPO_ADMIN
    }
}

/// A named list of key IDs: a signer, or `Root` / `Repository`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleKeys {
    /// Signer name (`alice`, `carol/nightly`) or `Root` / `Repository`.
    pub name: String,
    /// Key IDs in metadata order (canonical IDs for signers, IDs as listed
    /// in root.json for administrative keys).
    pub key_ids: Vec<String>,
}

/// A role close to its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryWarning {
    /// `root`, `targets`, `snapshot`, `timestamp`, a delegation such as
    /// `targets/releases`, or `root certificate <key id>`.
    pub role: String,
    /// When it expires.
    pub expires: OffsetDateTime,
    /// Whether it has already expired at the inspection time.
    pub expired: bool,
}

/// Describes `repo` as `docker trust inspect REFERENCE` does, at `now`.
///
/// `reference` is what the user asked for and becomes [`Inspection::name`]
/// unchanged; when it ends in `:TAG` (docker's grammar, [`names`]) only that
/// tag is reported, as docker does. The repository must already be
/// verified for the reference's repository name.
pub fn inspect(reference: &str, repo: &VerifiedRepository, now: OffsetDateTime) -> Inspection {
    let tag = names::maybe_tagged(reference).ok().and_then(|(_, t)| t);
    Inspection {
        name: reference.to_owned(),
        signed_tags: signed_tags(repo, tag.as_deref()),
        signers: signers(repo),
        administrative_keys: administrative_keys(repo),
        expiry_warnings: expiry_warnings(repo, now),
    }
}

/// A published targets-type role as the notary client walks it.
struct WalkedRole<'a> {
    name: &'a str,
    targets: &'a Targets,
}

/// The roles `WalkTargets` visits for `tag` (all published roles when
/// `None`), in its breadth-first order. With a tag, a role whose
/// (restricted) paths do not cover it is skipped with its subtree.
fn walk<'a>(repo: &'a VerifiedRepository, tag: Option<&str>) -> Vec<WalkedRole<'a>> {
    let mut visited: BTreeSet<&str> = BTreeSet::new();
    let mut out = vec![WalkedRole {
        name: "targets",
        targets: repo.targets.signed(),
    }];
    visited.insert("targets");
    // `repo.delegations` is already breadth first with restricted paths,
    // and every parent comes before its children.
    for (name, delegation) in &repo.delegations {
        let parent = name.rsplit_once('/').map_or("targets", |(p, _)| p);
        if !visited.contains(parent) {
            continue;
        }
        if let Some(tag) = tag
            && !delegation.role.allows(tag)
        {
            continue;
        }
        visited.insert(name);
        out.push(WalkedRole {
            name,
            targets: delegation.file.signed(),
        });
    }
    out
}

fn is_released(role: &str) -> bool {
    role == "targets" || role == RELEASES_ROLE
}

/// Docker's signer name for a role: `targets/alice` → `alice`.
fn signer_name(role: &str) -> String {
    if is_released(role) {
        return REPO_ADMIN.to_owned();
    }
    role.strip_prefix("targets/").unwrap_or(role).to_owned()
}

/// docker's `matchReleasedSignatures` over the walk's targets. Rows are
/// keyed by what the repository holds (tag name, raw sha256), borrowed:
/// only the answer's rows own their strings.
fn signed_tags(repo: &VerifiedRepository, tag: Option<&str>) -> Vec<SignedTag> {
    let roles = walk(repo, tag);
    fn listed<'a>(
        role: &WalkedRole<'a>,
        tag: Option<&str>,
    ) -> Vec<(&'a String, &'a tufd_tuf::TargetMeta)> {
        match tag {
            Some(t) => role.targets.targets.get_key_value(t).into_iter().collect(),
            None => role.targets.targets.iter().collect(),
        }
    }
    // (tag, sha256) → (size, signers), released rows first.
    type Row<'a> = (u64, Vec<&'a str>);
    let mut rows: BTreeMap<(&str, Option<&[u8]>), Row<'_>> = BTreeMap::new();
    for role in roles.iter().filter(|r| is_released(r.name)) {
        for (name, meta) in listed(role, tag) {
            rows.entry((name.as_str(), meta.hashes.get("sha256")))
                .or_insert((meta.length, Vec::new()));
        }
    }
    for role in roles.iter().filter(|r| !is_released(r.name)) {
        let signer = role.name.strip_prefix("targets/").unwrap_or(role.name);
        for (name, meta) in listed(role, tag) {
            if let Some((_, signers)) = rows.get_mut(&(name.as_str(), meta.hashes.get("sha256"))) {
                signers.push(signer);
            }
        }
    }
    let mut out: Vec<SignedTag> = rows
        .into_iter()
        .map(|((tag, digest), (size, signers))| SignedTag {
            tag: tag.to_owned(),
            digest: digest.map(hex::encode).unwrap_or_default(),
            size,
            signers: if signers.is_empty() {
                vec![REPO_ADMIN.to_owned()]
            } else {
                signers.into_iter().map(str::to_owned).collect()
            },
        })
        .collect();
    out.sort_by(|a, b| natural_cmp(&a.tag, &b.tag).then_with(|| a.digest.cmp(&b.digest)));
    out
}

/// The canonical key ID docker shows for a delegation key (`CanonicalKeyID`:
/// the plain key's ID for an x509 key). Falls back to the listed ID when a
/// certificate cannot be read (the repository verified, so the key is at
/// least well-formed).
fn canonical_id(listed: &str, key: Option<&Key>) -> String {
    key.and_then(|k| k.canonical_id().ok())
        .unwrap_or_else(|| listed.to_owned())
}

/// docker's `getDelegationRoleToKeyMap` over `GetDelegationRoles`, in JSON order.
fn signers(repo: &VerifiedRepository) -> Vec<RoleKeys> {
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for role in walk(repo, None) {
        let delegations = &role.targets.delegations;
        for entry in &delegations.roles {
            if entry.name == RELEASES_ROLE {
                continue;
            }
            let ids = entry
                .keyids
                .iter()
                .map(|id| canonical_id(id, delegations.keys.get(id)))
                .collect();
            by_name.insert(signer_name(&entry.name), ids);
        }
    }
    // BTreeMap iterates ascending by bytes; docker sorts descending.
    by_name
        .into_iter()
        .rev()
        .map(|(name, key_ids)| RoleKeys { name, key_ids })
        .collect()
}

/// `Root` then `Repository`, with the key IDs root.json lists.
fn administrative_keys(repo: &VerifiedRepository) -> Vec<RoleKeys> {
    let roles = &repo.root.signed().roles;
    [("root", ROOT_KEYS), ("targets", REPOSITORY_KEYS)]
        .into_iter()
        .filter_map(|(role, name)| {
            roles.get(role).map(|r| RoleKeys {
                name: name.to_owned(),
                key_ids: r.keyids.clone(),
            })
        })
        .collect()
}

/// `now` plus six calendar months, as Go's `AddDate(0, 6, 0)` (an
/// overflowing day rolls into the next month: Aug 31 → Mar 3).
fn six_months_after(now: OffsetDateTime) -> OffsetDateTime {
    let months = i32::from(u8::from(now.month())) - 1 + 6;
    let year = now.year() + months / 12;
    let month = Month::try_from((months % 12 + 1) as u8).unwrap_or(Month::December);
    let first = Date::from_calendar_date(year, month, 1).unwrap_or(now.date());
    let date = first
        .checked_add(time::Duration::days(i64::from(now.day()) - 1))
        .unwrap_or(first);
    now.replace_date(date)
}

/// Roles expiring within six months of `now`, in the order root, targets,
/// snapshot, delegations (walk order), then root certificates.
///
/// The timestamp is left out unless it has expired: notary-server re-signs
/// it by itself and it always lives only 14 days, so a six-month rule
/// would warn on every repository.
fn expiry_warnings(repo: &VerifiedRepository, now: OffsetDateTime) -> Vec<ExpiryWarning> {
    let horizon = six_months_after(now);
    let mut out = Vec::new();
    let mut check = |role: &str, expires: OffsetDateTime, horizon: OffsetDateTime| {
        if expires <= horizon {
            out.push(ExpiryWarning {
                role: role.to_owned(),
                expires,
                expired: expires <= now,
            });
        }
    };
    check("root", repo.root.signed().expires(), horizon);
    check("targets", repo.targets.signed().expires(), horizon);
    check("snapshot", repo.snapshot.signed().expires(), horizon);
    if let Some(timestamp) = &repo.timestamp {
        check("timestamp", timestamp.signed().expires(), now);
    }
    for (name, delegation) in &repo.delegations {
        check(name, delegation.file.signed().expires(), horizon);
    }
    let root = repo.root.signed();
    if let Some(root_role) = root.roles.get("root") {
        for id in &root_role.keyids {
            let Some(key) = root.keys.get(id) else {
                continue;
            };
            let Ok(certs) = key.certificates() else {
                continue;
            };
            let Some(leaf) = certs.first() else {
                continue;
            };
            let not_after = leaf
                .tbs_certificate()
                .validity()
                .not_after
                .to_unix_duration();
            let Ok(not_after) = OffsetDateTime::from_unix_timestamp(
                i64::try_from(not_after.as_secs()).unwrap_or(i64::MAX),
            ) else {
                continue;
            };
            check(&format!("root certificate {id}"), not_after, horizon);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::path::{Path, PathBuf};
    use time::macros::datetime;
    use tufd_tuf::{RepositoryFiles, Root, Signed, verify_repository};

    /// Every fixture is valid then (made 2026-11-25; timestamps expire 2026-12-09).
    const NOW: OffsetDateTime = datetime!(2026-11-26 00:00 UTC);

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("daemon/ has a parent")
            .to_owned()
    }

    fn read(path: &Path) -> bytes::Bytes {
        std::fs::read(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .into()
    }

    /// Loads and verifies a repository directory (root.json, timestamp.json,
    /// snapshot.json, targets.json, targets/**.json).
    fn load(dir: &Path, gun: &str) -> VerifiedRepository {
        fn delegations(dir: &Path, base: &Path, out: &mut BTreeMap<String, bytes::Bytes>) {
            for entry in std::fs::read_dir(dir).expect("fixture directory") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    delegations(&path, base, out);
                } else if path.extension().is_some_and(|e| e == "json") {
                    let rel = path.strip_prefix(base).expect("inside base");
                    let role = rel.with_extension("").to_string_lossy().into_owned();
                    out.insert(role, read(&path));
                }
            }
        }
        let mut files = RepositoryFiles {
            timestamp: read(&dir.join("timestamp.json")),
            snapshot: read(&dir.join("snapshot.json")),
            targets: read(&dir.join("targets.json")),
            ..Default::default()
        };
        if dir.join("targets").is_dir() {
            delegations(&dir.join("targets"), dir, &mut files.delegations);
        }
        let root = Signed::<Root>::from_bytes(&read(&dir.join("root.json"))).expect("root");
        verify_repository(&root, &files, gun, NOW).expect("fixture verifies")
    }

    fn inspect_fixture(name: &str) -> PathBuf {
        workspace().join("tests/fixtures/inspect").join(name)
    }

    /// The inspection in docker's JSON shape (as `docker trust inspect`
    /// marshals `trustRepo`: `omitempty` on signer names, keys and IDs).
    fn docker_json(i: &Inspection) -> Value {
        let keys = |list: &[RoleKeys]| -> Vec<Value> {
            list.iter()
                .map(|r| {
                    let mut v = serde_json::Map::new();
                    if !r.name.is_empty() {
                        v.insert("Name".into(), json!(r.name));
                    }
                    if !r.key_ids.is_empty() {
                        let ids: Vec<Value> =
                            r.key_ids.iter().map(|id| json!({ "ID": id })).collect();
                        v.insert("Keys".into(), Value::Array(ids));
                    }
                    Value::Object(v)
                })
                .collect()
        };
        json!({
            "Name": i.name,
            "SignedTags": i.signed_tags.iter().map(|t| json!({
                "SignedTag": t.tag, "Digest": t.digest, "Signers": t.signers,
            })).collect::<Vec<_>>(),
            "Signers": keys(&i.signers),
            "AdministrativeKeys": keys(&i.administrative_keys),
        })
    }

    /// docker's output with rows of equal tags in tufd's order (docker
    /// leaves their order to Go's unstable sort over a map).
    fn expected(path: &Path) -> Vec<Value> {
        let mut v: Vec<Value> = serde_json::from_slice(&read(path)).expect("docker JSON");
        for repo in &mut v {
            if let Some(Value::Array(rows)) = repo.get_mut("SignedTags") {
                rows.sort_by(|a, b| {
                    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
                    natural_cmp(&s(a, "SignedTag"), &s(b, "SignedTag"))
                        .then_with(|| s(a, "Digest").cmp(&s(b, "Digest")))
                });
            }
        }
        v
    }

    #[test]
    fn full_repository_matches_docker() {
        let repo = load(&inspect_fixture("app"), "localhost:5000/gt/app");
        let got = inspect("localhost:5000/gt/app", &repo, NOW);
        let want = expected(&inspect_fixture("app/docker-trust-inspect.json"));
        assert_eq!(vec![docker_json(&got)], want);
        // The cases the fixture covers, spelled out.
        let tags: Vec<(&str, Vec<&str>)> = got
            .signed_tags
            .iter()
            .map(|t| {
                (
                    t.tag.as_str(),
                    t.signers.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            tags,
            vec![
                ("a<b>&c", vec!["Repo Admin"]),   // targets only
                ("latest", vec!["alice", "bob"]), // walk order, not argument order
                ("v1", vec!["alice", "carol"]),   // x509 delegation too
                ("v2", vec!["alice", "bob"]),     // carol/nightly never signed it
                ("v3", vec!["Repo Admin"]),       // targets/releases only
                ("v5", vec!["Repo Admin"]),       // alice signed another digest
                ("v6", vec!["Repo Admin"]),       // two digests: two rows
                ("v6", vec!["bob"]),
                ("v7", vec!["carol"]),
                ("v10", vec!["Repo Admin"]), // natural order
            ]
        );
        assert!(!tags.iter().any(|(t, _)| *t == "v4" || *t == "nightly/1"));
        let v7 = got.signed_tags.iter().find(|t| t.tag == "v7").expect("v7");
        assert_eq!(v7.size, 5);
        // erin: delegated (paths qa/) but never published: still a signer.
        let erin = got.signers.iter().find(|s| s.name == "erin").expect("erin");
        assert_eq!(erin.key_ids.len(), 1);
    }

    #[test]
    fn signer_keys_are_canonical_ids() {
        let repo = load(&inspect_fixture("app"), "localhost:5000/gt/app");
        let got = inspect("localhost:5000/gt/app", &repo, NOW);
        let carol = got
            .signers
            .iter()
            .find(|s| s.name == "carol")
            .expect("carol");
        // `notary delegation add` printed this canonical ID; targets.json
        // lists the certificate under another (cert) ID.
        assert_eq!(
            carol.key_ids,
            ["31e7670a7ed7fbf32241ca198d835926b644f5ac3c616e8f03f1a9ed0e400378"]
        );
        let listed = &repo
            .targets
            .signed()
            .delegations
            .role("targets/carol")
            .expect("carol role")
            .keyids;
        assert_ne!(listed, &carol.key_ids);
    }

    #[test]
    fn one_tag_matches_docker() {
        let repo = load(&inspect_fixture("app"), "localhost:5000/gt/app");
        for tag in ["v6", "v4"] {
            let name = format!("localhost:5000/gt/app:{tag}");
            let got = inspect(&name, &repo, NOW);
            let want = expected(&inspect_fixture(&format!(
                "app/docker-trust-inspect-{tag}.json"
            )));
            assert_eq!(vec![docker_json(&got)], want, "{tag}");
        }
    }

    #[test]
    fn tag_outside_a_delegations_paths_skips_its_subtree() {
        let repo = load(&inspect_fixture("app"), "localhost:5000/gt/app");
        // carol/nightly may sign only nightly/…: asking for nightly/1 walks
        // it, but it is not a released role, so no row.
        let walked: Vec<&str> = walk(&repo, Some("nightly/1"))
            .iter()
            .map(|r| r.name)
            .collect();
        assert!(walked.contains(&"targets/carol/nightly"), "{walked:?}");
        let walked: Vec<&str> = walk(&repo, Some("v1")).iter().map(|r| r.name).collect();
        assert!(!walked.contains(&"targets/carol/nightly"), "{walked:?}");
        assert!(signed_tags(&repo, Some("nightly/1")).is_empty());
        assert_eq!(signed_tags(&repo, Some("v1")).len(), 1);
    }

    /// `notary delegation remove GUN targets/erin KEYID` left erin without
    /// keys; notary 0.7.0 then writes `"keyids":null` into targets.json and
    /// docker prints the signer as `{"Name": "erin"}` (no `Keys`).
    #[test]
    fn keyless_delegation_matches_docker() {
        let repo = load(
            &inspect_fixture("app-keyless-role"),
            "localhost:5000/gt/app",
        );
        let got = inspect("localhost:5000/gt/app", &repo, NOW);
        let want = expected(&inspect_fixture(
            "app-keyless-role/docker-trust-inspect.json",
        ));
        assert_eq!(vec![docker_json(&got)], want);
        let erin = got.signers.iter().find(|s| s.name == "erin").expect("erin");
        assert!(erin.key_ids.is_empty());
    }

    #[test]
    fn empty_repository_matches_docker() {
        let repo = load(&inspect_fixture("empty"), "localhost:5000/gt/empty");
        let got = inspect("localhost:5000/gt/empty", &repo, NOW);
        let want = expected(&inspect_fixture("empty/docker-trust-inspect.json"));
        assert_eq!(vec![docker_json(&got)], want);
        assert!(got.signed_tags.is_empty() && got.signers.is_empty());
    }

    #[test]
    fn multiple_repositories_match_docker() {
        let empty = load(&inspect_fixture("empty"), "localhost:5000/gt/empty");
        let app = load(&inspect_fixture("app"), "localhost:5000/gt/app");
        let got = vec![
            docker_json(&inspect("localhost:5000/gt/empty", &empty, NOW)),
            docker_json(&inspect("localhost:5000/gt/app:v6", &app, NOW)),
        ];
        assert_eq!(got, expected(&inspect_fixture("multi.json")));
    }

    #[test]
    fn docker_made_fixture_shows_the_keys_docker_printed() {
        // daemon/tuf/tests/fixtures/docker: `docker trust inspect` printed
        // Root Key e082f1256b17… and Repository Key 9cd8371cf17b… (README there).
        let dir = workspace().join("daemon/tuf/tests/fixtures/docker");
        let repo = load(&dir, "localhost:5000/library/app");
        let got = inspect("localhost:5000/library/app", &repo, NOW);
        assert_eq!(got.administrative_keys.len(), 2);
        assert_eq!(got.administrative_keys[0].name, "Root");
        assert!(got.administrative_keys[0].key_ids[0].starts_with("e082f1256b17"));
        assert_eq!(got.administrative_keys[1].name, "Repository");
        assert!(got.administrative_keys[1].key_ids[0].starts_with("9cd8371cf17b"));
        // v1 was added to targets/releases only (notary addhash): Repo Admin.
        assert_eq!(got.signed_tags.len(), 1);
        assert_eq!(got.signed_tags[0].tag, "v1");
        assert!(got.signed_tags[0].is_admin_only());
        assert_eq!(got.signed_tags[0].size, 527);
        assert_eq!(got.signers.len(), 1);
        assert_eq!(got.signers[0].name, "alice");
    }

    #[test]
    fn rotated_root_shows_only_the_current_root_key() {
        let dir = workspace().join("daemon/tuf/tests/fixtures/tufd-rotated");
        let files = RepositoryFiles {
            root_chain: vec![read(&dir.join("root.json"))],
            timestamp: read(&dir.join("timestamp.json")),
            snapshot: read(&dir.join("snapshot.json")),
            targets: read(&dir.join("targets.json")),
            delegations: [(
                "targets/releases".to_owned(),
                read(&dir.join("targets/releases.json")),
            )]
            .into(),
            parsed: Default::default(),
        };
        let old = Signed::<Root>::from_bytes(&read(&dir.join("1.root.json"))).expect("root");
        let repo =
            verify_repository(&old, &files, "localhost:5000/tufd/rt3", NOW).expect("verifies");
        let got = inspect("localhost:5000/tufd/rt3", &repo, NOW);
        let current = &repo.root.signed().roles["root"].keyids;
        assert_eq!(&got.administrative_keys[0].key_ids, current);
        let old_ids = &old.signed().roles["root"].keyids;
        assert!(old_ids.iter().all(|id| !current.contains(id)));
    }

    #[test]
    fn expiry_warnings_within_six_months() {
        let repo = load(&inspect_fixture("app"), "localhost:5000/gt/app");
        assert!(inspect("r", &repo, NOW).expiry_warnings.is_empty());
        // Targets, snapshot and delegations expire 2029-11-24; root 2036.
        let later = datetime!(2029-06-01 00:00 UTC);
        let warnings = inspect("r", &repo, later).expiry_warnings;
        let roles: Vec<&str> = warnings.iter().map(|w| w.role.as_str()).collect();
        assert_eq!(
            roles,
            [
                "targets",
                "snapshot",
                "timestamp",
                "targets/alice",
                "targets/releases",
                "targets/bob",
                "targets/carol",
                "targets/carol/nightly"
            ]
        );
        assert!(
            warnings
                .iter()
                .all(|w| w.expired == (w.role == "timestamp"))
        );
        let before = datetime!(2029-05-23 00:00 UTC);
        let warnings = inspect("r", &repo, before).expiry_warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        // The timestamp (14 days) only when expired; root and its certificate
        // near 2036.
        let much_later = datetime!(2036-10-01 00:00 UTC);
        let warnings = inspect("r", &repo, much_later).expiry_warnings;
        assert!(warnings.iter().any(|w| w.role == "timestamp" && w.expired));
        assert!(warnings.iter().any(|w| w.role == "root" && !w.expired));
        assert!(
            warnings
                .iter()
                .any(|w| w.role.starts_with("root certificate "))
        );
    }

    #[test]
    fn six_months_is_calendar_months() {
        assert_eq!(
            six_months_after(datetime!(2026-08-31 12:00 UTC)),
            datetime!(2027-03-03 12:00 UTC)
        );
        assert_eq!(
            six_months_after(datetime!(2026-11-25 16:00 UTC)),
            datetime!(2027-05-25 16:00 UTC)
        );
    }

    #[test]
    fn natural_order_as_sortorder() {
        let mut v = vec![
            "v10", "v2", "v1", "a", "v01", "1", "10", "b2", "b", "v1.10", "v1.9", "",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "", "1", "10", "a", "b", "b2", "v1", "v1.9", "v1.10", "v01", "v2", "v10"
            ]
        );
    }
}

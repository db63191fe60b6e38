//! Typed contents of the `signed` object of each role (format notes §2).
//!
//! The structs hold the fields notary writes; `_type` is not a field but is
//! added on encoding and checked on parsing by [`crate::Signed`] through
//! [`Metadata::TYPE`]. Unknown fields are ignored when parsing (as Go does);
//! signatures are always checked over the bytes as parsed, never over a
//! re-encoding of these structs.

use std::collections::BTreeMap;

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::expiry::serde_go_time;
use crate::key::Key;
use crate::role::RoleName;

/// Common behaviour of the four kinds of `signed` objects.
pub trait Metadata: Serialize + DeserializeOwned + Clone {
    /// The `_type` value: `Root`, `Targets`, `Snapshot` or `Timestamp`.
    const TYPE: &'static str;
    /// The `version` field.
    fn version(&self) -> u64;
    /// The `expires` field.
    fn expires(&self) -> OffsetDateTime;

    /// The JSON value notary signs: the struct plus `"_type"`.
    fn to_json_value(&self) -> Result<serde_json::Value> {
        let mut value = serde_json::to_value(self).map_err(|e| Error::parse(Self::TYPE, e))?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert(
                "_type".to_owned(),
                serde_json::Value::String(Self::TYPE.to_owned()),
            );
        }
        Ok(value)
    }
}

macro_rules! impl_metadata {
    ($t:ty, $name:literal) => {
        impl Metadata for $t {
            const TYPE: &'static str = $name;
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> OffsetDateTime {
                self.expires
            }
        }
    };
}

/// Key IDs and threshold of a top-level role in root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Key IDs (cert ids for x509 keys) allowed to sign the role.
    pub keyids: Vec<String>,
    /// Signatures required; notary only supports 1.
    pub threshold: u32,
}

/// `root.json`'s `signed` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// Always `false` from notary.
    #[serde(default)]
    pub consistent_snapshot: bool,
    /// Expiry.
    #[serde(with = "serde_go_time")]
    pub expires: OffsetDateTime,
    /// Every key any top-level role uses (old root keys stay after rotation).
    pub keys: BTreeMap<String, Key>,
    /// `root`, `targets`, `snapshot`, `timestamp` → keys and threshold.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Version, ≥ 1.
    pub version: u64,
}
impl_metadata!(Root, "Root");

impl Root {
    /// An empty root at version 1.
    pub fn new(expires: OffsetDateTime) -> Self {
        Root {
            consistent_snapshot: false,
            expires,
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
            version: 1,
        }
    }

    /// Makes `keys` the only keys of a top-level `role` (threshold 1).
    /// The keys are added to `keys`; keys of other roles, and keys this role
    /// used before, stay in the map as notary leaves them.
    pub fn set_role_keys(&mut self, role: &RoleName, keys: &[Key]) -> Result<()> {
        if matches!(role, RoleName::Delegation(_)) {
            return Err(Error::InvalidRoleName(role.to_string()));
        }
        let mut keyids = Vec::with_capacity(keys.len());
        for key in keys {
            let id = key.id();
            self.keys.insert(id.clone(), key.clone());
            keyids.push(id);
        }
        self.roles.insert(
            role.as_str().to_owned(),
            RoleKeys {
                keyids,
                threshold: 1,
            },
        );
        Ok(())
    }

    /// Keys and threshold of a top-level role, checked: every key ID must be
    /// in `keys` and the threshold must be between 1 and the key count.
    pub fn role_keys(&self, role: &RoleName) -> Result<(BTreeMap<String, Key>, u32)> {
        let entry = self
            .roles
            .get(role.as_str())
            .ok_or_else(|| Error::InvalidRoot(format!("no {role} role in root.roles")))?;
        let keys = collect_keys(role.as_str(), &entry.keyids, &self.keys, "root")?;
        check_threshold(role.as_str(), entry.threshold, keys.len())?;
        Ok((keys, entry.threshold))
    }
}

/// Looks up `keyids` in `keys`, failing on a missing ID.
pub(crate) fn collect_keys(
    role: &str,
    keyids: &[String],
    keys: &BTreeMap<String, Key>,
    listed_in: &str,
) -> Result<BTreeMap<String, Key>> {
    keyids
        .iter()
        .map(|id| {
            keys.get(id)
                .map(|k| (id.clone(), k.clone()))
                .ok_or_else(|| Error::MissingKey {
                    role: role.to_owned(),
                    keyid: id.clone(),
                    listed_in: listed_in.to_owned(),
                })
        })
        .collect()
}

pub(crate) fn check_threshold(role: &str, threshold: u32, keys: usize) -> Result<()> {
    if threshold < 1 || threshold as usize > keys {
        return Err(Error::BadThreshold {
            role: role.to_owned(),
            threshold,
            keys,
        });
    }
    Ok(())
}

/// Hash algorithm name → raw digest (base64 in JSON).
///
/// Stored without an allocation for what notary and docker write (a 32-byte
/// `sha256`, a 64-byte `sha512`): a targets role of 100 000 tags holds
/// 100 000 of these. Any other algorithm, or a digest of another length,
/// is kept as given in `other`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hashes {
    sha256: Option<[u8; 32]>,
    sha512: Option<Box<[u8; 64]>>,
    other: BTreeMap<String, Vec<u8>>,
}

impl Hashes {
    /// `sha256` and `sha512` of `bytes`, as the notary CLI and server write.
    pub fn of(bytes: &[u8]) -> Self {
        Hashes {
            sha256: Some(Sha256::digest(bytes).into()),
            sha512: Some(Box::new(Sha512::digest(bytes).into())),
            other: BTreeMap::new(),
        }
    }

    /// Only a `sha256` digest (what docker writes for a manifest).
    pub fn sha256(digest: [u8; 32]) -> Self {
        Hashes {
            sha256: Some(digest),
            ..Hashes::default()
        }
    }

    /// The value of one algorithm.
    pub fn get(&self, algorithm: &str) -> Option<&[u8]> {
        let fixed = match algorithm {
            "sha256" => self.sha256.as_ref().map(|d| &d[..]),
            "sha512" => self.sha512.as_deref().map(|d| &d[..]),
            _ => None,
        };
        fixed.or_else(|| self.other.get(algorithm).map(Vec::as_slice))
    }

    /// Every algorithm and value, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let fixed = [
            self.sha256.as_ref().map(|d| ("sha256", &d[..])),
            self.sha512.as_deref().map(|d| ("sha512", &d[..])),
        ];
        let mut all: Vec<(&str, &[u8])> = fixed.into_iter().flatten().collect();
        if !self.other.is_empty() {
            all.extend(self.other.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
            all.sort_by(|a, b| a.0.cmp(b.0));
        }
        all.into_iter()
    }

    /// How many algorithms are listed.
    pub fn len(&self) -> usize {
        usize::from(self.sha256.is_some()) + usize::from(self.sha512.is_some()) + self.other.len()
    }

    /// Whether no algorithm is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets `algorithm` to `digest`, replacing an earlier value.
    pub fn insert(&mut self, algorithm: &str, digest: Vec<u8>) {
        self.other.remove(algorithm);
        match (algorithm, digest.len()) {
            ("sha256", 32) => {
                self.sha256 = <[u8; 32]>::try_from(digest.as_slice()).ok();
                return;
            }
            ("sha512", 64) => {
                self.sha512 = <[u8; 64]>::try_from(digest.as_slice()).ok().map(Box::new);
                return;
            }
            ("sha256", _) => self.sha256 = None,
            ("sha512", _) => self.sha512 = None,
            _ => {}
        }
        self.other.insert(algorithm.to_owned(), digest);
    }
}

impl Serialize for Hashes {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.len()))?;
        let mut entry = |k: &str, v: &[u8]| {
            // Digests of the usual algorithms encode on the stack.
            let mut buf = [0u8; 128];
            let engine = base64::engine::general_purpose::STANDARD;
            match engine.encode_slice(v, &mut buf) {
                Ok(n) => map.serialize_entry(k, std::str::from_utf8(&buf[..n]).unwrap_or("")),
                Err(_) => map.serialize_entry(k, &engine.encode(v)),
            }
        };
        if self.other.is_empty() {
            if let Some(d) = &self.sha256 {
                entry("sha256", d)?;
            }
            if let Some(d) = &self.sha512 {
                entry("sha512", &d[..])?;
            }
        } else {
            for (k, v) in self.iter() {
                entry(k, v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Hashes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(HashesVisitor)
    }
}

/// Reads the map entry by entry, decoding each value straight from the
/// input: no intermediate map of strings.
struct HashesVisitor;

impl<'de> serde::de::Visitor<'de> for HashesVisitor {
    type Value = Hashes;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map of hash algorithm to base64 digest")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Hashes, A::Error> {
        let mut hashes = Hashes::default();
        while let Some(HashName(name)) = map.next_key::<HashName>()? {
            let Digest64(digest) = map.next_value_seed(DigestSeed(&name))?;
            hashes.insert(&name, digest);
        }
        Ok(hashes)
    }
}

/// An algorithm name; the usual ones without an allocation.
struct HashName(std::borrow::Cow<'static, str>);

impl<'de> Deserialize<'de> for HashName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_str(HashNameVisitor)
    }
}

struct HashNameVisitor;

impl serde::de::Visitor<'_> for HashNameVisitor {
    type Value = HashName;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a hash algorithm name")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<HashName, E> {
        Ok(HashName(match v {
            "sha256" => "sha256".into(),
            "sha512" => "sha512".into(),
            other => other.to_owned().into(),
        }))
    }
}

/// One decoded digest.
struct Digest64(Vec<u8>);

/// Decodes a base64 digest, naming its algorithm in errors.
struct DigestSeed<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for DigestSeed<'_> {
    type Value = Digest64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Digest64, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DigestSeed<'_> {
    type Value = Digest64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "the base64 digest of {}", self.0)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Digest64, E> {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_bytes())
            .map(Digest64)
            .map_err(|e| E::custom(format!("hash {} is not base64: {e}", self.0)))
    }
}

/// Hashes and length of a metadata file, as listed in snapshot and timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Digests of the exact file bytes.
    pub hashes: Hashes,
    /// Size of the file in bytes.
    pub length: u64,
}

impl FileMeta {
    /// sha256 + sha512 and length of the exact bytes.
    pub fn of(bytes: &[u8]) -> Self {
        FileMeta {
            hashes: Hashes::of(bytes),
            length: bytes.len() as u64,
        }
    }
}

/// A target: hashes, length and optional opaque `custom` JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetMeta {
    /// Arbitrary JSON carried along; signed in canonical form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Box<RawValue>>,
    /// Digests of the target (for docker: the manifest digest as `sha256`).
    pub hashes: Hashes,
    /// Size in bytes (for docker: the manifest size).
    pub length: u64,
}

impl PartialEq for TargetMeta {
    fn eq(&self, other: &Self) -> bool {
        self.hashes == other.hashes
            && self.length == other.length
            && self.custom.as_ref().map(|c| c.get()) == other.custom.as_ref().map(|c| c.get())
    }
}

impl TargetMeta {
    /// sha256 + sha512 and length of a file's content (like `notary add`).
    pub fn of(content: &[u8]) -> Self {
        TargetMeta {
            custom: None,
            hashes: Hashes::of(content),
            length: content.len() as u64,
        }
    }

    /// A docker tag entry: manifest sha256 digest and manifest size.
    pub fn sha256_only(digest: [u8; 32], length: u64) -> Self {
        TargetMeta {
            custom: None,
            hashes: Hashes::sha256(digest),
            length,
        }
    }
}

/// A delegation entry in a targets role's `delegations.roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationRole {
    /// Key IDs (from the parent's `delegations.keys`). notary 0.7 writes
    /// `null` for a role whose last key was removed; read as empty.
    #[serde(deserialize_with = "null_as_empty")]
    pub keyids: Vec<String>,
    /// Full role name, `targets/<name>`.
    pub name: String,
    /// Target name prefixes the role may sign; `[""]` means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Signatures required (notary supports 1).
    pub threshold: u32,
}

impl DelegationRole {
    /// Whether `target` falls under one of the role's path prefixes.
    pub fn allows(&self, target: &str) -> bool {
        self.paths.iter().any(|p| target.starts_with(p.as_str()))
    }
}

/// `delegations` of a targets-type role; always present, possibly empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys of all delegated roles.
    #[serde(default)]
    pub keys: BTreeMap<String, Key>,
    /// Delegated roles, in order.
    #[serde(default)]
    pub roles: Vec<DelegationRole>,
}

impl Delegations {
    /// The entry for a delegated role.
    pub fn role(&self, name: &str) -> Option<&DelegationRole> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// Adds `keys` and `paths` to a delegated role, creating it (threshold 1,
    /// appended after the existing roles) when missing — notary's
    /// `delegation add` and docker's `signer add`. Existing key IDs and paths
    /// keep their order; new ones are appended once.
    pub fn add_to_role(&mut self, name: &RoleName, keys: &[Key], paths: &[String]) -> Result<()> {
        if !matches!(name, RoleName::Delegation(_)) {
            return Err(Error::InvalidRoleName(name.to_string()));
        }
        let index = match self.roles.iter().position(|r| r.name == name.as_str()) {
            Some(i) => i,
            None => {
                self.roles.push(DelegationRole {
                    keyids: Vec::new(),
                    name: name.as_str().to_owned(),
                    paths: Vec::new(),
                    threshold: 1,
                });
                self.roles.len() - 1
            }
        };
        let role = &mut self.roles[index];
        for key in keys {
            let id = key.id();
            if !role.keyids.contains(&id) {
                role.keyids.push(id.clone());
            }
            self.keys.insert(id, key.clone());
        }
        for path in paths {
            if !role.paths.contains(path) {
                role.paths.push(path.clone());
            }
        }
        Ok(())
    }

    /// Removes key IDs from a delegated role (the role itself stays, like
    /// `notary delegation remove --key`); keys no role uses any more are dropped.
    pub fn remove_keys_from_role(&mut self, name: &str, keyids: &[String]) {
        if let Some(role) = self.roles.iter_mut().find(|r| r.name == name) {
            role.keyids.retain(|id| !keyids.contains(id));
        }
        self.remove_unused_keys();
    }

    /// Deletes a delegated role and the keys only it used. Returns the entry.
    /// (Its file should also leave snapshot meta.)
    pub fn remove_role(&mut self, name: &str) -> Option<DelegationRole> {
        let index = self.roles.iter().position(|r| r.name == name)?;
        let removed = self.roles.remove(index);
        self.remove_unused_keys();
        Some(removed)
    }

    /// Drops keys no delegated role lists (notary's `utils.RemoveUnusedKeys`).
    pub fn remove_unused_keys(&mut self) {
        let roles = &self.roles;
        self.keys
            .retain(|id, _| roles.iter().any(|r| r.keyids.iter().any(|k| k == id)));
    }
}

/// `targets.json` and every delegation's `signed` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// Delegations made by this role.
    #[serde(default)]
    pub delegations: Delegations,
    /// Expiry.
    #[serde(with = "serde_go_time")]
    pub expires: OffsetDateTime,
    /// Target name → meta.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetMeta>,
    /// Version, ≥ 1.
    pub version: u64,
}
impl_metadata!(Targets, "Targets");

impl Targets {
    /// Empty targets at version 1.
    pub fn new(expires: OffsetDateTime) -> Self {
        Targets {
            delegations: Delegations::default(),
            expires,
            targets: BTreeMap::new(),
            version: 1,
        }
    }
}

/// `snapshot.json`'s `signed` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Expiry.
    #[serde(with = "serde_go_time")]
    pub expires: OffsetDateTime,
    /// `root`, `targets`, `targets/<x>` → meta of the exact file bytes.
    pub meta: BTreeMap<String, FileMeta>,
    /// Version, ≥ 1.
    pub version: u64,
}
impl_metadata!(Snapshot, "Snapshot");

impl Snapshot {
    /// Empty snapshot at version 1.
    pub fn new(expires: OffsetDateTime) -> Self {
        Snapshot {
            expires,
            meta: BTreeMap::new(),
            version: 1,
        }
    }
}

/// `timestamp.json`'s `signed` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Expiry.
    #[serde(with = "serde_go_time")]
    pub expires: OffsetDateTime,
    /// `snapshot` → meta of the exact snapshot file bytes.
    pub meta: BTreeMap<String, FileMeta>,
    /// Version, ≥ 1.
    pub version: u64,
}
impl_metadata!(Timestamp, "Timestamp");

impl Timestamp {
    /// Empty timestamp at version 1.
    pub fn new(expires: OffsetDateTime) -> Self {
        Timestamp {
            expires,
            meta: BTreeMap::new(),
            version: 1,
        }
    }
}

/// Reads a JSON `null` as an empty list (Go marshals a nil slice as `null`).
fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key::ecdsa(vec![n; 4])
    }

    /// Usual digests are held inline, anything else as given; JSON keeps
    /// name order either way.
    #[test]
    fn hashes_round_trip_usual_and_unusual_algorithms() {
        let h = Hashes::of(b"x");
        assert_eq!(h.len(), 2);
        assert_eq!(h.get("sha256"), Some(&Sha256::digest(b"x")[..]));
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.starts_with("{\"sha256\":") && json.contains(",\"sha512\":"));
        assert_eq!(serde_json::from_str::<Hashes>(&json).unwrap(), h);

        let odd = r#"{"md5":"AAEC","sha256":"AAEC","sha512":"AAEC","zz":"AA=="}"#;
        let h: Hashes = serde_json::from_str(odd).unwrap();
        assert_eq!(h.len(), 4);
        assert_eq!(
            h.get("sha256"),
            Some(&[0u8, 1, 2][..]),
            "a short sha256 kept as given"
        );
        assert_eq!(serde_json::to_string(&h).unwrap(), odd);
        let names: Vec<&str> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["md5", "sha256", "sha512", "zz"]);
        assert!(serde_json::from_str::<Hashes>(r#"{"sha256":"!"}"#).is_err());
        assert!(Hashes::default().is_empty());
    }

    #[test]
    fn delegation_edits_follow_notary() {
        let mut d = Delegations::default();
        let releases = RoleName::parse("targets/releases").unwrap();
        let alice = RoleName::parse("targets/alice").unwrap();
        d.add_to_role(&alice, &[key(1)], &["".into()]).unwrap();
        d.add_to_role(&releases, &[key(1)], &["".into()]).unwrap();
        d.add_to_role(&releases, &[key(2), key(1)], &["".into(), "a/".into()])
            .unwrap();
        assert_eq!(
            d.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["targets/alice", "targets/releases"]
        );
        let r = d.role("targets/releases").unwrap();
        assert_eq!(r.keyids, vec![key(1).id(), key(2).id()]);
        assert_eq!(r.paths, vec!["".to_owned(), "a/".to_owned()]);
        assert_eq!(d.keys.len(), 2);

        d.remove_keys_from_role("targets/releases", &[key(2).id()]);
        assert_eq!(d.keys.len(), 1, "key 2 no longer used");
        d.remove_role("targets/alice").unwrap();
        assert_eq!(d.keys.len(), 1, "key 1 still used by releases");
        d.remove_role("targets/releases").unwrap();
        assert!(d.keys.is_empty() && d.roles.is_empty());
        assert!(d.add_to_role(&RoleName::Targets, &[], &[]).is_err());
    }
}

//! The TUF 1.0 metadata model: the four top-level roles, delegations and
//! the signed envelope, with unknown fields preserved as read.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

use super::error::Tuf1Error;
use super::key::Key;
use super::{encode, json};

/// The specification version tufd writes (python-tuf 7 writes the same).
pub const SPEC_VERSION: &str = "1.0.31";

/// Unknown fields of an object, kept so they survive a read and a write.
pub type Unrecognized = BTreeMap<String, Value>;

/// An expiry time, written `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expires(OffsetDateTime);

const EXPIRES_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

impl Expires {
    /// `at`, truncated to whole seconds in UTC.
    pub fn at(at: OffsetDateTime) -> Self {
        let at = at.to_offset(time::UtcOffset::UTC);
        Expires(at.replace_nanosecond(0).expect("0 ns is valid"))
    }

    /// The instant.
    pub fn time(&self) -> OffsetDateTime {
        self.0
    }

    /// Whether the expiry is at or before `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.0 <= now
    }
}

impl std::fmt::Display for Expires {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.format(EXPIRES_FORMAT).map_err(|_| std::fmt::Error)?)
    }
}

impl Serialize for Expires {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let at = time::PrimitiveDateTime::parse(&s, EXPIRES_FORMAT)
            .map_err(|e| serde::de::Error::custom(format!("expires {s:?}: {e}")))?;
        Ok(Expires(at.assume_utc()))
    }
}

/// The fields every role's `signed` part has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Common {
    /// `root`, `targets`, `snapshot` or `timestamp`.
    #[serde(rename = "_type")]
    pub kind: String,
    /// The specification version the metadata follows.
    pub spec_version: String,
    /// The role's version, from 1.
    pub version: u64,
    /// When the metadata stops being valid.
    pub expires: Expires,
}

/// One role's keys and threshold in root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// The IDs of the keys that may sign the role.
    pub keyids: Vec<String>,
    /// How many distinct keys must sign.
    pub threshold: u64,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// The root role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Root {
    /// Type, version and expiry.
    #[serde(flatten)]
    pub common: Common,
    /// Whether files are published under versioned and hashed names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_snapshot: Option<bool>,
    /// Every key of the top-level roles by ID.
    pub keys: BTreeMap<String, Key>,
    /// The four top-level roles.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// A file's description in targets metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Its length in bytes.
    pub length: u64,
    /// Hex digests by algorithm (`sha256`, `sha512`).
    pub hashes: BTreeMap<String, String>,
    /// Unknown fields, among them `custom`.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// A metadata file's description in snapshot or timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaFile {
    /// The file's role version.
    pub version: u64,
    /// Its length in bytes, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Hex digests by algorithm, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// A delegated role: name, keys and threshold, and which paths it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// The role name.
    pub name: String,
    /// IDs of its keys (in the delegating role's `keys`).
    pub keyids: Vec<String>,
    /// How many distinct keys must sign it.
    pub threshold: u64,
    /// Whether the search stops at this role when its paths match.
    pub terminating: bool,
    /// Shell globs (`*` does not match `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of the SHA-256 of target paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// TAP 15 succinct hash-bin delegation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    /// Bits of the target path's SHA-256 that choose the bin (1 to 32).
    pub bit_length: u32,
    /// Bins are named `<name_prefix>-<hex>`.
    pub name_prefix: String,
    /// IDs of the keys every bin shares.
    pub keyids: Vec<String>,
    /// Threshold of every bin.
    pub threshold: u64,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

impl SuccinctRoles {
    /// How many hex digits a bin name suffix has.
    pub fn suffix_len(&self) -> usize {
        (self.bit_length as usize).div_ceil(4)
    }

    /// Number of bins.
    pub fn bin_count(&self) -> u64 {
        1u64 << self.bit_length
    }

    /// Name of bin `n`.
    pub fn bin_name(&self, n: u64) -> String {
        format!(
            "{}-{:0width$x}",
            self.name_prefix,
            n,
            width = self.suffix_len()
        )
    }

    /// The bin a target path falls into.
    pub fn bin_for(&self, target_path: &str) -> String {
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(target_path.as_bytes());
        let first = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let shift = 32 - self.bit_length;
        let n = if shift >= 32 { 0 } else { first >> shift };
        self.bin_name(u64::from(n))
    }
}

/// Delegations of a targets role: keys and either roles or succinct bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys of the delegated roles by ID.
    pub keys: BTreeMap<String, Key>,
    /// Delegated roles in priority order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    /// Hash-bin delegation (TAP 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

impl DelegatedRole {
    /// Whether the role serves `target_path`: one of its `paths` globs
    /// matches (see [`crate::names::path_matches`]), or, without `paths`,
    /// one of its `path_hash_prefixes` starts the hex SHA-256 of the path
    /// (python-tuf's `is_delegated_path`).
    pub fn serves(&self, target_path: &str) -> bool {
        match (&self.paths, &self.path_hash_prefixes) {
            (Some(paths), _) => paths
                .iter()
                .any(|p| super::names::path_matches(p, target_path)),
            (None, Some(prefixes)) => {
                use sha2::{Digest, Sha256};
                let h = hex::encode(Sha256::digest(target_path.as_bytes()));
                prefixes.iter().any(|p| h.starts_with(p.as_str()))
            }
            (None, None) => false,
        }
    }
}

impl Delegations {
    /// The roles a client's search for `target_path` visits next below the
    /// role holding these delegations, in order, each with whether it is
    /// terminating (python-tuf's `get_roles_for_target`): the matching
    /// named roles up to and including the first terminating one, or the
    /// one hash bin the path falls into (bins count as terminating, as in
    /// TAP 15). A terminating role listed here also ends every search
    /// still pending above it.
    pub fn roles_for_target(&self, target_path: &str) -> Vec<(String, bool)> {
        if let Some(roles) = &self.roles {
            let mut out = Vec::new();
            for r in roles.iter().filter(|r| r.serves(target_path)) {
                out.push((r.name.clone(), r.terminating));
                if r.terminating {
                    break;
                }
            }
            return out;
        }
        match &self.succinct_roles {
            Some(bins) => vec![(bins.bin_for(target_path), true)],
            None => Vec::new(),
        }
    }

    /// The key IDs and threshold these delegations give role `name` (a
    /// named role or a succinct hash bin), or `None` when they do not
    /// delegate to it. Shared by the daemon's writer and tufctl's client.
    pub fn role_keys(&self, name: &str) -> Option<(Vec<String>, u64)> {
        if let Some(role) = self.roles.iter().flatten().find(|r| r.name == name) {
            return Some((role.keyids.clone(), role.threshold));
        }
        let s = self.succinct_roles.as_ref()?;
        let suffix = name.strip_prefix(&format!("{}-", s.name_prefix))?;
        let n = u64::from_str_radix(suffix, 16).ok()?;
        (suffix.len() == s.suffix_len() && n < s.bin_count())
            .then(|| (s.keyids.clone(), s.threshold))
    }
}

/// A targets role (top-level or delegated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// Type, version and expiry.
    #[serde(flatten)]
    pub common: Common,
    /// Target files by path.
    pub targets: BTreeMap<String, TargetFile>,
    /// Delegations, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// The snapshot role: versions of every targets role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Type, version and expiry.
    #[serde(flatten)]
    pub common: Common,
    /// `targets.json` and `<role>.json` entries.
    pub meta: BTreeMap<String, MetaFile>,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// The timestamp role: the current snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Type, version and expiry.
    #[serde(flatten)]
    pub common: Common,
    /// The `snapshot.json` entry.
    pub meta: BTreeMap<String, MetaFile>,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// A role's `signed` content.
pub trait Role: Serialize + DeserializeOwned + Clone {
    /// The `_type` value.
    const TYPE: &'static str;
    /// The common fields.
    fn common(&self) -> &Common;
    /// The common fields, mutable.
    fn common_mut(&mut self) -> &mut Common;
}

macro_rules! role {
    ($t:ty, $name:literal) => {
        impl Role for $t {
            const TYPE: &'static str = $name;
            fn common(&self) -> &Common {
                &self.common
            }
            fn common_mut(&mut self) -> &mut Common {
                &mut self.common
            }
        }
    };
}
role!(Root, "root");
role!(Targets, "targets");
role!(Snapshot, "snapshot");
role!(Timestamp, "timestamp");

impl Targets {
    /// The keys, key IDs and threshold this role delegates to role `name`
    /// (a named role or a succinct hash bin).
    pub fn delegation_keys(
        &self,
        name: &str,
    ) -> Option<(&BTreeMap<String, Key>, Vec<String>, u64)> {
        let d = self.delegations.as_ref()?;
        let (keyids, threshold) = d.role_keys(name)?;
        Some((&d.keys, keyids, threshold))
    }
}

impl Common {
    /// Version 1 of a role of type `kind` expiring at `expires`.
    pub fn new(kind: &str, expires: Expires) -> Self {
        Common {
            kind: kind.to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version: 1,
            expires,
        }
    }
}

/// One signature: key ID and hex signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's ID.
    pub keyid: String,
    /// Hex of the signature (ASN.1 DER for ECDSA).
    pub sig: String,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

/// A metadata file: the signed content and its signatures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata<T> {
    /// Signatures over the canonical form of `signed`.
    pub signatures: Vec<Signature>,
    /// The role's content.
    pub signed: T,
    /// Unknown fields.
    #[serde(flatten)]
    pub unrecognized: Unrecognized,
}

impl<T: Role> Metadata<T> {
    /// Unsigned metadata.
    pub fn new(signed: T) -> Self {
        Metadata {
            signatures: Vec::new(),
            signed,
            unrecognized: Unrecognized::new(),
        }
    }

    /// Parses a file, checking `_type`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Tuf1Error> {
        let md: Self = serde_json::from_slice(bytes).map_err(|source| Tuf1Error::Parse {
            role: T::TYPE.to_owned(),
            source,
        })?;
        if md.signed.common().kind != T::TYPE {
            return Err(Tuf1Error::WrongType {
                expected: T::TYPE,
                found: md.signed.common().kind.clone(),
            });
        }
        Ok(md)
    }

    /// The bytes signatures cover: canonical JSON of `signed`.
    pub fn canonical_signed(&self) -> Result<Vec<u8>, Tuf1Error> {
        canonical_of(&self.signed)
    }

    /// The file bytes, as python-tuf's `Metadata.to_bytes()` writes them.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Tuf1Error> {
        Ok(encode::compact(self)?)
    }

    /// The bytes of python-tuf's `JSONSerializer(compact=False)`.
    pub fn to_pretty_bytes(&self) -> Result<Vec<u8>, Tuf1Error> {
        Ok(encode::pretty(self)?)
    }
}

/// The bytes the signatures of a metadata file cover, computed from the
/// file's own `signed` object (not a re-serialization of the model), as a
/// verifying client must.
pub fn canonical_signed_of_bytes(bytes: &[u8]) -> Result<Vec<u8>, Tuf1Error> {
    let value: Value = serde_json::from_slice(bytes).map_err(|source| Tuf1Error::Parse {
        role: "metadata".to_owned(),
        source,
    })?;
    let signed = value
        .get("signed")
        .ok_or_else(|| Tuf1Error::Invalid("metadata has no \"signed\" object".into()))?;
    Ok(json::canonical(signed)?)
}

/// Canonical JSON of any serializable value.
pub fn canonical_of<T: Serialize>(value: &T) -> Result<Vec<u8>, Tuf1Error> {
    Ok(encode::canonical(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_round_trip_and_truncation() {
        let at = time::macros::datetime!(2030-01-02 03:04:05.678 UTC);
        let e = Expires::at(at);
        assert_eq!(e.to_string(), "2030-01-02T03:04:05Z");
        let back: Expires = serde_json::from_str("\"2030-01-02T03:04:05Z\"").unwrap();
        assert_eq!(back, e);
        assert!(serde_json::from_str::<Expires>("\"2030-01-02T03:04:05.5Z\"").is_err());
    }

    #[test]
    fn bins_match_tap15() {
        let s = SuccinctRoles {
            bit_length: 10,
            name_prefix: "bins".into(),
            keyids: vec![],
            threshold: 1,
            unrecognized: Unrecognized::new(),
        };
        assert_eq!(s.bin_count(), 1024);
        assert_eq!(s.bin_name(0), "bins-000");
        assert_eq!(s.bin_name(1023), "bins-3ff");
        // sha256("") = e3b0c442…: first 10 bits of 0xe3b0 = 0b1110001110 = 0x38e
        assert_eq!(s.bin_for(""), "bins-38e");
    }

    #[test]
    fn wrong_type_refused() {
        let md = Metadata::new(Timestamp {
            common: Common::new("timestamp", Expires::at(OffsetDateTime::UNIX_EPOCH)),
            meta: BTreeMap::new(),
            unrecognized: Unrecognized::new(),
        });
        let bytes = md.to_bytes().unwrap();
        assert!(matches!(
            Metadata::<Snapshot>::from_bytes(&bytes),
            Err(Tuf1Error::WrongType { .. })
        ));
        assert_eq!(Metadata::<Timestamp>::from_bytes(&bytes).unwrap(), md);
    }
}

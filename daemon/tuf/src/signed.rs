//! The file envelope `{"signed":…,"signatures":[…]}` (format notes §1.1).
//!
//! A [`Signed`] keeps three views of one role file: the typed contents, the
//! canonical bytes signatures cover, and the exact file bytes that snapshot
//! and timestamp hashes cover. It is immutable, so the three always agree.
//! When the file's `signed` member is the canonical form itself (no HTML
//! escapes: what notary and tufd write for ordinary tag names), the
//! canonical bytes are that part of the file bytes, not a second copy (a
//! targets role of 100 000 tags is 8.6 MB).

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::canonical::{canonicalize, go_json_string, html_escape_into};
use crate::error::{Error, Result};
use crate::metadata::{FileMeta, Metadata};

/// One signature: key ID, method (`ecdsa`, `eddsa`, `rsapss`, …) and the raw
/// signature bytes (base64 in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// ID of the signing key as listed in metadata (cert id for x509 keys).
    pub keyid: String,
    /// Signature method; compared case-insensitively, as notary lower-cases it.
    pub method: String,
    /// Raw signature: r‖s (64 bytes) for P-256 ECDSA.
    #[serde(serialize_with = "ser_b64", deserialize_with = "de_b64")]
    pub sig: Vec<u8>,
}

fn ser_b64<S: Serializer>(v: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
}

fn de_b64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|e| serde::de::Error::custom(format!("signature is not base64: {e}")))
}

/// A role file: typed contents, signatures, canonical and exact bytes.
/// Cloning shares the contents (a targets role of 100 000 tags is not
/// copied: a read, the repository it verifies and the next read's cache
/// hold one parse).
#[derive(Debug, Clone)]
pub struct Signed<T> {
    signed: std::sync::Arc<T>,
    signatures: Vec<Signature>,
    canonical: Canonical,
    bytes: Bytes,
}

/// Where a [`Signed`]'s canonical bytes are.
#[derive(Debug, Clone)]
enum Canonical {
    /// This range of the file bytes (the `signed` member, unescaped).
    Within(std::ops::Range<usize>),
    /// A copy of their own (the file escapes characters, or is not in
    /// canonical form).
    Owned(Vec<u8>),
}

/// `canonical` as held by a file of `bytes`: the range of `bytes` equal
/// to it when there is one (`signed` is where the file's `signed` member
/// starts), else the bytes themselves.
fn locate(canonical: Vec<u8>, bytes: &[u8], signed: usize) -> Canonical {
    let end = signed + canonical.len();
    if bytes.get(signed..end) == Some(canonical.as_slice()) {
        Canonical::Within(signed..end)
    } else {
        Canonical::Owned(canonical)
    }
}

#[derive(Deserialize)]
struct EnvelopeWire<'a> {
    #[serde(borrow)]
    signed: &'a RawValue,
    #[serde(default)]
    signatures: Option<Vec<Signature>>,
}

impl<T: Metadata> Signed<T> {
    /// Parses a role file, keeping its exact bytes.
    ///
    /// The signing input is derived as notary's verifier derives it: the
    /// `signed` object is parsed generically and re-encoded canonically.
    /// Fails if `_type` is not `T::TYPE`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_role_bytes(T::TYPE, bytes)
    }

    /// [`Signed::from_bytes`], naming `role` (e.g. `targets/releases`) in errors.
    ///
    /// Files notary or tufd wrote hold `signed` in canonical form already
    /// (HTML-escaped): they are parsed once into `T`, which re-encodes to
    /// exactly those bytes, and the generic parse is skipped. Any other file
    /// (unknown fields, other key order, whitespace) takes the generic road.
    pub fn from_role_bytes(role: &str, bytes: &[u8]) -> Result<Self> {
        Self::from_role_file(role, Bytes::copy_from_slice(bytes))
    }

    /// [`Signed::from_role_bytes`] keeping `bytes` itself (shared, not
    /// copied) as the exact file bytes.
    pub fn from_role_file(role: &str, file: Bytes) -> Result<Self> {
        let bytes = &file[..];
        let wire: EnvelopeWire<'_> =
            serde_json::from_slice(bytes).map_err(|e| Error::parse(role, e))?;
        let raw = wire.signed.get();
        if let Ok(signed) = serde_json::from_str::<T>(raw)
            && let Some(canonical) =
                crate::canonical_fast::encode_sized(&signed, Some(T::TYPE), raw.len())
            && crate::canonical_fast::is_escaped_form_of(&canonical, raw.as_bytes())
        {
            let start = raw.as_ptr() as usize - bytes.as_ptr() as usize;
            return Ok(Signed {
                signed: signed.into(),
                signatures: wire.signatures.unwrap_or_default(),
                canonical: locate(canonical, bytes, start),
                bytes: file.clone(),
            });
        }
        let value: serde_json::Value =
            serde_json::from_str(wire.signed.get()).map_err(|e| Error::parse(role, e))?;
        let found = value.get("_type").and_then(|t| t.as_str()).unwrap_or("");
        if found != T::TYPE {
            return Err(Error::WrongType {
                role: role.to_owned(),
                expected: T::TYPE,
                found: found.to_owned(),
            });
        }
        let canonical = canonicalize(&value).map_err(|e| Error::canonical(role, e))?;
        let signed: T = serde_json::from_value(value).map_err(|e| Error::parse(role, e))?;
        let start = raw.as_ptr() as usize - bytes.as_ptr() as usize;
        Ok(Signed {
            signed: signed.into(),
            signatures: wire.signatures.unwrap_or_default(),
            canonical: locate(canonical, bytes, start),
            bytes: file.clone(),
        })
    }

    /// Builds the file for `signed` with the given signatures, byte for byte
    /// as notary would write it. The signatures must cover
    /// [`canonical_bytes_of`]`(&signed)`; use [`crate::sign_role`] to make them.
    pub fn from_parts(signed: T, signatures: Vec<Signature>) -> Result<Self> {
        let canonical = canonical_bytes_of(&signed)?;
        Ok(Self::assemble(signed, canonical, signatures))
    }

    pub(crate) fn assemble(signed: T, canonical: Vec<u8>, signatures: Vec<Signature>) -> Self {
        let bytes = envelope(&canonical, &signatures);
        let canonical = locate(canonical, &bytes, ENVELOPE_HEAD.len());
        Signed {
            signed: signed.into(),
            signatures,
            canonical,
            bytes: Bytes::from(bytes),
        }
    }

    /// The `signed.version` of a role file of this type, read without
    /// parsing the rest (a targets file of 100 000 tags is only scanned);
    /// `None` when the file is not such a role file.
    pub fn version_of(bytes: &[u8]) -> Option<u64> {
        #[derive(Deserialize)]
        struct Head<'a> {
            #[serde(rename = "_type", borrow)]
            kind: std::borrow::Cow<'a, str>,
            version: u64,
        }
        #[derive(Deserialize)]
        struct File<'a> {
            #[serde(borrow)]
            signed: Head<'a>,
        }
        let file: File<'_> = serde_json::from_slice(bytes).ok()?;
        (file.signed.kind == T::TYPE).then_some(file.signed.version)
    }

    /// The typed contents.
    pub fn signed(&self) -> &T {
        &self.signed
    }

    /// The signatures, in file order.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// The bytes signatures cover (canonical JSON of `signed`).
    pub fn canonical_bytes(&self) -> &[u8] {
        match &self.canonical {
            Canonical::Within(range) => &self.bytes[range.clone()],
            Canonical::Owned(bytes) => bytes,
        }
    }

    /// The exact file bytes (as parsed, or as built).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The exact file bytes, shared (not copied).
    pub fn file(&self) -> Bytes {
        self.bytes.clone()
    }

    /// Hashes and length of the exact file bytes, for snapshot/timestamp.
    pub fn file_meta(&self) -> FileMeta {
        FileMeta::of(&self.bytes)
    }

    /// The envelope notary would write for these contents and signatures.
    /// Equal to [`Signed::bytes`] for every file notary or docker wrote.
    pub fn to_envelope(&self) -> Vec<u8> {
        envelope(self.canonical_bytes(), &self.signatures)
    }

    /// The typed contents, dropping signatures and bytes (copied only
    /// when a clone of this file still shares them).
    pub fn into_signed(self) -> T {
        std::sync::Arc::unwrap_or_clone(self.signed)
    }

    /// The typed contents and the exact file bytes, dropping the rest:
    /// neither is copied (a role of 100 000 tags is large) unless a clone
    /// of this file still shares the contents.
    pub fn into_parts(self) -> (T, Bytes) {
        (std::sync::Arc::unwrap_or_clone(self.signed), self.bytes)
    }
}

/// Canonical bytes of a role's contents (with `_type`): the signing input.
pub fn canonical_bytes_of<T: Metadata>(signed: &T) -> Result<Vec<u8>> {
    if let Some(bytes) = crate::canonical_fast::encode(signed, Some(T::TYPE)) {
        return Ok(bytes);
    }
    let value = signed.to_json_value()?;
    canonicalize(&value).map_err(|e| Error::canonical(T::TYPE, e))
}

/// What every envelope starts with, up to the `signed` member's value.
const ENVELOPE_HEAD: &[u8] = b"{\"signed\":";

/// `{"signed":<html-escaped canonical>,"signatures":[…]}` as Go's
/// `json.Marshal(data.Signed{…})` writes it: struct order, no whitespace.
pub fn envelope(canonical: &[u8], signatures: &[Signature]) -> Vec<u8> {
    let mut out = Vec::with_capacity(canonical.len() + 64 + signatures.len() * 200);
    out.extend_from_slice(ENVELOPE_HEAD);
    html_escape_into(canonical, &mut out);
    out.extend_from_slice(b",\"signatures\":[");
    for (i, sig) in signatures.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"keyid\":");
        out.extend_from_slice(go_json_string(&sig.keyid).as_bytes());
        out.extend_from_slice(b",\"method\":");
        out.extend_from_slice(go_json_string(&sig.method).as_bytes());
        out.extend_from_slice(b",\"sig\":\"");
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(&sig.sig)
                .as_bytes(),
        );
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
    out
}

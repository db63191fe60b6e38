//! TUF key IDs as Notary v1 computes them.
//!
//! A key ID is the hex SHA-256 of the canonical key object
//! `{"keytype":T,"keyval":{"private":null,"public":base64(P)}}`
//! (`tuf/data/keys.go: (*TUFKey).ID`). For `ecdsa-x509` keys `P` is the PEM
//! certificate, which makes it the *cert id*; [`crate::Key::canonical_id`]
//! gives the *canonical id* over the certificate's SPKI.

use base64::Engine;
use sha2::{Digest, Sha256};

/// Key ID of a plain `ecdsa` key: hex SHA-256 of the canonical key object
/// `{"keytype":"ecdsa","keyval":{"private":null,"public":<base64 DER SPKI>}}`.
///
/// This is also the "canonical key ID" notary and docker use for key file
/// names. Base64 output never needs JSON escaping, so the canonical form is
/// built directly.
pub fn ecdsa_key_id(spki_der: &[u8]) -> String {
    key_id("ecdsa", spki_der)
}

/// Key ID of any key object with the given `keytype` and raw `public` bytes.
///
/// Key types are fixed ASCII names (`ecdsa`, `ecdsa-x509`, `ed25519`, `rsa`,
/// `rsa-x509`); `"` and `\` are escaped anyway so the result stays canonical.
pub fn key_id(keytype: &str, public: &[u8]) -> String {
    let public = base64::engine::general_purpose::STANDARD.encode(public);
    let keytype = keytype.replace('\\', "\\\\").replace('"', "\\\"");
    let canonical =
        format!(r#"{{"keytype":"{keytype}","keyval":{{"private":null,"public":"{public}"}}}}"#);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

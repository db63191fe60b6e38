//! TUF key IDs as Notary v1 computes them.

use base64::Engine;
use sha2::{Digest, Sha256};

/// Key ID of a plain `ecdsa` key: hex SHA-256 of the canonical key object
/// `{"keytype":"ecdsa","keyval":{"private":null,"public":<base64 DER SPKI>}}`.
///
/// This is also the "canonical key ID" notary and docker use for key file
/// names. Base64 output never needs JSON escaping, so the canonical form is
/// built directly.
pub fn ecdsa_key_id(spki_der: &[u8]) -> String {
    let public = base64::engine::general_purpose::STANDARD.encode(spki_der);
    let canonical =
        format!(r#"{{"keytype":"ecdsa","keyval":{{"private":null,"public":"{public}"}}}}"#);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

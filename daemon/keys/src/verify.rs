//! Verifying each token signature before it is used, with OpenSSL's P-256
//! (about a third of p256's time here; ring's API would need the message,
//! and the key layer is given only its digest). Both stores (PKCS#11 and
//! the native YubiKey store) use it.

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::Public;
use p256::PublicKey;

/// A P-256 public key ready to verify prehashed ECDSA signatures.
#[derive(Clone)]
pub(crate) struct Verifier(EcKey<Public>);

impl Verifier {
    /// The verifier for `key` (a valid P-256 point, so this cannot fail
    /// short of OpenSSL being unable to allocate).
    pub(crate) fn new(key: &PublicKey) -> Self {
        let make = || -> Result<EcKey<Public>, openssl::error::ErrorStack> {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            let mut ctx = BigNumContext::new()?;
            let point = EcPoint::from_bytes(&group, &key.to_sec1_bytes(), &mut ctx)?;
            EcKey::from_public_key(&group, &point)
        };
        Self(make().expect("OpenSSL accepts a valid P-256 point"))
    }

    /// The verifier for a key given as a p256 verifying key.
    pub(crate) fn from_verifying(key: &p256::ecdsa::VerifyingKey) -> Self {
        Self::new(&PublicKey::from(key))
    }

    /// Whether `raw` (`r || s`, 32 bytes each, as PKCS#11 returns it) is a
    /// valid signature of `digest`. Scalars out of range are invalid.
    pub(crate) fn verify(&self, digest: &[u8; 32], raw: &[u8]) -> bool {
        if raw.len() != 64 {
            return false;
        }
        let check = || -> Result<bool, openssl::error::ErrorStack> {
            let r = BigNum::from_slice(&raw[..32])?;
            let s = BigNum::from_slice(&raw[32..])?;
            EcdsaSig::from_private_components(r, s)?.verify(digest, &self.0)
        };
        check().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{Signature, SigningKey};

    #[test]
    fn accepts_valid_and_rejects_altered_signatures() {
        let sk = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let verifier = Verifier::new(&PublicKey::from(sk.verifying_key()));
        let digest = [3u8; 32];
        let sig: Signature = sk.sign_prehash(&digest).unwrap();
        let raw = sig.to_bytes();
        assert!(verifier.verify(&digest, &raw));
        // Another digest, a flipped bit, a truncated or zero signature.
        assert!(!verifier.verify(&[4u8; 32], &raw));
        let mut flipped = raw.to_vec();
        flipped[40] ^= 1;
        assert!(!verifier.verify(&digest, &flipped));
        assert!(!verifier.verify(&digest, &raw[..63]));
        assert!(!verifier.verify(&digest, &[0u8; 64]));
        // Another key's signature.
        let other = SigningKey::from_slice(&[8u8; 32]).unwrap();
        let sig2: Signature = other.sign_prehash(&digest).unwrap();
        assert!(!verifier.verify(&digest, &sig2.to_bytes()));
    }
}

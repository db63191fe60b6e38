//! Verifying each token signature before it is used, with OpenSSL's P-256
//! (about a third of p256's time here; ring's API would need the message,
//! and the key layer is given only its digest), and for keys that sign
//! often with a precomputed table of the key (`table`: about half of
//! OpenSSL's own time).
//! Both stores (PKCS#11 and the native YubiKey store) use it.

mod table;

use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::nid::Nid;
use openssl::pkey::Public;
use p256::PublicKey;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use table::Table;

/// A key becomes hot (its table is built) at this many verifications.
const HOT: u32 = 1024;

/// A P-256 public key ready to verify prehashed ECDSA signatures. Clones
/// share the key, its use count and its table.
#[derive(Clone)]
pub(crate) struct Verifier(Arc<Inner>);

struct Inner {
    key: EcKey<Public>,
    /// The key as SEC 1 bytes, for building its table.
    sec1: Box<[u8]>,
    /// Verifications made without a table.
    uses: AtomicU32,
    /// The key's table, built in the background once the key is hot.
    table: OnceLock<Table>,
}

impl Verifier {
    /// The verifier for `key` (a valid P-256 point, so this cannot fail
    /// short of OpenSSL being unable to allocate).
    pub(crate) fn new(key: &PublicKey) -> Self {
        let sec1 = key.to_sec1_bytes();
        let make = || -> Result<EcKey<Public>, openssl::error::ErrorStack> {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            let mut ctx = BigNumContext::new()?;
            let point = EcPoint::from_bytes(&group, &sec1, &mut ctx)?;
            EcKey::from_public_key(&group, &point)
        };
        Self(Arc::new(Inner {
            key: make().expect("OpenSSL accepts a valid P-256 point"),
            sec1,
            uses: AtomicU32::new(0),
            table: OnceLock::new(),
        }))
    }

    /// The verifier for a key given as a p256 verifying key.
    pub(crate) fn from_verifying(key: &p256::ecdsa::VerifyingKey) -> Self {
        Self::new(&PublicKey::from(key))
    }

    /// Whether `raw` (`r || s`, 32 bytes each, as PKCS#11 returns it) is a
    /// valid signature of `digest`. Scalars out of range are invalid.
    ///
    /// A key's [`HOT`]th verification starts building its table on another
    /// thread; later verifications use the table once it is there.
    pub(crate) fn verify(&self, digest: &[u8; 32], raw: &[u8]) -> bool {
        let Ok(raw) = <&[u8; 64]>::try_from(raw) else {
            return false;
        };
        if let Some(table) = self.0.table.get() {
            return table.verify(digest, raw);
        }
        if self.0.uses.fetch_add(1, Ordering::Relaxed) == HOT - 1 {
            self.build_table();
        }
        self.verify_plain(digest, raw)
    }

    /// OpenSSL's `ECDSA_do_verify`.
    fn verify_plain(&self, digest: &[u8; 32], raw: &[u8; 64]) -> bool {
        let check = || -> Result<bool, openssl::error::ErrorStack> {
            let r = BigNum::from_slice(&raw[..32])?;
            let s = BigNum::from_slice(&raw[32..])?;
            EcdsaSig::from_private_components(r, s)?.verify(digest, &self.0.key)
        };
        check().unwrap_or(false)
    }

    /// Builds the key's table on a thread of its own (tens of
    /// milliseconds, not added to any signature's time). Without a thread
    /// or a budget, the key keeps being verified without one.
    fn build_table(&self) {
        let inner = Arc::clone(&self.0);
        let spawned = std::thread::Builder::new()
            .name("tufd-verify-table".into())
            .spawn(move || {
                if let Some(table) = Table::build(&inner.sec1) {
                    let _ = inner.table.set(table);
                }
            });
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "no thread for a verification table");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
    use std::time::{Duration, Instant};

    /// The P-256 group order n, big-endian.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    /// The fixed cases every way of verifying must get right.
    fn fixed_cases(verify: impl Fn(&[u8; 32], &[u8]) -> bool) {
        let sk = key(7);
        let digest = [3u8; 32];
        let sig: Signature = sk.sign_prehash(&digest).unwrap();
        let raw = sig.to_bytes();
        assert!(verify(&digest, &raw));
        // Another digest, a flipped bit, a truncated or zero signature.
        assert!(!verify(&[4u8; 32], &raw));
        let mut flipped = raw.to_vec();
        flipped[40] ^= 1;
        assert!(!verify(&digest, &flipped));
        assert!(!verify(&digest, &raw[..63]));
        assert!(!verify(&digest, &[0u8; 64]));
        // Scalars out of range: r or s zero, n, or all ones.
        for bad in [[0u8; 32], N, [0xff; 32]] {
            let mut r_bad = raw.to_vec();
            r_bad[..32].copy_from_slice(&bad);
            assert!(!verify(&digest, &r_bad));
            let mut s_bad = raw.to_vec();
            s_bad[32..].copy_from_slice(&bad);
            assert!(!verify(&digest, &s_bad));
        }
        // Another key's signature.
        let sig2: Signature = key(8).sign_prehash(&digest).unwrap();
        assert!(!verify(&digest, &sig2.to_bytes()));
    }

    fn sign(sk: &SigningKey, digest: &[u8; 32]) -> [u8; 64] {
        let sig: Signature = sk.sign_prehash(digest).unwrap();
        sig.to_bytes().into()
    }

    fn verifier(seed: u8) -> Verifier {
        Verifier::new(&PublicKey::from(key(seed).verifying_key()))
    }

    #[test]
    fn accepts_valid_and_rejects_altered_signatures() {
        let v = verifier(7);
        fixed_cases(|d, raw| v.verify(d, raw));
        let table = Table::build(&v.0.sec1).expect("a table");
        fixed_cases(|d, raw| <&[u8; 64]>::try_from(raw).is_ok_and(|raw| table.verify(d, raw)));
    }

    /// The table's verification against p256's and OpenSSL's own, on
    /// random digests, their signatures (also with s negated, which ECDSA
    /// accepts) and random bit flips in signature and digest.
    #[test]
    fn table_agrees_with_p256_and_openssl() {
        let sk = key(9);
        let vk = VerifyingKey::from(&sk);
        let v = verifier(9);
        let table = Table::build(&v.0.sec1).expect("a table");
        let n = BigNum::from_slice(&N).unwrap();
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..300 {
            let digest: [u8; 32] = rand::random();
            let mut raw = sign(&sk, &digest);
            match rand::random::<u8>() % 4 {
                0 => {}
                1 => {
                    let s = BigNum::from_slice(&raw[32..]).unwrap();
                    let neg = (&n - &s).to_vec_padded(32).unwrap();
                    raw[32..].copy_from_slice(&neg);
                }
                2 => raw[usize::from(rand::random::<u8>() % 64)] ^= 1 << (rand::random::<u8>() % 8),
                _ => {
                    let mut other = digest;
                    other[usize::from(rand::random::<u8>() % 32)] ^=
                        1 << (rand::random::<u8>() % 8);
                    raw = sign(&sk, &other);
                }
            }
            let expected = Signature::from_slice(&raw)
                .is_ok_and(|sig| vk.verify_prehash(&digest, &sig).is_ok());
            assert_eq!(v.verify_plain(&digest, &raw), expected);
            assert_eq!(
                table.verify(&digest, &raw),
                expected,
                "{}",
                hex::encode(raw)
            );
            if expected {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        assert!(accepted > 100 && rejected > 100, "{accepted} / {rejected}");
    }

    /// `(r, 1)` is a valid signature of the digest `k - r·d` (r = x(k·G));
    /// `(r, 1 + n)` is the same signature with s out of range and must be
    /// refused (SEC 1 4.1.4 step 1), though the arithmetic would accept it.
    #[test]
    fn refuses_scalars_reduced_from_out_of_range() {
        let d = BigNum::from_slice(&[7u8; 32]).unwrap();
        let v = verifier(7);
        let table = Table::build(&v.0.sec1).expect("a table");
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let n = BigNum::from_slice(&N).unwrap();
        let k = BigNum::from_slice(&[0x42u8; 32]).unwrap();
        let mut kg = EcPoint::new(&group).unwrap();
        kg.mul_generator2(&group, &k, &mut ctx).unwrap();
        let (mut x, mut y, mut r) = (
            BigNum::new().unwrap(),
            BigNum::new().unwrap(),
            BigNum::new().unwrap(),
        );
        kg.affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        r.nnmod(&x, &n, &mut ctx).unwrap();
        let mut rd = BigNum::new().unwrap();
        rd.mod_mul(&r, &d, &n, &mut ctx).unwrap();
        let mut e = BigNum::new().unwrap();
        e.mod_sub(&k, &rd, &n, &mut ctx).unwrap();
        let digest: [u8; 32] = e.to_vec_padded(32).unwrap().try_into().unwrap();
        let one_plus_n = &n + &BigNum::from_u32(1).unwrap();
        let mut valid = [0u8; 64];
        valid[..32].copy_from_slice(&r.to_vec_padded(32).unwrap());
        valid[63] = 1;
        let mut reduced = valid;
        reduced[32..].copy_from_slice(&one_plus_n.to_vec_padded(32).unwrap());
        assert!(v.verify_plain(&digest, &valid));
        assert!(table.verify(&digest, &valid));
        assert!(!v.verify_plain(&digest, &reduced));
        assert!(!table.verify(&digest, &reduced));
    }

    /// A key that signs often gets its table (built in the background) and
    /// still rejects what it must.
    #[test]
    fn hot_key_gets_a_table() {
        let v = verifier(7);
        let digest = [5u8; 32];
        let raw = sign(&key(7), &digest);
        for _ in 0..HOT {
            assert!(v.verify(&digest, &raw));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while v.0.table.get().is_none() {
            assert!(
                Instant::now() < deadline,
                "no table after {HOT} verifications"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Through the table now, by this verifier and its clones.
        let clone = v.clone();
        fixed_cases(|d, raw| clone.verify(d, raw));
    }
}

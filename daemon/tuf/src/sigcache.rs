//! A bounded, process-wide cache of signatures that verified.
//!
//! Every read of a repository verifies every role's signatures, and a
//! change reads twice (before signing and after publishing): the same
//! root, targets and delegation signatures are checked again and again
//! although their files did not change. A signature check is a pure
//! function of (key, method, signature, signed bytes), so a check that
//! succeeded once succeeds again; this cache remembers successes only,
//! keyed by the SHA-256 of all four (the signed bytes by their own
//! SHA-256), and skips the public-key math on a hit.
//!
//! What a hit does *not* skip: everything around the signature check —
//! which keys a role lists, key-ID consistency, distinct holders, the
//! threshold, versions, expiry, hashes and lengths against the parent's
//! meta, rollback — runs on every verification as before (see
//! [`crate::verify::verify_threshold`]). A failed check is never cached,
//! so a bad signature is re-checked (and refused) every time.
//!
//! Bounded: at most [`CAPACITY`] entries, the oldest evicted first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::key::Key;
use crate::signed::Signature;

/// Most signatures remembered (about 100 bytes each with the holder).
pub const CAPACITY: usize = 4096;

/// The cache key of one check: SHA-256 over the key type, the key's
/// public bytes, the method, the signature and the signed bytes' SHA-256
/// (each length-prefixed, so no two inputs share an encoding).
pub type Entry = [u8; 32];

#[derive(Default)]
struct Cache {
    /// Entry → the key's holder identity (its SPKI, see
    /// [`crate::verify::verify_threshold`]), kept so a hit needs no
    /// certificate parsing either.
    verified: HashMap<Entry, Vec<u8>>,
    order: VecDeque<Entry>,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// The entry for checking `sig` by `key` over bytes whose SHA-256 is
/// `message_sha256`.
pub fn entry(key: &Key, sig: &Signature, message_sha256: &[u8; 32]) -> Entry {
    let mut h = Sha256::new();
    for part in [
        key.keytype().as_str().as_bytes(),
        key.public(),
        sig.method.to_ascii_lowercase().as_bytes(),
        sig.sig.as_slice(),
        message_sha256.as_slice(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// The holder of a signature that verified before, if `entry` did.
pub fn lookup(entry: &Entry) -> Option<Vec<u8>> {
    let cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    cache.as_ref()?.verified.get(entry).cloned()
}

/// Remembers that `entry` verified, by a key whose holder is `holder`.
pub fn remember(entry: Entry, holder: Vec<u8>) {
    let mut guard = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let cache = guard.get_or_insert_with(Cache::default);
    if cache.verified.insert(entry, holder).is_some() {
        return;
    }
    cache.order.push_back(entry);
    while cache.order.len() > CAPACITY {
        if let Some(old) = cache.order.pop_front() {
            cache.verified.remove(&old);
        }
    }
}

/// How many checks are remembered (for tests).
pub fn len() -> usize {
    CACHE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map_or(0, |c| c.verified.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{TargetMeta, Targets};
    use crate::sign::{DigestSigner, RoleSigner, SignError, sign_role};
    use crate::signed::Signed;
    use crate::verify::verify_threshold;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::pkcs8::EncodePublicKey;
    use std::collections::BTreeMap;

    struct Soft(SigningKey);

    impl DigestSigner for Soft {
        fn spki_der(&self) -> Vec<u8> {
            self.0
                .verifying_key()
                .to_public_key_der()
                .unwrap()
                .as_bytes()
                .to_vec()
        }
        fn sign_sha256(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
            let sig: p256::ecdsa::Signature =
                self.0.sign_prehash(digest).map_err(SignError::new)?;
            Ok(sig.to_bytes().into())
        }
    }

    /// A key unique to the calling test (the cache is process-wide).
    fn soft(seed: u8) -> (Soft, Key) {
        let signer = Soft(SigningKey::from_slice(&[seed; 32]).unwrap());
        let key = Key::ecdsa(signer.spki_der());
        (signer, key)
    }

    fn targets(tag: &str, signer: &Soft, key: &Key) -> Signed<Targets> {
        let mut t = Targets::new(time::OffsetDateTime::now_utc() + time::Duration::days(1));
        t.targets
            .insert(tag.into(), TargetMeta::sha256_only([7; 32], 9));
        sign_role("targets", t, &[RoleSigner::new(key, signer)]).unwrap()
    }

    fn keys(key: &Key) -> BTreeMap<String, Key> {
        BTreeMap::from([(key.id(), key.clone())])
    }

    #[test]
    fn a_remembered_signature_skips_nothing_but_the_math() {
        let (signer, key) = soft(41);
        let file = targets("v1", &signer, &key);
        // Made and checked by sign_role: remembered.
        let entry = entry(&key, &file.signatures()[0], &{
            use sha2::Digest;
            Sha256::digest(file.canonical_bytes()).into()
        });
        assert!(lookup(&entry).is_some());
        assert_eq!(
            verify_threshold("targets", &file, &keys(&key), 1)
                .unwrap()
                .len(),
            1
        );
        // The threshold is still counted on a hit.
        assert!(verify_threshold("targets", &file, &keys(&key), 2).is_err());
        // Another key list: the remembered signature does not count.
        let (_, other) = soft(42);
        assert!(verify_threshold("targets", &file, &keys(&other), 1).is_err());
    }

    #[test]
    fn a_signature_moved_to_other_bytes_or_altered_never_verifies() {
        let (signer, key) = soft(43);
        let good = targets("v1", &signer, &key);
        verify_threshold("targets", &good, &keys(&key), 1).unwrap();
        // The same (remembered) signature over different contents.
        let other = targets("v2", &signer, &key);
        let moved = Signed::from_parts(other.signed().clone(), good.signatures().to_vec()).unwrap();
        assert!(verify_threshold("targets", &moved, &keys(&key), 1).is_err());
        // An altered signature over the remembered contents.
        let mut sigs = good.signatures().to_vec();
        sigs[0].sig[10] ^= 1;
        let altered = Signed::from_parts(good.signed().clone(), sigs).unwrap();
        assert!(verify_threshold("targets", &altered, &keys(&key), 1).is_err());
        // Failures are not remembered: still refused the second time.
        assert!(verify_threshold("targets", &altered, &keys(&key), 1).is_err());
    }

    #[test]
    fn bounded() {
        for i in 0..(CAPACITY + 10) as u64 {
            let mut e = [0u8; 32];
            e[..8].copy_from_slice(&i.to_be_bytes());
            e[8] = 0xee;
            remember(e, vec![1]);
        }
        assert!(len() <= CAPACITY);
    }
}

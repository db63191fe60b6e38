//! Repositories in memory for fast intent tests: keys in a [`MemoryStore`]
//! (a software [`KeyStore`]), metadata signed and verified with the real
//! TUF layer, a client-held snapshot so the whole repository verifies
//! without a server.

use crate::trust::TagSpec;
use crate::trust::draft::{Draft, HeldKeys};
use crate::trust::fetch::Fetched;
use crate::trust::txn::Outcome;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;
use tufd_keys::{KeyError, KeyLabel, KeyOrigin, KeyRecord, KeyStore, TokenStatus};
use tufd_tuf::{Key, RoleName, Root};

/// Software keys by TUF key ID (tests only).
pub struct MemoryStore {
    keys: BTreeMap<String, (KeyRecord, SigningKey)>,
}

impl KeyStore for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }
    fn status(&self) -> TokenStatus {
        TokenStatus::Unavailable {
            reason: "a test store".into(),
        }
    }
    fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        Ok(self.keys.values().map(|(r, _)| r.clone()).collect())
    }
    fn generate(&self, _label: &KeyLabel) -> Result<KeyRecord, KeyError> {
        Err(KeyError::InvalidLabel(
            "the test store makes no keys".into(),
        ))
    }
    fn import(&self, _label: &KeyLabel, _key: &p256::SecretKey) -> Result<KeyRecord, KeyError> {
        Err(KeyError::InvalidLabel(
            "the test store takes no keys".into(),
        ))
    }
    fn delete(&self, id: &str) -> Result<KeyRecord, KeyError> {
        Err(KeyError::InvalidLabel(format!("the test store keeps {id}")))
    }
    fn sign_digest(&self, id: &str, digest: &[u8; 32]) -> Result<[u8; 64], KeyError> {
        let (_, key) = self.keys.get(id).ok_or_else(|| KeyError::KeyNotFound {
            token: "memory".into(),
            what: id.into(),
        })?;
        let sig: p256::ecdsa::Signature =
            key.sign_prehash(digest)
                .map_err(|_| KeyError::BadSignature {
                    token: "memory".into(),
                    key_id: id.into(),
                })?;
        Ok(sig.to_bytes().into())
    }
}

/// A repository's keys (root, targets, snapshot, timestamp) and signers'
/// keys by name, all in one [`MemoryStore`].
pub struct Kit {
    store: Arc<MemoryStore>,
    by_name: BTreeMap<String, KeyRecord>,
}

const NAMES: [&str; 7] = [
    "root",
    "targets",
    "snapshot",
    "timestamp",
    "alice",
    "bob",
    "carol",
];

impl Kit {
    /// The repository every kit makes.
    pub const GUN: &'static str = "example.com/team/app";

    pub fn new() -> Self {
        let mut keys = BTreeMap::new();
        let mut by_name = BTreeMap::new();
        for (i, name) in NAMES.iter().enumerate() {
            let mut bytes = [0x22u8; 32];
            bytes[31] = i as u8 + 1;
            let sk = SigningKey::from_slice(&bytes).expect("valid scalar");
            let spki = sk
                .verifying_key()
                .to_public_key_der()
                .expect("spki")
                .into_vec();
            let record = KeyRecord {
                id: Key::ecdsa(spki.clone()).id(),
                label: KeyLabel::new(name, Self::GUN).expect("label"),
                token: "memory".into(),
                spki_der: spki,
                origin: KeyOrigin::Generated,
                sensitive: true,
                extractable: false,
            };
            by_name.insert((*name).to_owned(), record.clone());
            keys.insert(record.id.clone(), (record, sk));
        }
        Self {
            store: Arc::new(MemoryStore { keys }),
            by_name,
        }
    }

    /// The metadata key of `name`.
    pub fn key(&self, name: &str) -> Key {
        Key::ecdsa(self.by_name[name].spki_der.clone())
    }

    /// Held keys: the named ones.
    pub fn held(&self, names: &[&str]) -> HeldKeys {
        let store: Arc<dyn KeyStore> = self.store.clone();
        HeldKeys::new(
            names
                .iter()
                .map(|n| (self.by_name[*n].clone(), store.clone()))
                .collect(),
        )
    }

    /// The administrator's keys: root and targets.
    pub fn admin(&self) -> HeldKeys {
        self.held(&["root", "targets"])
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// A new repository whose signers (alice, bob, carol) are delegated
    /// targets/NAME and targets/releases, as `signer add` makes it.
    pub fn repository(&self, signers: &[&str]) -> Fetched {
        let held = self.held(&["root"]);
        let root_signer = &held.by_id(&self.by_name["root"].id).expect("root").signer;
        let cert = tufd_tuf::build_root_key(Self::GUN, root_signer, Self::now()).expect("cert");
        let mut root = Root::new(Self::now() + tufd_tuf::expiry::ROOT_EXPIRY);
        for (role, key) in [
            (RoleName::Root, cert),
            (RoleName::Targets, self.key("targets")),
            (RoleName::Snapshot, self.key("snapshot")),
            (RoleName::Timestamp, self.key("timestamp")),
        ] {
            root.set_role_keys(&role, &[key]).expect("role keys");
        }
        let mut draft = Draft::new_repository(Self::GUN, root, Self::now());
        for s in signers {
            let role = RoleName::parse(&format!("targets/{s}")).expect("role");
            draft.delegate(&role, &self.key(s)).expect("delegate");
            draft
                .delegate(&RoleName::parse(super::RELEASES).unwrap(), &self.key(s))
                .expect("delegate");
        }
        self.commit(draft, &HeldKeys::default())
    }

    /// A draft of `repo`.
    pub fn draft(&self, repo: &Fetched) -> Draft {
        Draft::from_fetched(Self::GUN, repo, Self::now()).expect("draft")
    }

    /// A copy of `repo` (as read again).
    pub fn fetched(&self, repo: &Fetched) -> Fetched {
        repo.clone()
    }

    /// Signs `draft` with `held` plus the administrator's and snapshot keys
    /// and reads the result back as a client would.
    pub fn publish(&self, _repo: &Fetched, draft: Draft, held: &HeldKeys) -> Fetched {
        self.commit(draft, held)
    }

    /// Like [`Kit::publish`] with the administrator's keys, but the result
    /// may leave delegations that do not verify (listed in `repo.skipped`).
    pub fn publish_lenient(&self, draft: Draft) -> Fetched {
        self.commit_with(draft, &HeldKeys::default(), true)
    }

    fn commit(&self, draft: Draft, held: &HeldKeys) -> Fetched {
        self.commit_with(draft, held, false)
    }

    fn commit_with(&self, draft: Draft, held: &HeldKeys, lenient: bool) -> Fetched {
        struct NoTouch;
        impl crate::trust::draft::TouchNotice for NoTouch {
            fn touch(&self, _: &crate::trust::draft::HeldKey, _: &str) {}
        }
        let mut all = self.held(&["root", "targets", "snapshot"]);
        all.extend(held);
        let signed = draft.sign(&all, &NoTouch).expect("signs");
        let verify = if lenient {
            tufd_tuf::verify_unpublished_lenient
        } else {
            tufd_tuf::verify_unpublished
        };
        let repo = verify(&signed.root, &signed.preview, Self::GUN, Self::now()).expect("verifies");
        Fetched {
            repo,
            unchanged: false,
            files: signed.preview,
        }
    }

    /// `repo` after signing `tag` with `held` through the sign intent.
    pub fn sign(&self, repo: &Fetched, held: &HeldKeys, tag: &str) -> Fetched {
        let spec = TagSpec {
            repository: Self::GUN.into(),
            tag: tag.into(),
            digest: [9; 32],
            size: 9,
        };
        match super::sign::apply(Self::GUN, self.draft(repo), held, &[spec], &|_| true)
            .expect("signs")
        {
            Outcome::Publish(d, _) => self.commit(*d, held),
            Outcome::Unchanged(_) => repo.clone(),
        }
    }
}

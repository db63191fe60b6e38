//! Every configured token behind one async interface.
//!
//! The keyring picks the token for a request, finds keys across tokens by
//! ID or name, and runs each blocking token call on a blocking thread so
//! the async runtime never waits on a device.

use crate::config::{Config, TokenConfig};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tufd_keys::pkcs11::{Modules, Pkcs11Store};
use tufd_keys::yubikey::YubiKeyStore;
use tufd_keys::{Attestation, KeyError, KeyLabel, KeyRecord, KeyStore, TokenStatus, import};

/// Errors of the keyring: a token's error, or a request that names
/// something that does not exist.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("no token named '{name}' is configured (configured: {configured})")]
    UnknownToken { name: String, configured: String },
    #[error("no key {0}; `tufctl key list` shows the keys tufd holds")]
    KeyNotFound(String),
    #[error("key ID prefix '{prefix}' matches {count} keys; give more digits")]
    AmbiguousKey { prefix: String, count: usize },
    #[error("a key named {label} already exists on token '{token}' (ID {id})")]
    NameTaken {
        label: KeyLabel,
        token: String,
        id: String,
    },
    #[error(
        "cannot tell whether the name {label} is free: a key of that name could be on a token that could not be read: {tokens}. Make it readable (plug it in, or `tufctl token unlock NAME` when it waits for its PIN) or remove it from the daemon's configuration, then retry"
    )]
    NameUnknown { label: KeyLabel, tokens: String },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Busy(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The largest key file `load` reads (a P-256 key file is under 1 KiB;
/// headers and comments leave room).
pub const MAX_KEY_FILE_BYTES: usize = 64 * 1024;

/// How a request selects one key.
#[derive(Debug, Clone)]
pub enum KeySelector {
    /// A full key ID or a unique prefix of at least 8 hex digits.
    Id(String),
    /// A name and repository.
    Name(KeyLabel),
}

/// A token's status with its configured name and kind.
#[derive(Debug, Clone)]
pub struct TokenReport {
    pub name: String,
    pub kind: &'static str,
    pub is_default: bool,
    pub status: TokenStatus,
}

/// The outcome of listing keys: the keys found and the tokens that could
/// not be read.
#[derive(Debug, Clone, Default)]
pub struct KeyListing {
    pub keys: Vec<KeyRecord>,
    pub unavailable: Vec<TokenReport>,
}

/// A key's repository: empty for a signer key, else the repository as
/// docker normalizes it (`alpine` → `docker.io/library/alpine`), the name
/// trust operations look keys up by. The one normalization for requests
/// and key files.
pub fn key_repository(gun: &str) -> Result<String, tufd_proto::names::NameError> {
    if gun.is_empty() {
        return Ok(String::new());
    }
    tufd_proto::names::repository(gun)
}

/// The prefix of proof-of-possession messages (see `Keys.ProveKey`).
pub use tufd_proto::KEY_PROOF_CONTEXT;

/// All tokens of the daemon.
pub struct Keyring {
    stores: Vec<(Arc<dyn KeyStore>, &'static str)>,
    default: usize,
    /// Serializes key creation and deletion across tokens, so a name is
    /// never created twice on two tokens at once.
    admin: tokio::sync::Mutex<()>,
    /// How long each token keeps a PIN given with `unlock` (`None`: until
    /// the daemon stops); tokens not listed keep it until then.
    pin_cache: HashMap<String, Option<Duration>>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KeyringError> + Send + 'static,
) -> Result<T, KeyringError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| KeyringError::Internal(format!("token worker failed: {e}")))?
}

impl Keyring {
    /// Builds the stores for a configuration. Nothing is opened yet.
    pub fn from_config(config: &Config) -> Self {
        let modules = Arc::new(Modules::new());
        let stores = config
            .tokens
            .iter()
            .map(|t| match t {
                TokenConfig::Pkcs11(c) => (
                    Arc::new(match config.pin_rules.get(&c.name) {
                        Some(rules) => Pkcs11Store::new(
                            c.clone(),
                            modules.clone(),
                            tufd_tuf::keyid::ecdsa_key_id,
                        )
                        .with_pin_rules(rules.clone()),
                        None => Pkcs11Store::new(
                            c.clone(),
                            modules.clone(),
                            tufd_tuf::keyid::ecdsa_key_id,
                        ),
                    }) as Arc<dyn KeyStore>,
                    "pkcs11",
                ),
                TokenConfig::YubiKey(c) => (
                    Arc::new(YubiKeyStore::new(c.clone(), tufd_tuf::keyid::ecdsa_key_id))
                        as Arc<dyn KeyStore>,
                    "yubikey",
                ),
            })
            .collect();
        let mut keyring = Self::new(stores, config.default_token);
        keyring.pin_cache = config.pin_cache.clone();
        keyring
    }

    /// Builds a keyring from ready-made stores (`default` indexes `stores`).
    pub fn new(stores: Vec<(Arc<dyn KeyStore>, &'static str)>, default: usize) -> Self {
        Self {
            stores,
            default,
            admin: tokio::sync::Mutex::new(()),
            pin_cache: HashMap::new(),
        }
    }

    /// The store named `name` (empty: the default token).
    pub fn key_store(&self, name: &str) -> Result<Arc<dyn KeyStore>, KeyringError> {
        if name.is_empty() {
            return Ok(self.stores[self.default].0.clone());
        }
        self.stores
            .iter()
            .find(|(s, _)| s.name() == name)
            .map(|(s, _)| s.clone())
            .ok_or_else(|| KeyringError::UnknownToken {
                name: name.to_owned(),
                configured: self
                    .stores
                    .iter()
                    .map(|(s, _)| s.name().to_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The state of every token (opening each one that is not open yet).
    pub async fn tokens(&self) -> Vec<TokenReport> {
        let mut out = Vec::new();
        for (i, (store, kind)) in self.stores.iter().enumerate() {
            let s = store.clone();
            let status = tokio::task::spawn_blocking(move || s.status())
                .await
                .unwrap_or_else(|e| TokenStatus::Unavailable {
                    reason: format!("token worker failed: {e}"),
                });
            out.push(TokenReport {
                name: store.name().to_owned(),
                kind,
                is_default: i == self.default,
                status,
            });
        }
        out
    }

    /// Keys on one token (`token` non-empty) or on all tokens.
    pub async fn list(&self, token: &str) -> Result<KeyListing, KeyringError> {
        let stores = if token.is_empty() {
            self.stores.iter().map(|(s, _)| s.clone()).collect()
        } else {
            vec![self.key_store(token)?]
        };
        let mut listing = KeyListing::default();
        for store in stores {
            // Usually the store answers from its index at once: no hop to
            // a blocking thread (a sign lists the keys on every attempt).
            if let Some(keys) = store.list_held() {
                listing.keys.extend(keys);
                continue;
            }
            let s = store.clone();
            match blocking(move || Ok(s.list()?)).await {
                Ok(keys) => listing.keys.extend(keys),
                Err(KeyringError::Key(e)) if !token.is_empty() => return Err(e.into()),
                Err(e) => listing.unavailable.push(TokenReport {
                    name: store.name().to_owned(),
                    kind: self.kind_of(store.name()),
                    is_default: false,
                    status: TokenStatus::Unavailable {
                        reason: e.to_string(),
                    },
                }),
            }
        }
        Ok(listing)
    }

    /// Asks `key`'s device whether it attests the key (see
    /// [`KeyStore::attest`]).
    pub async fn attest(&self, key: &KeyRecord) -> Result<Attestation, KeyringError> {
        let store = self.key_store(&key.token)?;
        let id = key.id.clone();
        blocking(move || Ok(store.attest(&id)?)).await
    }

    /// Gives token `token` (empty: the default) its PIN: verified on the
    /// device now and kept for the token's PIN cache time, which is
    /// returned with the token's new state (`None`: until the daemon stops).
    pub async fn unlock(
        &self,
        token: &str,
        pin: SecretString,
    ) -> Result<(TokenReport, Option<Duration>), KeyringError> {
        let store = self.key_store(token)?;
        let s = store.clone();
        blocking(move || Ok(s.unlock(pin)?)).await?;
        let name = store.name().to_owned();
        let s = store.clone();
        let status = tokio::task::spawn_blocking(move || s.status())
            .await
            .unwrap_or_else(|e| TokenStatus::Unavailable {
                reason: format!("token worker failed: {e}"),
            });
        let report = TokenReport {
            kind: self.kind_of(&name),
            is_default: self.stores[self.default].0.name() == name,
            name,
            status,
        };
        let cache = self.pin_cache.get(&report.name).copied().flatten();
        Ok((report, cache))
    }

    fn kind_of(&self, name: &str) -> &'static str {
        self.stores
            .iter()
            .find(|(s, _)| s.name() == name)
            .map_or("unknown", |(_, k)| *k)
    }

    /// Refuses a name already used on any token. While a token cannot be
    /// read, no name can be shown free: the request is refused.
    async fn check_name_free(&self, label: &KeyLabel) -> Result<(), KeyringError> {
        let listing = self.list("").await?;
        if !listing.unavailable.is_empty() {
            let reasons: Vec<_> = listing
                .unavailable
                .iter()
                .map(|t| match &t.status {
                    TokenStatus::Unavailable { reason } => format!("{} ({reason})", t.name),
                    _ => t.name.clone(),
                })
                .collect();
            return Err(KeyringError::NameUnknown {
                label: label.clone(),
                tokens: reasons.join("; "),
            });
        }
        if let Some(k) = listing.keys.iter().find(|k| k.label == *label) {
            return Err(KeyringError::NameTaken {
                label: label.clone(),
                token: k.token.clone(),
                id: k.id.clone(),
            });
        }
        Ok(())
    }

    /// Generates a key on `token` (empty: the default token).
    pub async fn generate(&self, label: KeyLabel, token: &str) -> Result<KeyRecord, KeyringError> {
        let store = self.key_store(token)?;
        let _admin = self.admin.lock().await;
        self.check_name_free(&label).await?;
        blocking(move || Ok(store.generate(&label)?)).await
    }

    /// Decrypts a key file in memory and imports it into `token`. The name
    /// defaults to the file's `role:` header.
    pub async fn load(
        &self,
        name: &str,
        gun: &str,
        token: &str,
        pem: String,
        passphrase: Option<SecretString>,
    ) -> Result<KeyRecord, KeyringError> {
        let store = self.key_store(token)?;
        let pem = zeroize::Zeroizing::new(pem);
        if pem.len() > MAX_KEY_FILE_BYTES {
            return Err(KeyringError::InvalidRequest(format!(
                "the key file is {} bytes; a private key file has at most {MAX_KEY_FILE_BYTES}",
                pem.len()
            )));
        }
        // Decryption runs a KDF: on the bounded CPU pool, never on a
        // runtime thread (its cost is capped by `parse_key_file`).
        let file = crate::cpu::run(move || import::parse_key_file(&pem, passphrase.as_ref()))
            .await
            .map_err(|e| match e {
                crate::cpu::CpuError::Busy => KeyringError::Busy(e.to_string()),
                crate::cpu::CpuError::Failed(_) => KeyringError::Internal(e.to_string()),
            })?
            .map_err(KeyError::from)?;
        let name = match (name, file.role.as_deref()) {
            ("", Some(role)) => role.to_owned(),
            ("", None) => {
                return Err(KeyringError::InvalidRequest(
                    "the key file has no `role:` header: give the key a name with --name".into(),
                ));
            }
            (n, _) => n.to_owned(),
        };
        // The file's repository is normalized as a request's is (the
        // service normalizes `gun`): trust operations look keys up by the
        // normalized name, and policy checked that one.
        let gun = match (gun, file.gun.as_deref()) {
            ("", Some(g)) => key_repository(g).map_err(|e| {
                KeyringError::InvalidRequest(format!(
                    "the key file's `gun:` header: {e}; give the repository with --gun"
                ))
            })?,
            (g, _) => g.to_owned(),
        };
        let label = KeyLabel::new(&name, &gun)?;
        let _admin = self.admin.lock().await;
        self.check_name_free(&label).await?;
        blocking(move || Ok(store.import(&label, &file.key)?)).await
    }

    /// Finds the one key a selector names.
    pub async fn find(&self, selector: &KeySelector) -> Result<KeyRecord, KeyringError> {
        if let KeySelector::Id(prefix) = selector
            && (prefix.len() < 8 || !prefix.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(KeyringError::InvalidRequest(format!(
                "key ID '{prefix}': give at least 8 hex digits"
            )));
        }
        let listing = self.list("").await?;
        let matches: Vec<KeyRecord> = listing
            .keys
            .into_iter()
            .filter(|k| match selector {
                KeySelector::Id(p) => k.id.starts_with(&p.to_ascii_lowercase()),
                KeySelector::Name(l) => k.label == *l,
            })
            .collect();
        let describe = || match selector {
            KeySelector::Id(p) => format!("with ID {p}"),
            KeySelector::Name(l) => format!("named {l}"),
        };
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one match")),
            0 => {
                let mut what = describe();
                if !listing.unavailable.is_empty() {
                    let reasons: Vec<_> = listing
                        .unavailable
                        .iter()
                        .map(|t| match &t.status {
                            TokenStatus::Unavailable { reason } => {
                                format!("{} ({reason})", t.name)
                            }
                            _ => t.name.clone(),
                        })
                        .collect();
                    what.push_str(&format!(
                        " (tokens that could not be read: {})",
                        reasons.join("; ")
                    ));
                }
                Err(KeyringError::KeyNotFound(what))
            }
            count => match selector {
                KeySelector::Id(p) => Err(KeyringError::AmbiguousKey {
                    prefix: p.clone(),
                    count,
                }),
                KeySelector::Name(_) => Err(KeyringError::Internal(format!(
                    "{count} keys are {}",
                    describe()
                ))),
            },
        }
    }

    /// Destroys the selected key.
    pub async fn delete(&self, selector: &KeySelector) -> Result<KeyRecord, KeyringError> {
        let _admin = self.admin.lock().await;
        let key = self.find(selector).await?;
        let store = self.key_store(&key.token)?;
        blocking(move || Ok(store.delete(&key.id)?)).await
    }

    /// Signs a SHA-256 digest with the key `id` on token `token`.
    pub async fn sign_digest(
        &self,
        token: &str,
        id: &str,
        digest: [u8; 32],
    ) -> Result<[u8; 64], KeyringError> {
        let store = self.key_store(token)?;
        let id = id.to_owned();
        blocking(move || Ok(store.sign_digest(&id, &digest)?)).await
    }

    /// Signs `SHA-256(KEY_PROOF_CONTEXT || challenge)` with the selected key.
    pub async fn prove(
        &self,
        selector: &KeySelector,
        challenge: &[u8],
    ) -> Result<(KeyRecord, [u8; 64]), KeyringError> {
        if !(16..=1024).contains(&challenge.len()) {
            return Err(KeyringError::InvalidRequest(
                "the challenge must be 16 to 1024 bytes".into(),
            ));
        }
        let key = self.find(selector).await?;
        let mut h = Sha256::new();
        h.update(KEY_PROOF_CONTEXT);
        h.update(challenge);
        let sig = self
            .sign_digest(&key.token, &key.id, h.finalize().into())
            .await?;
        Ok((key, sig))
    }
}

//! `tufd.v1.Keys`: key and token management.

use super::gate::{Audited, Details, Gate};
use super::{attestation_info, caller, key_info, status, token_info};
use crate::keyring::{KeySelector, Keyring, KeyringError};
use crate::policy::{Action, Operation};
use secrecy::SecretString;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tufd_keys::KeyLabel;
use tufd_proto::names;
use tufd_proto::v1::{self, keys_server::Keys};
use zeroize::Zeroize;

/// Key management over the keyring.
pub struct KeysService {
    keyring: Arc<Keyring>,
    gate: Arc<Gate>,
}

impl KeysService {
    /// Key management, each request through `gate`.
    pub fn new(keyring: Arc<Keyring>, gate: Arc<Gate>) -> Self {
        Self { keyring, gate }
    }

    /// The policy action on the key `sel` names (resolved on the tokens).
    async fn key_action(
        &self,
        op: Operation,
        sel: &KeySelector,
    ) -> Result<Action, (Action, Status)> {
        match self.keyring.find(sel).await {
            Ok(key) => Ok(Action::key(op, key.label.name(), key.label.gun())),
            // Unknown key: the caller must hold the operation at all
            // before learning that.
            Err(e) => Err((Action::global(op), status(e))),
        }
    }

    /// Authorizes `op` on the key `sel` (an unknown key is reported only to
    /// a caller who holds `op` at all) and writes its audit begin record.
    async fn audit_key<T>(
        &self,
        req: &Request<T>,
        op: Operation,
        sel: &KeySelector,
    ) -> Result<Audited, Status> {
        let allowed = match self.key_action(op, sel).await {
            Ok(action) => self.gate.authorize(req, action).await?,
            Err((action, e)) => {
                self.gate.authorize(req, action).await?;
                return Err(e);
            }
        };
        allowed
            .begin(
                &self.gate,
                Details {
                    detail: format!("key {sel:?}"),
                    ..Default::default()
                },
            )
            .await
    }
}

/// The `role:` and `gun:` headers of a key file, as the keyring reads them
/// when the request names neither.
fn file_headers(pem_text: &str) -> (Option<String>, Option<String>) {
    match pem::parse(pem_text) {
        Ok(p) => (
            p.headers().get("role").map(str::to_owned),
            p.headers().get("gun").map(str::to_owned),
        ),
        Err(_) => (None, None),
    }
}

fn selector(s: Option<v1::KeySelector>) -> Result<KeySelector, Status> {
    use v1::key_selector::Selector;
    match s.and_then(|s| s.selector) {
        Some(Selector::KeyId(id)) => Ok(KeySelector::Id(id)),
        Some(Selector::Name(n)) => label(&n.name, &n.gun).map(KeySelector::Name),
        None => Err(Status::invalid_argument("name the key by ID or by name")),
    }
}

/// A key's repository: empty for a signer key, else the repository named
/// as docker normalizes it (`alpine` → `docker.io/library/alpine`), the
/// name trust operations look keys up by.
fn key_repository(gun: &str) -> Result<String, Status> {
    crate::keyring::key_repository(gun).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A key label from a request: the shared name rules first, so the daemon
/// refuses what `tufctl` refuses, with the same words.
fn label(name: &str, gun: &str) -> Result<KeyLabel, Status> {
    names::check_key_name(name).map_err(|e| Status::invalid_argument(e.to_string()))?;
    KeyLabel::new(name, &key_repository(gun)?).map_err(|e| status(KeyringError::from(e)))
}

#[tonic::async_trait]
impl Keys for KeysService {
    async fn list_tokens(
        &self,
        req: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
        self.gate
            .authorize(&req, Action::global(Operation::List))
            .await?;
        let tokens = self.keyring.tokens().await;
        Ok(Response::new(v1::ListTokensResponse {
            tokens: tokens.into_iter().map(token_info).collect(),
        }))
    }

    async fn generate_key(
        &self,
        req: Request<v1::GenerateKeyRequest>,
    ) -> Result<Response<v1::GenerateKeyResponse>, Status> {
        let who = caller(&req);
        let allowed = self
            .gate
            .authorize(
                &req,
                Action::key(
                    Operation::KeyGenerate,
                    &req.get_ref().name,
                    &req.get_ref().gun,
                ),
            )
            .await?;
        let r = req.into_inner();
        let label = label(&r.name, &r.gun)?;
        let audit = allowed
            .begin(
                &self.gate,
                Details {
                    detail: format!("key {label} on token {:?}", r.token),
                    ..Default::default()
                },
            )
            .await?;
        tracing::info!(caller = %who, key = %label, token = %r.token, "generate key");
        let key = self.keyring.generate(label, &r.token).await;
        let ids = key.as_ref().map(|k| vec![k.id.clone()]).unwrap_or_default();
        audit.end_with(&key, ids).await?;
        let key = key.map_err(status)?;
        Ok(Response::new(v1::GenerateKeyResponse {
            key: Some(key_info(key)),
        }))
    }

    async fn load_key(
        &self,
        req: Request<v1::LoadKeyRequest>,
    ) -> Result<Response<v1::LoadKeyResponse>, Status> {
        let who = caller(&req);
        let (role, gun) = file_headers(&req.get_ref().pem);
        let name = Some(req.get_ref().name.clone())
            .filter(|n| !n.is_empty())
            .or(role)
            .unwrap_or_default();
        let gun = Some(req.get_ref().gun.clone())
            .filter(|g| !g.is_empty())
            .or(gun)
            .unwrap_or_default();
        let allowed = self
            .gate
            .authorize(&req, Action::key(Operation::KeyLoad, &name, &gun))
            .await?;
        let mut r = req.into_inner();
        let audit = allowed
            .begin(
                &self.gate,
                Details {
                    detail: format!("key {name} (repository {gun:?}) into token {:?}", r.token),
                    ..Default::default()
                },
            )
            .await?;
        tracing::info!(caller = %who, name = %r.name, token = %r.token, "load key");
        let pem = std::mem::take(&mut r.pem);
        let passphrase = (!r.passphrase.is_empty())
            .then(|| SecretString::from(std::mem::take(&mut r.passphrase)));
        r.passphrase.zeroize();
        let gun = key_repository(&r.gun)?;
        let key = self
            .keyring
            .load(&r.name, &gun, &r.token, pem, passphrase)
            .await;
        let ids = key.as_ref().map(|k| vec![k.id.clone()]).unwrap_or_default();
        audit.end_with(&key, ids).await?;
        let key = key.map_err(status)?;
        Ok(Response::new(v1::LoadKeyResponse {
            key: Some(key_info(key)),
        }))
    }

    async fn list_keys(
        &self,
        req: Request<v1::ListKeysRequest>,
    ) -> Result<Response<v1::ListKeysResponse>, Status> {
        self.gate
            .authorize(&req, Action::global(Operation::List))
            .await?;
        let r = req.into_inner();
        let listing = self.keyring.list(&r.token).await.map_err(status)?;
        let mut keys = Vec::with_capacity(listing.keys.len());
        for key in listing.keys {
            let attestation = if r.attestation {
                Some(attestation_info(self.keyring.attest(&key).await))
            } else {
                None
            };
            keys.push(v1::KeyInfo {
                attestation,
                ..key_info(key)
            });
        }
        Ok(Response::new(v1::ListKeysResponse {
            keys,
            unavailable_tokens: listing.unavailable.into_iter().map(token_info).collect(),
        }))
    }

    async fn delete_key(
        &self,
        req: Request<v1::DeleteKeyRequest>,
    ) -> Result<Response<v1::DeleteKeyResponse>, Status> {
        let who = caller(&req);
        let sel = selector(req.get_ref().key.clone())?;
        let audit = self.audit_key(&req, Operation::KeyDelete, &sel).await?;
        tracing::info!(caller = %who, key = ?sel, "delete key");
        let key = self.keyring.delete(&sel).await;
        let ids = key.as_ref().map(|k| vec![k.id.clone()]).unwrap_or_default();
        audit.end_with(&key, ids).await?;
        let key = key.map_err(status)?;
        Ok(Response::new(v1::DeleteKeyResponse {
            key: Some(key_info(key)),
        }))
    }

    async fn unlock_token(
        &self,
        req: Request<v1::UnlockTokenRequest>,
    ) -> Result<Response<v1::UnlockTokenResponse>, Status> {
        let who = caller(&req);
        let allowed = self
            .gate
            .authorize(&req, Action::global(Operation::TokenUnlock))
            .await;
        let mut r = req.into_inner();
        let pin = SecretString::from(std::mem::take(&mut r.pin));
        r.pin.zeroize();
        let audit = allowed?
            .begin(
                &self.gate,
                Details {
                    detail: format!("token {:?}", r.token),
                    ..Default::default()
                },
            )
            .await?;
        tracing::info!(caller = %who, token = %r.token, "unlock token");
        if r.confirm_last_try {
            tracing::warn!(caller = %who, token = %r.token,
                "confirm_last_try is ignored: using the last PIN try is the administrator's decision (allow_last_pin_try)");
        }
        let unlocked = self.keyring.unlock(&r.token, pin).await;
        audit.end_with(&unlocked, vec![]).await?;
        let (report, cache) = unlocked.map_err(status)?;
        Ok(Response::new(v1::UnlockTokenResponse {
            token: Some(token_info(report)),
            cache_seconds: cache.map_or(0, |d| d.as_secs()),
        }))
    }

    async fn prove_key(
        &self,
        req: Request<v1::ProveKeyRequest>,
    ) -> Result<Response<v1::ProveKeyResponse>, Status> {
        let sel = selector(req.get_ref().key.clone())?;
        let audit = self.audit_key(&req, Operation::KeyTest, &sel).await?;
        let r = req.into_inner();
        let proved = self.keyring.prove(&sel, &r.challenge).await;
        let ids = proved
            .as_ref()
            .map(|(k, _)| vec![k.id.clone()])
            .unwrap_or_default();
        audit.end_with(&proved, ids).await?;
        let (key, sig) = proved.map_err(status)?;
        Ok(Response::new(v1::ProveKeyResponse {
            key: Some(key_info(key)),
            signature: sig.to_vec(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_and_repositories_follow_the_shared_rules() {
        let l = label("root", "alpine").unwrap();
        assert_eq!(l.gun(), "docker.io/library/alpine");
        assert_eq!(label("alice", "").unwrap().gun(), "");
        for (name, gun) in [
            ("alice", ".."),
            ("alice", "/lead"),
            ("alice", "trail/"),
            ("alice", "a b"),
            ("alice", "a?b#c%d"),
            ("alice", "upper/Case"),
            ("../x", ""),
            ("a b", ""),
        ] {
            let e = label(name, gun).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{name:?} {gun:?}");
        }
    }
}

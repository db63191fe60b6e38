//! `tufd.v1.Keys`: key and token management.

use super::{attestation_info, caller, key_info, status, token_info};
use crate::keyring::{KeySelector, Keyring, KeyringError};
use secrecy::SecretString;
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tufd_keys::KeyLabel;
use tufd_proto::v1::{self, keys_server::Keys};
use zeroize::Zeroize;

/// Key management over the keyring.
pub struct KeysService {
    keyring: Arc<Keyring>,
}

impl KeysService {
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self { keyring }
    }
}

fn selector(s: Option<v1::KeySelector>) -> Result<KeySelector, Status> {
    use v1::key_selector::Selector;
    match s.and_then(|s| s.selector) {
        Some(Selector::KeyId(id)) => Ok(KeySelector::Id(id)),
        Some(Selector::Name(n)) => KeyLabel::new(&n.name, &n.gun)
            .map(KeySelector::Name)
            .map_err(|e| status(e.into())),
        None => Err(Status::invalid_argument("name the key by ID or by name")),
    }
}

fn label(name: &str, gun: &str) -> Result<KeyLabel, Status> {
    KeyLabel::new(name, gun).map_err(|e| status(KeyringError::from(e)))
}

#[tonic::async_trait]
impl Keys for KeysService {
    async fn list_tokens(
        &self,
        _req: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
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
        let r = req.into_inner();
        let label = label(&r.name, &r.gun)?;
        tracing::info!(caller = %who, key = %label, token = %r.token, "generate key");
        let key = self
            .keyring
            .generate(label, &r.token)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::GenerateKeyResponse {
            key: Some(key_info(key)),
        }))
    }

    async fn load_key(
        &self,
        req: Request<v1::LoadKeyRequest>,
    ) -> Result<Response<v1::LoadKeyResponse>, Status> {
        let who = caller(&req);
        let mut r = req.into_inner();
        tracing::info!(caller = %who, name = %r.name, token = %r.token, "load key");
        let pem = std::mem::take(&mut r.pem);
        let passphrase = (!r.passphrase.is_empty())
            .then(|| SecretString::from(std::mem::take(&mut r.passphrase)));
        r.passphrase.zeroize();
        let key = self
            .keyring
            .load(&r.name, &r.gun, &r.token, pem, passphrase)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::LoadKeyResponse {
            key: Some(key_info(key)),
        }))
    }

    async fn list_keys(
        &self,
        req: Request<v1::ListKeysRequest>,
    ) -> Result<Response<v1::ListKeysResponse>, Status> {
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
        let sel = selector(req.into_inner().key)?;
        tracing::info!(caller = %who, key = ?sel, "delete key");
        let key = self.keyring.delete(&sel).await.map_err(status)?;
        Ok(Response::new(v1::DeleteKeyResponse {
            key: Some(key_info(key)),
        }))
    }

    async fn unlock_token(
        &self,
        req: Request<v1::UnlockTokenRequest>,
    ) -> Result<Response<v1::UnlockTokenResponse>, Status> {
        let who = caller(&req);
        let mut r = req.into_inner();
        let pin = SecretString::from(std::mem::take(&mut r.pin));
        r.pin.zeroize();
        tracing::info!(caller = %who, token = %r.token, "unlock token");
        if r.confirm_last_try {
            tracing::warn!(caller = %who, token = %r.token,
                "confirm_last_try is ignored: using the last PIN try is the administrator's decision (allow_last_pin_try)");
        }
        let (report, cache) = self.keyring.unlock(&r.token, pin).await.map_err(status)?;
        Ok(Response::new(v1::UnlockTokenResponse {
            token: Some(token_info(report)),
            cache_seconds: cache.map_or(0, |d| d.as_secs()),
        }))
    }

    async fn prove_key(
        &self,
        req: Request<v1::ProveKeyRequest>,
    ) -> Result<Response<v1::ProveKeyResponse>, Status> {
        let r = req.into_inner();
        let sel = selector(r.key)?;
        let (key, sig) = self
            .keyring
            .prove(&sel, &r.challenge)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ProveKeyResponse {
            key: Some(key_info(key)),
            signature: sig.to_vec(),
        }))
    }
}

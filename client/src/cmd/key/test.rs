//! `tufctl key test`: the daemon signs a challenge, tufctl verifies it.

use super::KeyArg;
use crate::cmd::Ctx;
use crate::output::{self, Failure};
use clap::Args;
use serde_json::json;
use tufd_proto::v1::{self, keys_client::KeysClient};

/// `key test` arguments.
#[derive(Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub key: KeyArg,
}

impl TestArgs {
    /// Runs `tufctl key test`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let key = self.key;
        let out = &ctx.out;
        let client = &mut KeysClient::new(ctx.channel.clone());
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        use p256::pkcs8::DecodePublicKey;
        use sha2::{Digest, Sha256};
        let challenge: [u8; 32] = rand::random();
        let r = client
            .prove_key(v1::ProveKeyRequest {
                key: Some(key.selector()),
                challenge: challenge.to_vec(),
            })
            .await?
            .into_inner();
        let info = r
            .key
            .ok_or_else(|| Failure::input("the daemon returned no key"))?;
        let digest = Sha256::new()
            .chain_update(tufd_proto::KEY_PROOF_CONTEXT)
            .chain_update(challenge)
            .finalize();
        let verified = p256::PublicKey::from_public_key_pem(&info.public_key_pem)
            .ok()
            .zip(p256::ecdsa::Signature::from_slice(&r.signature).ok())
            .is_some_and(|(pk, sig)| {
                p256::ecdsa::VerifyingKey::from(&pk)
                    .verify_prehash(&digest, &sig)
                    .is_ok()
            });
        if out.json() {
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            let mut v = output::key_json(&info);
            v["verified"] = json!(verified);
            v["proof"] = json!({
                "context": String::from_utf8_lossy(
                    tufd_proto::KEY_PROOF_CONTEXT.strip_suffix(b"\0").unwrap_or_default()
                ),
                "challenge": hex(&challenge),
                "signature": hex(&r.signature),
            });
            out.print_json(&v);
        }
        if !verified {
            return Err(Failure::from(tonic::Status::data_loss(format!(
                "key {} (ID {}) on token '{}' produced a signature that does not verify",
                info.name, info.key_id, info.token
            ))));
        }
        if !out.json() {
            println!(
                "Key {} (ID {}) on token '{}' signs: signature verified.",
                info.name, info.key_id, info.token
            );
        }
        Ok(())
    }
}

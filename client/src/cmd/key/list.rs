//! `tufctl key list`.

use crate::cmd::Ctx;
use crate::output::{self, Failure};
use clap::Args;
use serde_json::json;
use tufd_proto::v1::{self, keys_client::KeysClient};

/// `key list` arguments.
#[derive(Args)]
pub struct ListArgs {
    /// Only keys on this token.
    #[arg(long)]
    pub token: Option<String>,
    /// Also ask each device whether it attests that the key was
    /// generated on it (YubiKey attestation; the facts it certifies).
    #[arg(long)]
    pub attestation: bool,
}

impl ListArgs {
    /// Runs `tufctl key list`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let ListArgs { token, attestation } = self;
        let out = &ctx.out;
        let client = &mut KeysClient::new(ctx.channel.clone());
        let call = client.list_keys(v1::ListKeysRequest {
            token: token.unwrap_or_default(),
            attestation,
        });
        // Asking each device for its attestation can take a while.
        let r = if attestation {
            ctx.term
                .waiting("asking the devices for attestations", call)
                .await
        } else {
            call.await
        }?
        .into_inner();
        if out.json() {
            out.print_json(&json!({
                    "keys": r.keys.iter().map(output::key_json).collect::<Vec<_>>(),
                    "unavailable_tokens": r.unavailable_tokens.iter().map(output::token_json).collect::<Vec<_>>(),
                }));
        } else {
            if r.keys.is_empty() {
                println!("No keys.");
            } else {
                output::table(
                    output::KEY_HEADER,
                    &r.keys.iter().map(output::key_row).collect::<Vec<_>>(),
                );
            }
            if attestation && !r.keys.is_empty() {
                println!("\nAttestation:");
                for k in &r.keys {
                    let text = k
                        .attestation
                        .as_ref()
                        .map(output::attestation_text)
                        .unwrap_or_else(|| "the daemon sent no attestation".into());
                    let name = if k.gun.is_empty() {
                        k.name.clone()
                    } else {
                        format!("{}@{}", k.name, k.gun)
                    };
                    println!("  {name} (token '{}'): {text}", k.token);
                }
            }
        }
        if !r.unavailable_tokens.is_empty() {
            // The listing is incomplete: a script must not take it for all keys.
            let tokens: Vec<String> = r
                .unavailable_tokens
                .iter()
                .map(|t| format!("'{}' ({})", t.name, t.detail))
                .collect();
            return Err(Failure::daemon(
                "Unavailable",
                format!(
                    "the listing is incomplete: token(s) could not be read: {}",
                    tokens.join("; ")
                ),
            ));
        }
        Ok(())
    }
}

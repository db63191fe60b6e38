//! `tufctl key rm`: destroy a key on its token.

use super::KeyArg;
use crate::cmd::Ctx;
use crate::output::{self, Failure};
use clap::Args;
use std::io::IsTerminal;
use tufd_proto::v1::{self, keys_client::KeysClient};

/// `key rm` arguments.
#[derive(Args)]
pub struct RmArgs {
    #[command(flatten)]
    pub key: KeyArg,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

impl RmArgs {
    /// Runs `tufctl key rm`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let RmArgs { key, yes } = self;
        let out = &ctx.out;
        let client = &mut KeysClient::new(ctx.channel.clone());
        // Resolve first (the daemon proves it exists by signing nothing: a
        // listing), so the confirmation names exactly what will be destroyed.
        let all = client
            .list_keys(v1::ListKeysRequest::default())
            .await?
            .into_inner()
            .keys;
        let sel = key.selector();
        let target = all.iter().find(|k| match &sel.selector {
            Some(v1::key_selector::Selector::KeyId(id)) => k.key_id.starts_with(&id.to_lowercase()),
            Some(v1::key_selector::Selector::Name(n)) => k.name == n.name && k.gun == n.gun,
            None => false,
        });
        let Some(target) = target else {
            return Err(Failure::from(tonic::Status::not_found(format!(
                "no key '{}'; `tufctl key list` shows the keys tufd holds",
                key.key
            ))));
        };
        if !yes {
            if !std::io::stdin().is_terminal() {
                return Err(Failure::input(
                    "refusing to destroy a key without confirmation: pass --yes",
                ));
            }
            eprint!(
                "Destroy key {} (ID {}) on token '{}'? This cannot be undone. [y/N] ",
                target.name, target.key_id, target.token
            );
            let mut answer = String::new();
            std::io::stdin()
                .read_line(&mut answer)
                .map_err(|e| Failure::input(format!("cannot read the answer: {e}")))?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                return Err(Failure::input("not confirmed; nothing was deleted"));
            }
        }
        let deleted = client
            .delete_key(v1::DeleteKeyRequest {
                key: Some(v1::KeySelector {
                    selector: Some(v1::key_selector::Selector::KeyId(target.key_id.clone())),
                }),
            })
            .await?
            .into_inner()
            .key
            .ok_or_else(|| Failure::input("the daemon returned no key"))?;
        if out.json() {
            out.print_json(&output::key_json(&deleted));
        } else {
            println!(
                "Destroyed key {} (ID {}) on token '{}'.",
                deleted.name, deleted.key_id, deleted.token
            );
        }
        Ok(())
    }
}

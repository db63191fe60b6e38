//! `tufctl token list`.

use crate::cmd::Ctx;
use crate::output::{self, Failure};
use serde_json::json;
use tufd_proto::v1::{self, keys_client::KeysClient};

/// Runs `tufctl token list`.
pub async fn run(ctx: &mut Ctx) -> Result<(), Failure> {
    let out = &ctx.out;
    let tokens = KeysClient::new(ctx.channel.clone())
        .list_tokens(v1::ListTokensRequest {})
        .await?
        .into_inner()
        .tokens;
    if out.json() {
        out.print_json(&json!({
            "tokens": tokens.iter().map(output::token_json).collect::<Vec<_>>()
        }));
    } else {
        super::print_tokens(&tokens);
    }
    Ok(())
}

//! `tufctl status`: the daemon's version and its tokens.

use crate::cmd::Ctx;
use crate::output::{self, Failure};
use clap::Args;
use serde_json::json;
use tufd_proto::v1::{self, system_client::SystemClient};

/// `status` arguments (none).
#[derive(Args)]
pub struct StatusArgs {}

impl StatusArgs {
    /// Runs `tufctl status`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let out = &ctx.out;
        let h = SystemClient::new(ctx.channel.clone())
            .health(v1::HealthRequest {})
            .await?
            .into_inner();
        if out.json() {
            out.print_json(&json!({
                "version": h.version,
                "uptime_seconds": h.uptime_seconds,
                "tokens": h.tokens.iter().map(output::token_json).collect::<Vec<_>>(),
            }));
        } else {
            println!("tufd {} (up {} s)", h.version, h.uptime_seconds);
            crate::cmd::token::print_tokens(&h.tokens);
        }
        Ok(())
    }
}

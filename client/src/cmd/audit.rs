//! `tufctl audit verify`: the daemon checks its audit log's hash chain.

use crate::cmd::Ctx;
use crate::output::Failure;
use clap::Subcommand;
use serde_json::json;
use tufd_proto::v1::{self, policy_client::PolicyClient};

/// `audit` subcommands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Have the daemon check its audit log's hash chain against its head
    /// (root and the admin group). Offline: `tufd --audit-verify FILE`.
    Verify,
}

impl AuditCommand {
    /// Runs `tufctl audit verify`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let command = self;
        let out = &ctx.out;
        let AuditCommand::Verify = command;
        let r = PolicyClient::new(ctx.channel.clone())
            .verify_audit(v1::VerifyAuditRequest {})
            .await?
            .into_inner();
        if out.json() {
            out.print_json(&json!({
                "files": r.files,
                "lines": r.lines,
                "first_seq": r.first_seq,
                "last_seq": r.last_seq,
                "last_hash": r.last_hash,
            }));
        } else {
            println!(
                "audit log intact: {} line(s), seq {}..{} in {} file(s); head {}",
                r.lines,
                r.first_seq,
                r.last_seq,
                r.files.len(),
                r.last_hash
            );
        }
        Ok(())
    }
}

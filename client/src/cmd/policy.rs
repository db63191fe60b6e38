//! `tufctl policy check`: ask the daemon's policy who may do what.

use crate::cmd::Ctx;
use crate::output::Failure;
use clap::Subcommand;
use serde_json::json;
use tufd_proto::v1::{self, policy_client::PolicyClient};

/// `policy` subcommands.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Explain whether a user may do OPERATION on REPO, and by which rule
    /// (or which permission is missing). Nothing is done. Asking about
    /// another user needs the policy-check permission (root, admin group).
    ///
    /// Operations: inspect, verify, list, key-test, sign, revoke,
    /// key-generate, key-load, key-delete, token-unlock, signer-add,
    /// signer-remove, rotate, init, repair, policy-check.
    ///
    /// Example: tufctl policy check --user ci sign registry.example.com/team/app --role targets/releases
    Check {
        /// User name or uid (default: you).
        #[arg(long)]
        user: Option<String>,
        /// The operation.
        operation: String,
        /// The repository (GUN); omit for list and token-unlock.
        repo: Option<String>,
        /// A role the operation would write (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
}

impl PolicyCommand {
    /// `policy check`: prints the decision; exits 0 when allowed and 1
    /// with code PermissionDenied when not, so scripts can test it.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let command = self;
        let out = &ctx.out;
        let PolicyCommand::Check {
            user,
            operation,
            repo,
            roles,
        } = command;
        let r = PolicyClient::new(ctx.channel.clone())
            .check(v1::PolicyCheckRequest {
                user: user.clone().unwrap_or_default(),
                operation: operation.clone(),
                repository: repo.clone().unwrap_or_default(),
                roles: roles.clone(),
            })
            .await?
            .into_inner();
        if out.json() {
            out.print_json(&json!({
                "uid": r.uid,
                "operation": operation,
                "repository": repo,
                "roles": roles,
                "allowed": r.allowed,
                "allowed_roles": r.roles,
                "explanation": r.explanation,
            }));
        } else {
            println!("{}", r.explanation);
        }
        if r.allowed {
            Ok(())
        } else {
            Err(Failure::daemon("PermissionDenied", r.explanation))
        }
    }
}

//! `tufctl policy check` and `tufctl audit verify`.

use crate::cli::{AuditCommand, PolicyCommand};
use crate::output::{Failure, Output};
use serde_json::json;
use tonic::transport::Channel;
use tufd_proto::v1::{self, policy_client::PolicyClient};

/// `policy check`: prints the decision; exits 0 when allowed and 1 with
/// code PermissionDenied when not, so scripts can test it.
pub async fn policy(command: PolicyCommand, channel: Channel, out: &Output) -> Result<(), Failure> {
    let PolicyCommand::Check {
        user,
        operation,
        repo,
        roles,
    } = command;
    let r = PolicyClient::new(channel)
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

/// `audit verify`.
pub async fn audit(command: AuditCommand, channel: Channel, out: &Output) -> Result<(), Failure> {
    let AuditCommand::Verify = command;
    let r = PolicyClient::new(channel)
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

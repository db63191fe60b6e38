//! `tufd.v1.Policy`: explain a policy decision; check the audit log.

use super::gate::{Gate, caller_of, parse_operation};
use crate::policy::{Action, Caller, Decision, Operation};
use std::sync::Arc;
use tonic::{Request, Response, Status};
use tufd_proto::v1::{self, policy_server};

/// Policy questions over the gate.
pub struct PolicyService {
    gate: Arc<Gate>,
}

impl PolicyService {
    /// Answers about the policy `gate` enforces.
    pub fn new(gate: Arc<Gate>) -> Self {
        Self { gate }
    }
}

/// The longest `policy check --user` waits for the user database.
const SUBJECT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `policy check --user` lookups under way at once. Any caller may ask
/// (whether the subject is the caller is known only after the lookup), and
/// a hung database keeps each lookup's thread: at most this many.
const SUBJECT_LOOKUPS: usize = 4;

/// The user a `policy check` asks about: a name or a uid, with the groups
/// the group database gives it (looked up off the runtime, bounded).
async fn subject(user: &str) -> Result<Caller, Status> {
    static LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(SUBJECT_LOOKUPS);
    let permit = LOOKUPS.try_acquire().map_err(|_| {
        Status::unavailable(
            "too many user lookups are under way (is the user database slow?); try again later",
        )
    })?;
    let asked = user.to_owned();
    let lookup = tokio::task::spawn_blocking(move || {
        // Held until the lookup returns, even after the caller gave up.
        let _permit = permit;
        let found = match asked.parse::<u32>() {
            Ok(uid) => nix::unistd::User::from_uid(uid.into()),
            Err(_) => nix::unistd::User::from_name(&asked),
        };
        found.map(|u| u.map(Caller::from_database))
    });
    let failed = |e: String| Status::internal(format!("looking up user {user:?}: {e}"));
    tokio::time::timeout(SUBJECT_WAIT, lookup)
        .await
        .map_err(|_| {
            Status::unavailable(format!(
                "the user database did not answer within {} s about {user:?}; check NSS (sssd, LDAP) on the daemon's system",
                SUBJECT_WAIT.as_secs()
            ))
        })?
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?
        .ok_or_else(|| Status::not_found(format!("no user {user:?} on the daemon's system")))
}

#[tonic::async_trait]
impl policy_server::Policy for PolicyService {
    async fn check(
        &self,
        req: Request<v1::PolicyCheckRequest>,
    ) -> Result<Response<v1::PolicyCheckResponse>, Status> {
        let me = caller_of(&req).await?;
        let r = req.get_ref();
        let op = parse_operation(&r.operation)?;
        let who = if r.user.is_empty() {
            me.clone()
        } else {
            subject(&r.user).await?
        };
        if who.uid != me.uid {
            self.gate
                .authorize(&req, Action::global(Operation::PolicyCheck))
                .await?;
        }
        let mut action = if r.repository.is_empty() {
            Action::global(op)
        } else {
            Action::on(op, &super::gate::repository(&r.repository))
        };
        action.roles = r.roles.clone();
        let decision = self.gate.policy().check(&who, &action);
        let roles = match &decision {
            Decision::Allow { roles, .. } => roles.describe(),
            Decision::Deny { .. } => String::new(),
        };
        Ok(Response::new(v1::PolicyCheckResponse {
            allowed: matches!(decision, Decision::Allow { .. }),
            explanation: decision.explain(),
            uid: who.uid,
            roles,
        }))
    }

    async fn verify_audit(
        &self,
        req: Request<v1::VerifyAuditRequest>,
    ) -> Result<Response<v1::VerifyAuditResponse>, Status> {
        let me = caller_of(&req).await?;
        if self.gate.policy().is_admin(&me).is_none() {
            return Err(Status::permission_denied(format!(
                "permission denied: {} may not read the audit log; only root and the admin group may",
                me.describe()
            )));
        }
        let log = self
            .gate
            .audit_log()
            .ok_or_else(|| {
                Status::failed_precondition("the audit log is off ([audit] enabled = false)")
            })?
            .clone();
        let report = tokio::task::spawn_blocking(move || crate::audit::verify(log.path()))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::data_loss(e.to_string()))?;
        Ok(Response::new(v1::VerifyAuditResponse {
            files: report
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect(),
            lines: report.lines,
            first_seq: report.first_seq,
            last_seq: report.last_seq,
            last_hash: report.last_hash,
        }))
    }
}

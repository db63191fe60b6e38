//! The front door every handler passes: who is calling (from the socket),
//! may they (the policy), and the audit record before and after.
//!
//! A handler's first line is `let allowed = self.gate.authorize(&req,
//! action).await?;`. A refusal is `PermissionDenied` naming the permission,
//! logged and audited. Operations that sign or change state then call
//! [`Allowed::begin`]: the `begin` record is written before the operation
//! starts (no audit, no operation) and synced while it runs; [`Audited::end`]
//! waits for that sync, writes the outcome and answers, the outcome's sync
//! following at once (see the audit module).

use crate::audit::{AuditLog, CallerRecord, Durability, Entry, Phase, Published, TagRecord};
use crate::connections::PeerInfo;
use crate::policy::{Action, Caller, Decision, Grant, Operation, Policy, RoleScope};
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use tonic::{Request, Status};

/// The policy in force and the audit log, shared by every service.
pub struct Gate {
    policy: RwLock<Arc<Policy>>,
    audit: Option<Arc<AuditLog>>,
}

/// The socket's peer credentials and groups of `req`, as fixed when its
/// connection was accepted; a request without them (not over a Unix
/// socket) is refused.
fn peer_of<T>(req: &Request<T>) -> Result<(tokio::net::unix::UCred, &PeerInfo), Status> {
    req.extensions()
        .get::<PeerInfo>()
        .and_then(|i| Some((i.uds.peer_cred?, i)))
        .ok_or_else(|| {
            Status::permission_denied(
                "the caller's identity is unknown (no SO_PEERCRED); tufd serves only its Unix socket",
            )
        })
}

/// The refusal of a caller whose groups cannot be told.
fn unidentified(e: impl std::fmt::Display) -> Status {
    tracing::warn!(error = %e, "refused: the caller's groups are unknown");
    Status::permission_denied(e.to_string())
}

/// The caller's identity from the socket's peer credentials and groups
/// (fixed at connect time), completed from the user database (bounded
/// wait; see [`Caller::from_peer`]).
pub async fn caller_of<T>(req: &Request<T>) -> Result<Caller, Status> {
    let (cred, peer) = peer_of(req)?;
    Caller::from_peer(cred.uid(), cred.gid(), cred.pid(), peer.groups.as_deref())
        .await
        .map_err(unidentified)
}

/// The caller's identity from the peer credentials and groups only (no
/// user database; never blocks), for checks made outside a handler.
pub fn kernel_caller_of<T>(req: &Request<T>) -> Result<Caller, Status> {
    let (cred, peer) = peer_of(req)?;
    Caller::from_kernel(cred.uid(), cred.gid(), cred.pid(), peer.groups.as_deref())
        .map_err(unidentified)
}

/// The refusal of an operation whose audit line cannot be written.
fn unrecorded(path: &str, e: impl std::fmt::Display) -> Status {
    tracing::error!(error = %e, "audit log write failed");
    Status::unavailable(format!(
        "the audit log cannot be written ({e}); tufd refuses operations it cannot record; fix {path}"
    ))
}

fn record(c: &Caller) -> CallerRecord {
    CallerRecord {
        uid: Some(c.uid),
        gid: Some(c.gid),
        pid: c.pid,
        exe: c.exe.as_ref().map(|p| p.display().to_string()),
        comm: c.comm.clone(),
        user: c.user_name.clone(),
        address: None,
    }
}

/// The repository name policy patterns match: the name as the trust layer
/// uses it (the one place to normalize), docker's normalized name
/// (`alpine` → `docker.io/library/alpine`, `REPO:TAG` → `REPO`). A name the
/// shared rules refuse is matched as given (the trust layer refuses it).
pub fn repository(name: &str) -> String {
    tufd_proto::names::maybe_tagged(name)
        .map(|(repo, _)| repo)
        .unwrap_or_else(|_| name.to_owned())
}

impl Gate {
    /// A gate with `policy` and, when configured, an audit log.
    pub fn new(policy: Policy, audit: Option<Arc<AuditLog>>) -> Self {
        Gate {
            policy: RwLock::new(Arc::new(policy)),
            audit,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the policy (SIGHUP); requests already allowed keep their
    /// decision.
    pub fn set_policy(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }

    /// The audit log, when on.
    pub fn audit_log(&self) -> Option<&Arc<AuditLog>> {
        self.audit.as_ref()
    }

    /// Writes `entry` and waits until it is durable (a refusal is
    /// answered only once recorded), holding no thread while it waits.
    async fn append(&self, entry: Entry) -> Result<(), Status> {
        let Some(log) = self.audit.clone() else {
            return Ok(());
        };
        let path = log.path().display().to_string();
        let seq = log
            .append_soon(entry)
            .await
            .map_err(|e| unrecorded(&path, e))?;
        log.sync_later(seq)
            .wait()
            .await
            .map_err(|e| unrecorded(&path, e))
    }

    /// Writes an operation's `begin` line and waits until it is durable:
    /// the operation takes no effect (a publish, a key made or deleted)
    /// before its record is on disk, so a crash or power loss cannot lose
    /// the record of something that happened. Concurrent operations share
    /// one fdatasync (the log's syncer). A line that cannot be written or
    /// synced refuses the operation, nothing done.
    async fn begin(&self, entry: Entry) -> Result<(), Status> {
        let path = self.audit.as_ref().map(|l| l.path().display().to_string());
        match self.begin_line(entry).await? {
            Some(synced) => synced.wait().await.map_err(|e| {
                tracing::error!(error = %e, "audit log: syncing a begin line failed");
                Status::unavailable(format!(
                    "the audit log could not be synced ({e}); nothing was done; check the disk of the audit log ({})",
                    path.unwrap_or_default()
                ))
            }),
            None => Ok(()),
        }
    }

    /// Writes an operation's `begin` line (a failed write refuses the
    /// operation) and asks for its fdatasync, returned to be waited for.
    async fn begin_line(&self, entry: Entry) -> Result<Option<Durability>, Status> {
        let Some(log) = self.audit.clone() else {
            return Ok(None);
        };
        let path = log.path().display().to_string();
        let seq = log
            .append_soon(entry)
            .await
            .map_err(|e| unrecorded(&path, e))?;
        Ok(Some(log.sync_later(seq)))
    }

    /// Writes an operation's `end` line once its `begin` line is durable;
    /// the `end` line's own fdatasync runs after the answer (shared with
    /// other operations' syncs, see [`AuditLog::sync_through`]).
    async fn end(&self, entry: Entry) -> Result<(), Status> {
        let Some(log) = self.audit.clone() else {
            return Ok(());
        };
        let path = log.path().display().to_string();
        let seq = log.append_soon(entry).await.map_err(|e| {
            tracing::error!(error = %e, "audit log write failed");
            Status::unavailable(format!(
                "the operation completed but the audit log cannot be written ({e}); fix {path}"
            ))
        })?;
        // Nobody waits for it; a failure is logged by the syncer.
        drop(log.sync_later(seq));
        Ok(())
    }

    /// Decides `action` for the caller of `req`: allowed, or refused with
    /// `PermissionDenied` (logged and audited).
    pub async fn authorize<T>(&self, req: &Request<T>, action: Action) -> Result<Allowed, Status> {
        let action = Action {
            repository: action.repository.as_deref().map(repository),
            ..action
        };
        self.authorize_exact(req, action).await
    }

    /// [`authorize`](Self::authorize) for a repository name that is not a
    /// Docker repository (a TUF 1.0 repository's `tuf:…` name): matched as
    /// given.
    pub async fn authorize_exact<T>(
        &self,
        req: &Request<T>,
        action: Action,
    ) -> Result<Allowed, Status> {
        let caller = caller_of(req).await?;
        self.decide(&caller, action).await
    }

    /// [`authorize`](Self::authorize) for a caller already resolved with
    /// [`caller_of`]: a request naming many repositories looks its caller
    /// up once (`/proc` and the user database), not once a repository.
    pub async fn authorize_as(&self, caller: &Caller, action: Action) -> Result<Allowed, Status> {
        let action = Action {
            repository: action.repository.as_deref().map(repository),
            ..action
        };
        self.decide(caller, action).await
    }

    /// Asks the policy whether `caller` may do `action` (its repository
    /// already normalized); a refusal is logged and audited.
    async fn decide(&self, caller: &Caller, action: Action) -> Result<Allowed, Status> {
        let decision = self.policy().check(caller, &action);
        match decision {
            Decision::Allow { roles, grant } => {
                tracing::debug!(caller = %caller.describe(), action = %action.describe(), "allowed");
                Ok(Allowed {
                    caller: caller.clone(),
                    action,
                    roles,
                    grant,
                })
            }
            Decision::Deny { needed } => {
                tracing::warn!(caller = %caller.describe(), pid = ?caller.pid, action = %action.describe(), "refused by policy");
                let entry = Entry {
                    phase: Phase::Denied,
                    caller: record(caller),
                    operation: action.op.as_str().into(),
                    repositories: action.repository.iter().cloned().collect(),
                    roles: action.roles.clone(),
                    key_ids: Vec::new(),
                    tags: Vec::new(),
                    published: Vec::new(),
                    detail: String::new(),
                    result: "denied".into(),
                };
                // Refused either way; an audit failure is logged by append.
                let _ = self.append(entry).await;
                Err(Status::permission_denied(format!(
                    "permission denied: {needed}"
                )))
            }
        }
    }
}

/// An allowed request.
pub struct Allowed {
    /// Who.
    pub caller: Caller,
    /// What.
    pub action: Action,
    /// The roles it may write.
    pub roles: RoleScope,
    /// Why it was allowed.
    pub grant: Grant,
}

impl Allowed {
    /// Root or the admin group (every operation allowed).
    pub fn is_admin(&self) -> bool {
        matches!(self.grant, Grant::Root | Grant::AdminGroup(_))
    }
}

/// What an audited operation touches, beyond its action.
#[derive(Default)]
pub struct Details {
    /// More repositories (a multi-repository sign or signer add).
    pub repositories: Vec<String>,
    /// Keys used, created or deleted.
    pub key_ids: Vec<String>,
    /// Tags and digests.
    pub tags: Vec<TagRecord>,
    /// Signer, token, target.
    pub detail: String,
}

/// A `begin` record written (and durable); [`Audited::end`] completes it.
pub struct Audited {
    gate: Arc<Gate>,
    entry: Entry,
}

impl Allowed {
    /// Writes the `begin` record; an unwritable audit log refuses the
    /// operation.
    pub async fn begin(&self, gate: &Arc<Gate>, details: Details) -> Result<Audited, Status> {
        let entry = self.begin_entry(details);
        gate.begin(entry.clone()).await?;
        Ok(Audited {
            gate: gate.clone(),
            entry,
        })
    }

    /// The `begin` record of this operation with `details`.
    fn begin_entry(&self, details: Details) -> Entry {
        // In order, each once: a set beside the list keeps it linear (a
        // request names up to MAX_REPOSITORIES_PER_REQUEST of them).
        let mut repositories: Vec<String> = self.action.repository.iter().cloned().collect();
        let mut seen: HashSet<String> = repositories.iter().cloned().collect();
        for r in details.repositories {
            if seen.insert(r.clone()) {
                repositories.push(r);
            }
        }
        Entry {
            phase: Phase::Begin,
            caller: record(&self.caller),
            operation: self.action.op.as_str().into(),
            repositories,
            roles: self.action.roles.clone(),
            key_ids: details.key_ids,
            tags: details.tags,
            published: Vec::new(),
            detail: details.detail,
            result: String::new(),
        }
    }
}

impl Allowed {
    /// [`Allowed::begin`] for an operation that works without effect
    /// before its first effect (a sign reads, verifies and signs before it
    /// publishes): the `begin` line is written, and the wait for its
    /// fdatasync is returned, for the operation to await right before that
    /// effect, so the sync runs beside the work instead of before it.
    pub async fn begin_before_effect(
        &self,
        gate: &Arc<Gate>,
        details: Details,
    ) -> Result<(Audited, crate::trust::BeforeEffect), Status> {
        let entry = self.begin_entry(details);
        let synced = gate.begin_line(entry.clone()).await?;
        let before: crate::trust::BeforeEffect = Box::pin(async move {
            match synced {
                Some(s) => s.wait().await,
                None => Ok(()),
            }
        });
        Ok((
            Audited {
                gate: gate.clone(),
                entry,
            },
            before,
        ))
    }
}

impl Audited {
    /// Replaces the recorded tags (digests resolved while running).
    pub fn set_tags(&mut self, tags: Vec<TagRecord>) {
        self.entry.tags = tags;
    }

    /// [`end`](Self::end) with the outcome of `result` (its error text on
    /// failure) and the key IDs that took part.
    pub async fn end_with<T, E: std::fmt::Display>(
        self,
        result: &Result<T, E>,
        key_ids: Vec<String>,
    ) -> Result<(), Status> {
        let result = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        self.end(result, key_ids, Vec::new()).await
    }

    /// Writes the outcome; `Err` when it cannot be recorded (the client
    /// then learns the record is missing).
    pub async fn end(
        mut self,
        result: Result<(), String>,
        key_ids: Vec<String>,
        published: Vec<Published>,
    ) -> Result<(), Status> {
        self.entry.phase = Phase::End;
        for k in key_ids {
            if !self.entry.key_ids.contains(&k) {
                self.entry.key_ids.push(k);
            }
        }
        self.entry.published = published;
        self.entry.result = match result {
            Ok(()) => "ok".into(),
            Err(e) => format!("error: {e}"),
        };
        // The begin line (operation, caller, repositories, tags) was durable
        // before the operation; the end line (outcome, versions published)
        // follows it in the chain and is synced right after the answer.
        self.gate.end(self.entry).await
    }
}

/// The `Operation` a `policy check` names.
pub fn parse_operation(s: &str) -> Result<Operation, Status> {
    s.parse().map_err(Status::invalid_argument)
}

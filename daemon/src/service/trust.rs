//! `tufd.v1.Trust`: Docker Content Trust operations.
//!
//! Each mutating call runs in its own task and streams its events; the
//! operation completes even when the client goes away, so a transaction is
//! never cut off halfway by a closed terminal.

use super::gate::{Allowed, Audited, Details, Gate, caller_of};
use super::{caller, key_status_code};
use crate::audit::{Published, TagRecord};
use crate::policy::{Action, Decision, Operation, RoleScope};
use crate::trust::inspect;
use crate::trust::txn::Change;
use crate::trust::verify::{Outcome, TagVerdict, VerifyMode};
use crate::trust::{
    Event, EventSink, IfMissing, MayInit, RoleFilter, RotateRole, ServerChoice, TagSpec, Trust,
    TrustError, parse_digest,
};
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use tufd_proto::v1::{self, trust_server};

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::TrustEvent, Status>> + Send>>;

/// Trust operations over the trust layer.
pub struct TrustService {
    trust: Arc<Trust>,
    gate: Arc<Gate>,
}

impl TrustService {
    /// Trust operations, each request through `gate`.
    pub fn new(trust: Arc<Trust>, gate: Arc<Gate>) -> Self {
        Self { trust, gate }
    }

    /// Authorizes `op` on every repository or reference in `names` (each
    /// refusal audited; the first one answers), the caller looked up once.
    /// More than [`MAX_REPOSITORIES_PER_REQUEST`] names are refused before
    /// any of them is looked at.
    async fn authorize_all<T>(
        &self,
        req: &Request<T>,
        op: Operation,
        names: &[String],
        roles: &[String],
    ) -> Result<Vec<Allowed>, Status> {
        if names.is_empty() {
            return Err(Status::invalid_argument("give at least one repository"));
        }
        at_most(op, names.len())?;
        let caller = caller_of(req).await?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let action = Action::on(op, n).roles(roles.iter().cloned());
            out.push(self.gate.authorize_as(&caller, action).await?);
        }
        let repositories: Vec<String> = out
            .iter()
            .filter_map(|a| a.action.repository.clone())
            .collect();
        self.check_server_choice(req, &repositories)?;
        Ok(out)
    }

    /// Authorizes an inspection of every repository the request names.
    async fn authorize_inspect(&self, req: &Request<v1::InspectRequest>) -> Result<(), Status> {
        self.authorize_all(req, Operation::Inspect, &req.get_ref().repositories, &[])
            .await
            .map(drop)
    }

    /// The caller's choice of notary server ([`SERVER_HEADER`]), checked
    /// against the daemon's configured servers for `repositories`.
    fn check_server_choice<T>(
        &self,
        req: &Request<T>,
        repositories: &[String],
    ) -> Result<(), Status> {
        let Some(value) = req.metadata().get(SERVER_HEADER) else {
            return Ok(());
        };
        let choice = value
            .to_str()
            .map_err(|_| Status::invalid_argument(format!("{SERVER_HEADER}: not a URL")))?;
        if choice.trim().is_empty() {
            return Ok(());
        }
        self.trust
            .check_server_choice(choice, repositories)
            .map_err(|e| match e {
                ServerChoice::Unknown { configured } => Status::invalid_argument(format!(
                    "the notary server {choice} (DOCKER_CONTENT_TRUST_SERVER or --server) is not one of tufd's; its servers: {}",
                    if configured.is_empty() { "none configured".to_owned() } else { configured.join(", ") }
                )),
                ServerChoice::Elsewhere { repository, server } => Status::invalid_argument(format!(
                    "tufd serves {repository} from {server}, not from {choice} (DOCKER_CONTENT_TRUST_SERVER or --server): unset it, or give {server}"
                )),
            })
    }
}

/// The request metadata carrying the caller's choice of notary server
/// (tufctl sends its DOCKER_CONTENT_TRUST_SERVER or --server there).
pub const SERVER_HEADER: &str = "tufd-notary-server";

/// Up to this many tags are listed in a sign's begin record.
const BEGIN_TAGS: usize = 32;

/// The roles each allowed repository may write, for the trust layer.
fn role_filter(allowed: &[Allowed]) -> RoleFilter {
    let scopes: HashMap<String, RoleScope> = allowed
        .iter()
        .filter_map(|a| Some((a.action.repository.clone()?, a.roles.clone())))
        .collect();
    Arc::new(move |repo: &str, role: &str| {
        scopes
            .get(&super::gate::repository(repo))
            .is_some_and(|s| s.allows(role))
    })
}

/// Writes the `end` record of a trust operation before its result goes out.
async fn finish(
    audit: Audited,
    outcome: Result<Vec<Change>, TrustError>,
) -> Result<Vec<Change>, TrustError> {
    let (result, published) = match &outcome {
        Ok(changes) => (
            Ok(()),
            changes
                .iter()
                .flat_map(|c| {
                    c.published.iter().map(|(role, version)| Published {
                        repository: c.repository.clone(),
                        role: role.clone(),
                        version: *version,
                    })
                })
                .collect(),
        ),
        Err(e) => (Err(e.to_string()), Vec::new()),
    };
    match audit.end(result, Vec::new(), published).await {
        Err(s) if outcome.is_ok() => Err(TrustError::Internal(format!(
            "the operation completed but its audit record could not be written: {}",
            s.message()
        ))),
        _ => outcome,
    }
}

/// Whether the caller of `allowed` may initialize a repository, asked of
/// the policy in force when the transaction finds the repository missing.
fn init_check(gate: &Arc<Gate>, allowed: &Allowed) -> Arc<MayInit> {
    let (gate, caller) = (gate.clone(), allowed.caller.clone());
    Arc::new(move |gun: &str| {
        let action = Action::on(Operation::Init, &super::gate::repository(gun));
        match gate.policy().check(&caller, &action) {
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { needed } => {
                tracing::warn!(caller = %caller.describe(), action = %action.describe(),
                    "refused by policy: the repository does not exist");
                Err(needed)
            }
        }
    })
}

/// Maps a trust error to the status a client acts on.
pub(crate) fn status(e: TrustError) -> Status {
    let message = e.to_string();
    let mut inner = &e;
    loop {
        inner = match inner {
            TrustError::Partial { source, .. } | TrustError::Undone { source, .. } => source,
            TrustError::Shared(source) => source,
            _ => break,
        };
    }
    let code = match inner {
        TrustError::Remote { source, .. } => {
            if source.is_not_found() {
                Code::NotFound
            } else if source.is_transient() {
                Code::Unavailable
            } else {
                Code::FailedPrecondition
            }
        }
        TrustError::Metadata { .. } => Code::FailedPrecondition,
        TrustError::Registry { source, .. } => {
            if source.is_transient() {
                Code::Unavailable
            } else {
                Code::FailedPrecondition
            }
        }
        TrustError::Keyring(k) => key_status_code(k),
        TrustError::NotFound(_) => Code::NotFound,
        TrustError::NoKey(_) | TrustError::Denied { .. } => Code::PermissionDenied,
        TrustError::Refused(_) => Code::FailedPrecondition,
        TrustError::InvalidRequest(_) => Code::InvalidArgument,
        TrustError::Contended { .. } => Code::Aborted,
        TrustError::Store { .. } | TrustError::Internal(_) => Code::Internal,
        TrustError::Busy(_) => Code::ResourceExhausted,
        TrustError::Unrecorded(_) => Code::Unavailable,
        TrustError::Unverified { .. } => Code::DataLoss,
        TrustError::RolledBack { .. } => Code::FailedPrecondition,
        TrustError::Partial { .. } | TrustError::Undone { .. } | TrustError::Shared(_) => {
            unreachable!("unwrapped above")
        }
    };
    Status::new(code, message)
}

fn event(e: Event) -> v1::TrustEvent {
    v1::TrustEvent {
        event: Some(match e {
            Event::Progress {
                repository,
                message,
            } => v1::trust_event::Event::Progress(v1::Progress {
                repository,
                message,
            }),
            Event::Touch {
                repository,
                device,
                serial,
                role,
            } => v1::trust_event::Event::Touch(v1::TouchRequest {
                device,
                serial,
                role,
                repository,
            }),
        }),
    }
}

fn result(changes: Vec<Change>) -> v1::TrustEvent {
    v1::TrustEvent {
        event: Some(v1::trust_event::Event::Result(v1::TrustResult {
            changes: changes
                .into_iter()
                .map(|c| v1::RepositoryChange {
                    repository: c.repository,
                    initialized: c.initialized,
                    published: c
                        .published
                        .into_iter()
                        .map(|(role, version)| v1::RoleVersion { role, version })
                        .collect(),
                    summary: c.summary,
                    attempts: c.attempts,
                })
                .collect(),
        })),
    }
}

/// Runs `op` in its own task, streaming its events and then its result.
fn stream<F, Fut>(op: F) -> Response<EventStream>
where
    F: FnOnce(EventSink) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Vec<Change>, TrustError>> + Send + 'static,
{
    let (out, rx) = tokio::sync::mpsc::channel(32);
    let (sink, mut events) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let forward = {
            let out = out.clone();
            tokio::spawn(async move {
                while let Some(e) = events.recv().await {
                    // A departed client does not stop the operation.
                    let _ = out.send(Ok(event(e))).await;
                }
            })
        };
        let outcome = op(sink).await;
        let _ = forward.await;
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, "trust operation failed");
        }
        let _ = out.send(outcome.map(result).map_err(status)).await;
        // Large transactions leave freed arenas behind; give them back,
        // after the answer and off the executor.
        crate::memory::release_later();
    });
    Response::new(Box::pin(ReceiverStream::new(rx)))
}

fn verification(v: TagVerdict) -> v1::TagVerification {
    let digest = |d: &[u8; 32]| format!("sha256:{}", hex::encode(d));
    let mut out = v1::TagVerification {
        repository: v.repository,
        tag: v.tag,
        mode: v.mode.as_str().to_owned(),
        warnings: v.warnings,
        ..Default::default()
    };
    let registry = |out: &mut v1::TagVerification, r: Result<([u8; 32], u64), String>| match r {
        Ok((d, size)) => {
            out.digest = digest(&d);
            out.size = size;
        }
        Err(e) => {
            if !out.reason.is_empty() {
                out.reason.push_str("; ");
            }
            out.reason
                .push_str(&format!("the registry could not be read: {e}"));
        }
    };
    match v.outcome {
        Outcome::Trusted {
            digest: d,
            size,
            role,
            signers,
        } => {
            out.status = "trusted".into();
            out.digest = digest(&d);
            out.size = size;
            out.role = role;
            out.signers = signers;
        }
        Outcome::Refused { reason } => {
            out.status = "refused".into();
            out.reason = reason;
        }
        Outcome::Unverified {
            reason,
            registry: r,
        } => {
            out.status = "unverified".into();
            out.reason = reason;
            registry(&mut out, r);
        }
        Outcome::Unchecked { registry: r } => {
            out.status = "unchecked".into();
            registry(&mut out, r);
        }
    }
    out
}

/// The most tags one `Sign` request may carry: a repository of 100 000
/// tags signs in one call (one transaction, one publish).
const MAX_TAGS_PER_SIGN: usize = 100_000;

/// The most repositories one request may name: the distinct repositories
/// of a `Sign`'s tags, the repositories of `AddSigner` and `RemoveSigner`,
/// the references of `Verify`, `Inspect` and `InspectStream`.
///
/// Each repository is a transaction or a read of its own (the notary
/// server read, and for a change its publish and read-back, one after
/// another), so 1 000 is already minutes of work for one call and an audit
/// `begin` line of some 60 KB naming them; checking the policy for 1 000
/// takes well under a millisecond. Whoever signs into more splits the
/// request. A large repository is not limited by it: its tags are counted
/// against [`MAX_TAGS_PER_SIGN`] only.
pub const MAX_REPOSITORIES_PER_REQUEST: usize = 1_000;

/// The refusal of a request past [`MAX_REPOSITORIES_PER_REQUEST`]: `named`
/// says what it named, `unit` what is counted.
fn too_many(named: &str, unit: &str) -> Status {
    Status::invalid_argument(format!(
        "{named}; tufd takes at most {MAX_REPOSITORIES_PER_REQUEST} {unit} in one request: split the request into several"
    ))
}

/// Refuses `count` names for `op` past [`MAX_REPOSITORIES_PER_REQUEST`].
fn at_most(op: Operation, count: usize) -> Result<(), Status> {
    if count <= MAX_REPOSITORIES_PER_REQUEST {
        return Ok(());
    }
    let unit = match op {
        Operation::Inspect | Operation::Verify => "references",
        _ => "repositories",
    };
    Err(too_many(&format!("{op}: {count} {unit}"), unit))
}

/// The distinct repositories of a `Sign`'s tags, in the order they first
/// appear; refused, the counting stopped, past
/// [`MAX_REPOSITORIES_PER_REQUEST`]. Linear: a request carries up to
/// [`MAX_TAGS_PER_SIGN`] tags.
fn distinct_repositories(tags: &[v1::TagToSign]) -> Result<Vec<String>, Status> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for t in tags {
        if seen.insert(t.repository.as_str()) {
            if out.len() == MAX_REPOSITORIES_PER_REQUEST {
                return Err(too_many(
                    &format!(
                        "sign: the tags name more than {MAX_REPOSITORIES_PER_REQUEST} repositories"
                    ),
                    "repositories",
                ));
            }
            out.push(t.repository.clone());
        }
    }
    Ok(out)
}

/// The largest request the Trust service decodes: room for
/// [`MAX_TAGS_PER_SIGN`] tags with long names (about 110 bytes a tag with a
/// typical name and a digest: 11 MB for 100 000), stated rather than
/// unlimited. Other services keep the 4 MiB limit; answers stay below it
/// (large inspections are streamed in parts by `InspectStream`).
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

type InspectStream = Pin<Box<dyn Stream<Item = Result<v1::InspectPart, Status>> + Send>>;

/// Reads `reference`'s repository and sends its inspection in parts. The
/// inspection is computed off the executor; a departed client ends it.
async fn inspect_into(
    trust: &Trust,
    reference: String,
    out: &tokio::sync::mpsc::Sender<Result<v1::InspectPart, Status>>,
) -> Result<(), Status> {
    let (repo, _) = tufd_proto::names::maybe_tagged(&reference)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let fetched = trust.read(&repo).await.map_err(status)?;
    let inspection = tokio::task::spawn_blocking(move || {
        inspect::inspect(&reference, &fetched.repo, time::OffsetDateTime::now_utc())
    })
    .await
    .map_err(|e| Status::internal(format!("inspect: {e}")))?;
    for part in super::inspect::parts(inspection) {
        if out.send(Ok(part)).await.is_err() {
            break;
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl trust_server::Trust for TrustService {
    type AddSignerStream = EventStream;
    type RemoveSignerStream = EventStream;
    type SignStream = EventStream;
    type RevokeStream = EventStream;
    type RotateKeyStream = EventStream;
    type RepairStream = EventStream;
    type InspectStreamStream = InspectStream;

    async fn repair(
        &self,
        req: Request<v1::RepairRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let repos = [req.get_ref().repository.clone()];
        let allowed = self
            .authorize_all(&req, Operation::Repair, &repos, &[])
            .await?;
        let audit = allowed[0].begin(&self.gate, Details::default()).await?;
        let r = req.into_inner();
        tracing::info!(caller = %who, repository = %r.repository, "repair");
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
            let outcome = trust.repair(&r.repository, &sink).await.map(|c| vec![c]);
            finish(audit, outcome).await
        }))
    }

    async fn forget(
        &self,
        req: Request<v1::ForgetRequest>,
    ) -> Result<Response<v1::ForgetResponse>, Status> {
        let who = caller(&req);
        let repos = [req.get_ref().repository.clone()];
        // Forgetting a repository's trusted root is as weighty as repairing
        // it: the next read trusts whatever root the server serves.
        let allowed = self
            .authorize_all(&req, Operation::Repair, &repos, &[])
            .await?;
        let audit = allowed[0]
            .begin(
                &self.gate,
                Details {
                    detail: "trust forget".into(),
                    ..Default::default()
                },
            )
            .await?;
        let r = req.into_inner();
        tracing::info!(caller = %who, repository = %r.repository, "trust forget");
        let forgotten = self.trust.forget(&r.repository).await;
        audit.end_with(&forgotten, vec![]).await?;
        let forgotten = forgotten.map_err(status)?;
        Ok(Response::new(v1::ForgetResponse { forgotten }))
    }

    async fn add_signer(
        &self,
        req: Request<v1::AddSignerRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let (repos, roles) = (
            &req.get_ref().repositories,
            [format!("targets/{}", req.get_ref().signer)],
        );
        let allowed = self
            .authorize_all(&req, Operation::SignerAdd, repos, &roles)
            .await?;
        // Adding a signer to a repository that does not exist initializes
        // it: that needs "init" too (admins have it; others are asked).
        // The transaction decides, when its read finds no repository
        // (`may_init`); this read only refuses early, with the refusal
        // audited as such, when it already sees none.
        for a in allowed.iter().filter(|a| !a.is_admin()) {
            let repo = a.action.repository.clone().unwrap_or_default();
            if let Err(TrustError::NotFound(_)) = self.trust.read(&repo).await {
                self.gate
                    .authorize_as(&a.caller, Action::on(Operation::Init, &repo))
                    .await?;
            }
        }
        let may_init = init_check(&self.gate, &allowed[0]);
        let audit = allowed[0]
            .begin(
                &self.gate,
                Details {
                    repositories: repos.clone(),
                    detail: format!("signer {}", req.get_ref().signer),
                    ..Default::default()
                },
            )
            .await?;
        let r = req.into_inner();
        tracing::info!(caller = %who, signer = %r.signer, repositories = ?r.repositories, "signer add");
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
            let outcome = trust
                .add_signer(
                    &r.signer,
                    &r.repositories,
                    &r.public_key_pem,
                    IfMissing {
                        token: &r.token,
                        client_snapshot: r.client_snapshot,
                        may_init: &*may_init,
                    },
                    &sink,
                )
                .await;
            finish(audit, outcome).await
        }))
    }

    async fn remove_signer(
        &self,
        req: Request<v1::RemoveSignerRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let (repos, roles) = (
            &req.get_ref().repositories,
            [format!("targets/{}", req.get_ref().signer)],
        );
        let allowed = self
            .authorize_all(&req, Operation::SignerRemove, repos, &roles)
            .await?;
        let audit = allowed[0]
            .begin(
                &self.gate,
                Details {
                    repositories: repos.clone(),
                    detail: format!("signer {}", req.get_ref().signer),
                    ..Default::default()
                },
            )
            .await?;
        let r = req.into_inner();
        tracing::info!(caller = %who, signer = %r.signer, repositories = ?r.repositories, force = r.force, "signer remove");
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
            let outcome = trust
                .remove_signer(&r.signer, &r.repositories, r.force, &sink)
                .await;
            finish(audit, outcome).await
        }))
    }

    async fn sign(&self, req: Request<v1::SignRequest>) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let count = req.get_ref().tags.len();
        if count == 0 || count > MAX_TAGS_PER_SIGN {
            return Err(Status::invalid_argument(format!(
                "sign: give 1 to {MAX_TAGS_PER_SIGN} tags (got {count})"
            )));
        }
        let repos = distinct_repositories(&req.get_ref().tags)?;
        let allowed = self
            .authorize_all(&req, Operation::Sign, &repos, &[])
            .await?;
        let filter = role_filter(&allowed);
        let records = |tags: &mut dyn Iterator<Item = (String, String, String)>| {
            tags.map(|(repository, tag, digest)| TagRecord {
                repository,
                tag,
                digest,
            })
            .collect::<Vec<_>>()
        };
        let given = records(
            &mut req
                .get_ref()
                .tags
                .iter()
                .map(|t| (t.repository.clone(), t.tag.clone(), t.digest.clone())),
        );
        // A large batch's tags go into the end record only: its begin line
        // stays small, so syncing it costs no more than for one tag.
        let count = given.len();
        let (given, detail) = if count <= BEGIN_TAGS {
            (given, String::new())
        } else {
            (
                Vec::new(),
                format!("{count} tags; tags and digests in the end record"),
            )
        };
        // A request refused as malformed is refused before its begin
        // record (a begin line is always followed by its end line).
        if let Some(t) = req
            .get_ref()
            .tags
            .iter()
            .find(|t| !t.digest.is_empty() && t.size == 0)
        {
            return Err(Status::invalid_argument(format!(
                "sign {}:{}: size 0 is no manifest's size; give the manifest's length in bytes, or no digest to read both from the registry",
                t.repository, t.tag
            )));
        }
        // The begin line's sync runs beside the read, the intent and the
        // signing, and is awaited right before the publish (the first
        // effect): see `Trust::sign_in`.
        let (mut audit, durable) = allowed[0]
            .begin_before_effect(
                &self.gate,
                Details {
                    repositories: repos.clone(),
                    tags: given,
                    detail,
                    ..Default::default()
                },
            )
            .await?;
        let r = req.into_inner();
        tracing::info!(caller = %who, tags = r.tags.len(), "sign");
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
            let outcome = async {
                let mut tags = Vec::with_capacity(r.tags.len());
                for t in r.tags {
                    let (digest, size) = if t.digest.is_empty() {
                        let _ = sink.send(Event::Progress {
                            repository: t.repository.clone(),
                            message: format!(
                                "reading the manifest of {}:{} from the registry",
                                t.repository, t.tag
                            ),
                        });
                        trust.resolve(&t.repository, &t.tag).await?
                    } else {
                        (parse_digest(&t.digest)?, t.size)
                    };
                    tags.push(TagSpec {
                        repository: t.repository,
                        tag: t.tag,
                        digest,
                        size,
                    });
                }
                audit.set_tags(records(&mut tags.iter().map(|t| {
                    (
                        t.repository.clone(),
                        t.tag.clone(),
                        format!("sha256:{}", hex::encode(t.digest)),
                    )
                })));
                trust.sign_in(&tags, filter, &sink, Some(durable)).await
            }
            .await;
            finish(audit, outcome).await
        }))
    }

    async fn revoke(
        &self,
        req: Request<v1::RevokeRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let repos = [req.get_ref().repository.clone()];
        let allowed = self
            .authorize_all(&req, Operation::Revoke, &repos, &[])
            .await?;
        let filter = role_filter(&allowed);
        let tags = vec![TagRecord {
            repository: repos[0].clone(),
            tag: req.get_ref().tag.clone(),
            digest: String::new(),
        }];
        let audit = allowed[0]
            .begin(
                &self.gate,
                Details {
                    tags,
                    ..Default::default()
                },
            )
            .await?;
        let r = req.into_inner();
        tracing::info!(caller = %who, repository = %r.repository, tag = %r.tag, "revoke");
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
            let tag = (!r.tag.is_empty()).then_some(r.tag.as_str());
            let outcome = trust
                .revoke_in(&r.repository, tag, filter, &sink)
                .await
                .map(|c| vec![c]);
            finish(audit, outcome).await
        }))
    }

    async fn rotate_key(
        &self,
        req: Request<v1::RotateKeyRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let r = req.get_ref().clone();
        let which = match r.role.as_str() {
            "root" => RotateRole::Root,
            "targets" => RotateRole::Targets,
            "snapshot" => RotateRole::Snapshot {
                server_managed: r.server_managed,
            },
            "timestamp" => RotateRole::Timestamp,
            other => {
                return Err(Status::invalid_argument(format!(
                    "role {other:?}: rotate root, targets, snapshot or timestamp"
                )));
            }
        };
        let repos = [r.repository.clone()];
        let allowed = self
            .authorize_all(
                &req,
                Operation::Rotate,
                &repos,
                std::slice::from_ref(&r.role),
            )
            .await?;
        let audit = allowed[0]
            .begin(
                &self.gate,
                Details {
                    detail: format!("rotate {}", r.role),
                    ..Default::default()
                },
            )
            .await?;
        tracing::info!(caller = %who, repository = %r.repository, role = %r.role, "key rotate");
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
            let outcome = trust
                .rotate(&r.repository, which, &r.token, &sink)
                .await
                .map(|c| vec![c]);
            finish(audit, outcome).await
        }))
    }

    async fn inspect(
        &self,
        req: Request<v1::InspectRequest>,
    ) -> Result<Response<v1::InspectResponse>, Status> {
        self.authorize_inspect(&req).await?;
        let r = req.into_inner();
        let mut out = Vec::new();
        for reference in r.repositories {
            let (repo, _) = tufd_proto::names::maybe_tagged(&reference)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            let fetched = self.trust.read(&repo).await.map_err(status)?;
            // Off the executor, as InspectStream does: a repository may
            // hold 100 000 tags.
            let inspection = tokio::task::spawn_blocking(move || {
                inspect::inspect(&reference, &fetched.repo, time::OffsetDateTime::now_utc())
            })
            .await
            .map_err(|e| Status::internal(format!("inspect: {e}")))?;
            out.push(super::inspect::whole(inspection));
        }
        Ok(Response::new(v1::InspectResponse { repositories: out }))
    }

    async fn inspect_stream(
        &self,
        req: Request<v1::InspectRequest>,
    ) -> Result<Response<InspectStream>, Status> {
        self.authorize_inspect(&req).await?;
        let references = req.into_inner().repositories;
        for reference in &references {
            tufd_proto::names::maybe_tagged(reference)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        let trust = self.trust.clone();
        // A few parts in flight: the daemon encodes while the client reads,
        // and a slow reader holds back the daemon, not its memory.
        let (out, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for reference in references {
                let outcome = inspect_into(&trust, reference, &out).await;
                crate::memory::release_later();
                if let Err(e) = outcome {
                    let _ = out.send(Err(e)).await;
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn verify(
        &self,
        req: Request<v1::VerifyRequest>,
    ) -> Result<Response<v1::VerifyResponse>, Status> {
        let who = caller(&req);
        self.authorize_all(&req, Operation::Verify, &req.get_ref().references, &[])
            .await?;
        let r = req.into_inner();
        let mode = match r.mode.as_str() {
            "" => None,
            m => Some(m.parse::<VerifyMode>().map_err(Status::invalid_argument)?),
        };
        tracing::info!(caller = %who, references = ?r.references, mode = %r.mode, "verify");
        let verdicts = self
            .trust
            .verify(&r.references, mode)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::VerifyResponse {
            tags: verdicts.into_iter().map(verification).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(repository: &str) -> v1::TagToSign {
        v1::TagToSign {
            repository: repository.into(),
            tag: "v1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_signs_repositories_are_counted_once_each_in_order_up_to_the_cap() {
        let tags: Vec<_> = ["b/x", "a/x", "b/x", "c/x", "a/x"]
            .into_iter()
            .map(tag)
            .collect();
        assert_eq!(distinct_repositories(&tags).unwrap(), ["b/x", "a/x", "c/x"]);

        // Many tags of few repositories: within the cap.
        let at: Vec<_> = (0..10 * MAX_REPOSITORIES_PER_REQUEST)
            .map(|n| tag(&format!("r/{}", n % MAX_REPOSITORIES_PER_REQUEST)))
            .collect();
        assert_eq!(
            distinct_repositories(&at).unwrap().len(),
            MAX_REPOSITORIES_PER_REQUEST
        );
        let mut over = at;
        over.push(tag("r/one-more"));
        let refused = distinct_repositories(&over).unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(
            refused.message().contains("split the request"),
            "{refused:?}"
        );
    }

    #[test]
    fn lists_past_the_cap_are_refused_naming_what_was_counted() {
        assert!(at_most(Operation::Verify, MAX_REPOSITORIES_PER_REQUEST).is_ok());
        let refused = at_most(Operation::Verify, MAX_REPOSITORIES_PER_REQUEST + 1).unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(
            refused.message().starts_with("verify: 1001 references;")
                && refused
                    .message()
                    .contains("at most 1000 references in one request: split the request"),
            "{refused:?}"
        );
        let refused = at_most(Operation::SignerAdd, 5_000).unwrap_err();
        assert!(
            refused.message().contains("5000 repositories"),
            "{refused:?}"
        );
    }
}

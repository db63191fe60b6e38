//! `tufd.v1.Trust`: Docker Content Trust operations.
//!
//! Each mutating call runs in its own task and streams its events; the
//! operation completes even when the client goes away, so a transaction is
//! never cut off halfway by a closed terminal.

use super::{caller, key_status_code};
use crate::trust::inspect::{self, Inspection};
use crate::trust::txn::Change;
use crate::trust::{Event, EventSink, RotateRole, TagSpec, Trust, TrustError, parse_digest};
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
}

impl TrustService {
    pub fn new(trust: Arc<Trust>) -> Self {
        Self { trust }
    }
}

/// Maps a trust error to the status a client acts on.
pub(crate) fn status(e: TrustError) -> Status {
    let message = e.to_string();
    let mut inner = &e;
    while let TrustError::Partial { source, .. } = inner {
        inner = source;
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
        TrustError::NoKey(_) => Code::PermissionDenied,
        TrustError::Refused(_) => Code::FailedPrecondition,
        TrustError::InvalidRequest(_) => Code::InvalidArgument,
        TrustError::Contended { .. } => Code::Aborted,
        TrustError::Store { .. } | TrustError::Internal(_) => Code::Internal,
        TrustError::Partial { .. } => unreachable!("unwrapped above"),
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
    });
    Response::new(Box::pin(ReceiverStream::new(rx)))
}

fn inspection(i: Inspection) -> v1::RepositoryInspection {
    let keys = |v: Vec<inspect::RoleKeys>| {
        v.into_iter()
            .map(|r| v1::RoleKeyList {
                name: r.name,
                key_ids: r.key_ids,
            })
            .collect()
    };
    v1::RepositoryInspection {
        name: i.name,
        signed_tags: i
            .signed_tags
            .into_iter()
            .map(|t| v1::SignedTag {
                tag: t.tag,
                digest: t.digest,
                size: t.size,
                signers: t.signers,
            })
            .collect(),
        signers: keys(i.signers),
        administrative_keys: keys(i.administrative_keys),
        expiry_warnings: i
            .expiry_warnings
            .into_iter()
            .map(|w| v1::ExpiryWarning {
                role: w.role,
                expires: tufd_tuf::expiry::format_go_time(w.expires).unwrap_or_default(),
            })
            .collect(),
    }
}

/// The most tags one `Sign` request may carry.
const MAX_TAGS_PER_SIGN: usize = 1000;

#[tonic::async_trait]
impl trust_server::Trust for TrustService {
    type AddSignerStream = EventStream;
    type RemoveSignerStream = EventStream;
    type SignStream = EventStream;
    type RevokeStream = EventStream;
    type RotateKeyStream = EventStream;

    async fn add_signer(
        &self,
        req: Request<v1::AddSignerRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        tracing::info!(caller = %who, signer = %r.signer, repositories = ?r.repositories, "signer add");
        if r.repositories.is_empty() {
            return Err(Status::invalid_argument(
                "signer add: name at least one repository",
            ));
        }
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
            trust
                .add_signer(
                    &r.signer,
                    &r.repositories,
                    &r.public_key_pem,
                    &r.token,
                    r.client_snapshot,
                    &sink,
                )
                .await
        }))
    }

    async fn remove_signer(
        &self,
        req: Request<v1::RemoveSignerRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        tracing::info!(caller = %who, signer = %r.signer, repositories = ?r.repositories, force = r.force, "signer remove");
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
            trust
                .remove_signer(&r.signer, &r.repositories, r.force, &sink)
                .await
        }))
    }

    async fn sign(&self, req: Request<v1::SignRequest>) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        tracing::info!(caller = %who, tags = r.tags.len(), "sign");
        if r.tags.is_empty() || r.tags.len() > MAX_TAGS_PER_SIGN {
            return Err(Status::invalid_argument(format!(
                "sign: give 1 to {MAX_TAGS_PER_SIGN} tags (got {})",
                r.tags.len()
            )));
        }
        if let Some(t) = r.tags.iter().find(|t| !t.digest.is_empty() && t.size == 0) {
            return Err(Status::invalid_argument(format!(
                "sign {}:{}: size 0 is no manifest's size; give the manifest's length in bytes, or no digest to read both from the registry",
                t.repository, t.tag
            )));
        }
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
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
            trust.sign(&tags, &sink).await
        }))
    }

    async fn revoke(
        &self,
        req: Request<v1::RevokeRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        tracing::info!(caller = %who, repository = %r.repository, tag = %r.tag, "revoke");
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
            let tag = (!r.tag.is_empty()).then_some(r.tag.as_str());
            trust
                .revoke(&r.repository, tag, &sink)
                .await
                .map(|c| vec![c])
        }))
    }

    async fn rotate_key(
        &self,
        req: Request<v1::RotateKeyRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
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
        tracing::info!(caller = %who, repository = %r.repository, role = %r.role, "key rotate");
        let trust = self.trust.clone();
        Ok(stream(move |sink| async move {
            trust
                .rotate(&r.repository, which, &r.token, &sink)
                .await
                .map(|c| vec![c])
        }))
    }

    async fn inspect(
        &self,
        req: Request<v1::InspectRequest>,
    ) -> Result<Response<v1::InspectResponse>, Status> {
        let r = req.into_inner();
        let mut out = Vec::new();
        for reference in r.repositories {
            let (repo, _) = inspect::split_reference(&reference);
            let fetched = self.trust.read(repo).await.map_err(status)?;
            out.push(inspection(inspect::inspect(
                &reference,
                &fetched.repo,
                time::OffsetDateTime::now_utc(),
            )));
        }
        Ok(Response::new(v1::InspectResponse { repositories: out }))
    }
}

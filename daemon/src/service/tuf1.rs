//! `tufd.v1.Tuf`: TUF 1.0 repositories, adapted to the repository manager.
//!
//! Every request names a repository that must resolve in the configured
//! places ([`Places`]: a configured name, or a path inside a root; target
//! files inside a root or source directory), then passes the policy as
//! `tuf:NAME` or `tuf:/canonical/path`: `tuf init` is `init`; `tuf add`
//! is `sign` and `tuf remove` is `revoke` on the role written (`targets`
//! unless a delegated role is named); `tuf status` is `inspect`; `tuf
//! refresh` is `sign` on snapshot and timestamp (and the roles it names);
//! `tuf delegate` is `signer-add` on the new role, `tuf undelegate`
//! `signer-remove` on the removed one; `tuf rotate` is `rotate` on the role;
//! staging and publishing a root change are `rotate` on `root`. Signing a
//! staged change is `rotate` on `root` of the repository the change names
//! when this daemon manages it (only that repository's keys sign it), and
//! of any repository on a root key holder's daemon (which manages none:
//! no repository's keys sign it). A holder's key NAME (a key of no
//! repository) signs a staged or new root only for a caller also allowed
//! `rotate` on role `targets/NAME`, as the policy calls such keys; keys
//! not used are named in the answer with why. Changes are audited (begin,
//! end) like the trust operations.

use std::path::Path;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use tufd_proto::v1::{self, tuf_server};

use super::gate::{Allowed, Audited, Details, Gate};
use super::key_status_code;
use crate::policy::{Action, Caller, Decision, Operation};
use crate::tuf1::dir::Beneath;
use crate::tuf1::places::{Place, Places};
use crate::tuf1::registry::format_time;
use crate::tuf1::scope::{HolderCheck, KeyScope};
use crate::tuf1::staged::Staged;
use crate::tuf1::{
    AddTarget, DelegateRequest, InitRequest, RepoError, RepoStatus, StagedReport, Tuf1,
};

/// The most targets one request may add or remove.
const MAX_TARGETS_PER_REQUEST: usize = 10_000;

/// TUF 1.0 operations over [`Tuf1`].
pub struct TufService {
    tuf: Arc<Tuf1>,
    places: Arc<Places>,
    gate: Arc<Gate>,
}

impl TufService {
    /// The service over a repository manager, its configured places and
    /// the policy's gate.
    pub fn new(tuf: Arc<Tuf1>, places: Places, gate: Arc<Gate>) -> Self {
        Self {
            tuf,
            places: Arc::new(places),
            gate,
        }
    }

    /// Asks the policy about the repository as the caller named it, then
    /// (only for a caller allowed that) resolves it on disk and asks about
    /// what it resolved to, when that is another name.
    async fn allow<T>(
        &self,
        req: &Request<T>,
        given: &str,
        op: Operation,
        roles: Vec<String>,
    ) -> Result<(Place, Allowed), Status> {
        let refused = |e: RepoError| {
            if matches!(e, RepoError::Refused(_)) {
                tracing::warn!(directory = given, error = %e, "tuf request refused");
            }
            status(e)
        };
        let claimed = self.places.claim(given).map_err(refused)?;
        let action = Action::on(op, &claimed).roles(roles.clone());
        let allowed = self.gate.authorize_exact(req, action).await?;
        let place = self.places.resolve(given).map_err(refused)?;
        if place.resource == claimed {
            return Ok((place, allowed));
        }
        let action = Action::on(op, &place.resource).roles(roles);
        let allowed = self.gate.authorize_exact(req, action).await?;
        Ok((place, allowed))
    }

    /// Where the target file `given` is opened, if the caller may have the
    /// daemon read it for `place`: a file inside `place` itself or a
    /// `sources` directory, or one whose holder the caller may sign (see
    /// [`Places::source`]).
    async fn readable<T>(
        &self,
        req: &Request<T>,
        place: &Place,
        given: &str,
    ) -> Result<Beneath, RepoError> {
        let may_sign = |resource: String| async move {
            self.gate
                .authorize_exact(req, Action::on(Operation::Sign, &resource))
                .await
                .map(drop)
                .map_err(|denied| {
                    RepoError::Refused(format!(
                        "target file {given}: {}; the daemon reads a file for you only from this repository, a tuf.sources directory, or a place you may sign",
                        denied.message()
                    ))
                })
        };
        // The name as written first: nothing is looked at on disk for a
        // caller who may not sign what holds the file.
        let (written, claimed) = self.places.source_claim(Path::new(given))?;
        if let Some(resource) = claimed
            && !written.starts_with(place.dir())
        {
            may_sign(resource).await?;
        }
        let source = self.places.source(Path::new(given))?;
        if let Some(resource) = source.resource.clone()
            && !source.path().starts_with(place.dir())
        {
            may_sign(resource).await?;
        }
        Ok(source.at)
    }

    /// [`allow`](Self::allow), then the audit's `begin` record.
    async fn admit<T>(
        &self,
        req: &Request<T>,
        given: &str,
        op: Operation,
        roles: Vec<String>,
    ) -> Result<(Place, Audited), Status> {
        let (place, allowed) = self.allow(req, given, op, roles).await?;
        let detail = format!("tuf {op} {}", place.dir().display());
        let audited = allowed
            .begin(
                &self.gate,
                Details {
                    detail,
                    ..Details::default()
                },
            )
            .await?;
        Ok((place, audited))
    }
}

/// Which holders' keys (keys of no repository) `caller` may sign a root
/// with: the key NAME is the role `targets/NAME` (see
/// [`Action::key`]), decided by the policy in force now.
fn holder_keys(gate: &Gate, caller: &Caller) -> HolderCheck {
    let (policy, caller) = (gate.policy(), caller.clone());
    Arc::new(
        move |name| match policy.check(&caller, &Action::key(Operation::Rotate, name, "")) {
            Decision::Allow { .. } => Ok(()),
            Decision::Deny { needed } => Err(needed),
        },
    )
}

/// At most this many characters of a staged change's repository field
/// (written by whoever made the file) go into the audit log.
const MAX_NAMED_REPOSITORY: usize = 256;

/// The events of `tuf sign`: touch requests, then the result.
type SignEvents =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::TufSignEvent, Status>> + Send>>;

fn sign_event(event: v1::tuf_sign_event::Event) -> v1::TufSignEvent {
    v1::TufSignEvent { event: Some(event) }
}

/// Writes the audit's `end` record, then answers.
async fn finish<T, U>(
    audited: Audited,
    result: Result<T, RepoError>,
    f: impl FnOnce(T) -> U,
) -> Result<Response<U>, Status> {
    audited.end_with(&result, Vec::new()).await?;
    result.map(|v| Response::new(f(v))).map_err(status)
}

/// [`finish`] for a staged root change: the keys that signed are recorded.
async fn finish_staged(
    audited: Audited,
    result: Result<StagedReport, RepoError>,
) -> Result<Response<v1::TufStagedChange>, Status> {
    let signed = result
        .as_ref()
        .map(|r| r.signed.clone())
        .unwrap_or_default();
    audited.end_with(&result, signed).await?;
    result
        .map(|r| Response::new(staged_reply(r)))
        .map_err(status)
}

/// Maps a repository error to the status a client acts on.
fn status(e: RepoError) -> Status {
    let code = match &e {
        RepoError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Code::NotFound
        }
        RepoError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            Code::PermissionDenied
        }
        RepoError::Io { .. } | RepoError::Internal(_) => Code::Internal,
        RepoError::Metadata { .. } => Code::FailedPrecondition,
        RepoError::Keyring(k) => key_status_code(k),
        RepoError::NoKey { .. } | RepoError::Waiting(_) => Code::FailedPrecondition,
        RepoError::NotFound(_) => Code::NotFound,
        RepoError::AlreadyExists(_) => Code::AlreadyExists,
        RepoError::InvalidRequest(_) => Code::InvalidArgument,
        RepoError::Busy(_) | RepoError::NameTaken(_) => Code::Aborted,
        RepoError::Inconsistent(_) | RepoError::Interrupted { .. } | RepoError::Expired(_) => {
            Code::FailedPrecondition
        }
        RepoError::Unfinished {
            under_way: true, ..
        } => Code::Unavailable,
        RepoError::Unfinished { .. } => Code::FailedPrecondition,
        RepoError::Refused(_) => Code::PermissionDenied,
    };
    Status::new(code, e.to_string())
}

fn reply(s: RepoStatus) -> v1::TufRepositoryStatus {
    let (last_refresh, last_refresh_detail) = s
        .last_refresh
        .map(|(at, d)| (format_time(at), d))
        .unwrap_or_default();
    v1::TufRepositoryStatus {
        directory: s.dir.display().to_string(),
        roles: s
            .roles
            .into_iter()
            .map(|r| v1::TufRoleStatus {
                role: r.role,
                version: r.version,
                expires: format_time(r.expires),
                key_ids: r.keyids,
                threshold: r.threshold,
                delegated_by: r.parent,
                next_refresh: r.next_refresh.map(format_time).unwrap_or_default(),
                needs_holder: r.needs_holder,
            })
            .collect(),
        target_count: s.target_count,
        last_refresh,
        last_refresh_detail,
        last_error: s.last_error.unwrap_or_default(),
        next_refresh: format_time(s.next_refresh),
        summary: s.summary,
    }
}

fn staged_reply(r: StagedReport) -> v1::TufStagedChange {
    v1::TufStagedChange {
        staged: r.bytes,
        description: r.description,
        signed_key_ids: r.signed,
        thresholds: r
            .thresholds
            .iter()
            .map(|t| v1::TufThresholdState {
                which: t.which.into(),
                valid: t.valid as u64,
                threshold: t.threshold,
                missing_key_ids: t.missing.clone(),
                met: t.met(),
            })
            .collect(),
        unused_keys: r
            .unused
            .into_iter()
            .map(|u| v1::TufUnusedKey {
                key_id: u.key_id,
                reason: u.reason,
            })
            .collect(),
    }
}

fn role(r: String) -> Option<String> {
    (!r.is_empty()).then_some(r)
}

/// The role a targets edit writes, for the policy.
fn written(r: &str) -> Vec<String> {
    vec![if r.is_empty() { "targets" } else { r }.to_owned()]
}

fn bounded<T>(items: &[T]) -> Result<(), Status> {
    if items.len() > MAX_TARGETS_PER_REQUEST {
        return Err(Status::invalid_argument(format!(
            "at most {MAX_TARGETS_PER_REQUEST} targets per request"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl tuf_server::Tuf for TufService {
    async fn init(
        &self,
        req: Request<v1::TufInitRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let given = req.get_ref().directory.clone();
        let (place, audited) = self
            .admit(&req, &given, Operation::Init, Vec::new())
            .await?;
        let r = req.into_inner();
        let mut expiry = place.expiry;
        expiry.extend(r.expiry.into_iter().map(|e| (e.role, e.seconds)));
        let init = InitRequest {
            dir: place.at,
            root_tokens: r.root_tokens,
            root_threshold: u64::from(r.root_threshold),
            targets_token: r.targets_token,
            online_token: r.online_token,
            expiry,
            hash_bins: r.hash_bins,
        };
        finish(audited, self.tuf.init(init).await, reply).await
    }

    async fn add_targets(
        &self,
        req: Request<v1::TufAddTargetsRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        bounded(&req.get_ref().targets)?;
        let r = req.get_ref();
        let (given, roles) = (r.directory.clone(), written(&r.role));
        let (place, audited) = self.admit(&req, &given, Operation::Sign, roles).await?;
        let mut files = Vec::with_capacity(req.get_ref().targets.len());
        for t in &req.get_ref().targets {
            if t.file.is_empty() {
                files.push(None);
                continue;
            }
            match self.readable(&req, &place, &t.file).await {
                Ok(at) => files.push(Some(at)),
                Err(e) => return finish(audited, Err(e), reply).await,
            }
        }
        let r = req.into_inner();
        let targets = r
            .targets
            .into_iter()
            .zip(files)
            .map(|(t, file)| AddTarget {
                name: t.name,
                file,
                sha256: t.sha256,
                length: t.length,
                custom_json: t.custom_json,
            })
            .collect();
        let result = self.tuf.add_targets(&place.at, targets, role(r.role)).await;
        finish(audited, result, reply).await
    }

    async fn remove_targets(
        &self,
        req: Request<v1::TufRemoveTargetsRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        bounded(&req.get_ref().names)?;
        let r = req.get_ref();
        let (given, roles) = (r.directory.clone(), written(&r.role));
        let (place, audited) = self.admit(&req, &given, Operation::Revoke, roles).await?;
        let r = req.into_inner();
        let result = self
            .tuf
            .remove_targets(&place.at, r.names, role(r.role))
            .await;
        finish(audited, result, reply).await
    }

    async fn status(
        &self,
        req: Request<v1::TufStatusRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let given = req.get_ref().directory.clone();
        let (place, _allowed) = self
            .allow(&req, &given, Operation::Inspect, Vec::new())
            .await?;
        self.tuf
            .status(&place.at, true)
            .await
            .map(|s| Response::new(reply(s)))
            .map_err(status)
    }

    async fn refresh(
        &self,
        req: Request<v1::TufRefreshRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        bounded(&req.get_ref().roles)?;
        let given = req.get_ref().directory.clone();
        let mut signed = vec!["snapshot".to_owned(), "timestamp".to_owned()];
        signed.extend(req.get_ref().roles.iter().cloned());
        let (place, audited) = self.admit(&req, &given, Operation::Sign, signed).await?;
        let r = req.into_inner();
        let result = self.tuf.refresh_status(&place.at, r.force, r.roles).await;
        finish(audited, result, |mut s| {
            s.summary = "refreshed".into();
            reply(s)
        })
        .await
    }

    async fn delegate(
        &self,
        req: Request<v1::TufDelegateRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        bounded(&req.get_ref().paths)?;
        let r = req.get_ref();
        let (given, roles) = (r.directory.clone(), vec![r.role.clone()]);
        let (place, audited) = self
            .admit(&req, &given, Operation::SignerAdd, roles)
            .await?;
        let r = req.into_inner();
        let result = self
            .tuf
            .delegate(
                &place.at,
                DelegateRequest {
                    name: r.role,
                    parent: role(r.parent),
                    paths: r.paths,
                    token: r.token,
                    terminating: r.terminating,
                    expiry_seconds: (r.expiry_seconds > 0).then_some(r.expiry_seconds),
                },
            )
            .await;
        finish(audited, result, reply).await
    }

    async fn undelegate(
        &self,
        req: Request<v1::TufUndelegateRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let r = req.get_ref();
        let (given, roles) = (r.directory.clone(), vec![r.role.clone()]);
        let (place, audited) = self
            .admit(&req, &given, Operation::SignerRemove, roles)
            .await?;
        let role = req.into_inner().role;
        let result = self.tuf.undelegate(&place.at, role).await;
        finish(audited, result, reply).await
    }

    async fn rotate(
        &self,
        req: Request<v1::TufRotateRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        bounded(&req.get_ref().tokens)?;
        let r = req.get_ref();
        let (given, roles) = (r.directory.clone(), vec![r.role.clone()]);
        let (place, audited) = self.admit(&req, &given, Operation::Rotate, roles).await?;
        let r = req.into_inner();
        let result = self
            .tuf
            .rotate(&place.at, r.role, r.tokens, u64::from(r.threshold))
            .await;
        finish(audited, result, reply).await
    }

    async fn stage_root(
        &self,
        req: Request<v1::TufStageRootRequest>,
    ) -> Result<Response<v1::TufStagedChange>, Status> {
        bounded(&req.get_ref().root_keys_pem)?;
        let given = req.get_ref().directory.clone();
        let (place, allowed) = self
            .allow(&req, &given, Operation::Rotate, vec!["root".into()])
            .await?;
        let holders = holder_keys(&self.gate, &allowed.caller);
        let audited = allowed
            .begin(
                &self.gate,
                Details {
                    detail: format!("tuf stage root {}", place.dir().display()),
                    ..Details::default()
                },
            )
            .await?;
        let r = req.into_inner();
        let result = self
            .tuf
            .stage_root(
                &place.at,
                r.root_keys_pem,
                u64::from(r.root_threshold),
                holders,
            )
            .await;
        finish_staged(audited, result).await
    }

    type SignStagedStream = SignEvents;

    async fn sign_staged(
        &self,
        req: Request<v1::TufSignStagedRequest>,
    ) -> Result<Response<SignEvents>, Status> {
        let root = || vec!["root".to_owned()];
        // Whoever may not rotate a root anywhere learns nothing more.
        let action = Action::global(Operation::Rotate).roles(root());
        let allowed = self.gate.authorize_exact(&req, action).await?;
        let staged = Staged::parse(&req.get_ref().staged).map_err(status)?;
        // The change's repository, when this daemon manages it, decides
        // whose keys may sign: the caller must be allowed to rotate its
        // root, and only its keys sign.
        let repository = self.tuf.managed(&staged.repository);
        let (allowed, detail) = match &repository {
            Some(dir) => {
                let resource = self.places.resource_of(dir).ok_or_else(|| {
                    Status::failed_precondition(format!(
                        "the staged change is for {}, which the daemon's [tuf] configuration no longer serves; sign it where it is served",
                        dir.display()
                    ))
                })?;
                let action = Action::on(Operation::Rotate, &resource).roles(root());
                let allowed = self.gate.authorize_exact(&req, action).await?;
                (
                    allowed,
                    format!("tuf sign staged root change of {}", dir.display()),
                )
            }
            None => {
                let named: String = staged
                    .repository
                    .chars()
                    .take(MAX_NAMED_REPOSITORY)
                    .collect();
                (
                    allowed,
                    format!(
                        "tuf sign staged root change of {named:?} (not a repository of this daemon: holders' keys only)"
                    ),
                )
            }
        };
        let scope = KeyScope {
            repository,
            holder_keys: holder_keys(&self.gate, &allowed.caller),
        };
        let audited = allowed
            .begin(
                &self.gate,
                Details {
                    detail,
                    ..Details::default()
                },
            )
            .await?;
        let tuf = self.tuf.clone();
        let (out, rx) = tokio::sync::mpsc::channel(8);
        let (touch, mut touches) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let forward = {
                let out = out.clone();
                tokio::spawn(async move {
                    while let Some((device, serial)) = touches.recv().await {
                        let event = v1::tuf_sign_event::Event::Touch(v1::TouchRequest {
                            device,
                            serial,
                            role: "root".into(),
                            repository: String::new(),
                        });
                        // A departed client does not stop the signing.
                        let _ = out.send(Ok(sign_event(event))).await;
                    }
                })
            };
            let result = tuf.sign_staged(staged, scope, Some(touch)).await;
            let _ = forward.await;
            let answer = match finish_staged(audited, result).await {
                Ok(r) => Ok(sign_event(v1::tuf_sign_event::Event::Result(
                    r.into_inner(),
                ))),
                Err(s) => Err(s),
            };
            let _ = out.send(answer).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn publish_staged(
        &self,
        req: Request<v1::TufPublishStagedRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let given = req.get_ref().directory.clone();
        let (place, audited) = self
            .admit(&req, &given, Operation::Rotate, vec!["root".into()])
            .await?;
        let result = self
            .tuf
            .publish_staged(&place.at, req.into_inner().staged)
            .await;
        finish(audited, result, reply).await
    }
}

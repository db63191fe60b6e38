//! `tufd.v1.Tuf`: TUF 1.0 repositories, adapted to the repository manager.

use std::path::PathBuf;
use std::sync::Arc;

use tonic::{Code, Request, Response, Status};
use tufd_proto::v1::{self, tuf_server};

use super::{caller, key_status_code};
use crate::tuf1::registry::format_time;
use crate::tuf1::{AddTarget, InitRequest, RepoError, RepoStatus, StagedReport, Tuf1};

/// The most targets one request may add or remove.
const MAX_TARGETS_PER_REQUEST: usize = 10_000;

/// TUF 1.0 operations over [`Tuf1`].
pub struct TufService {
    tuf: Arc<Tuf1>,
}

impl TufService {
    /// The service over a repository manager.
    pub fn new(tuf: Arc<Tuf1>) -> Self {
        Self { tuf }
    }
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
        RepoError::Busy(_) => Code::Aborted,
    };
    Status::new(code, e.to_string())
}

fn reply(s: RepoStatus) -> Response<v1::TufRepositoryStatus> {
    let (last_refresh, last_refresh_detail) = s
        .last_refresh
        .map(|(at, d)| (format_time(at), d))
        .unwrap_or_default();
    Response::new(v1::TufRepositoryStatus {
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
            })
            .collect(),
        target_count: s.target_count,
        last_refresh,
        last_refresh_detail,
        last_error: s.last_error.unwrap_or_default(),
        next_refresh: format_time(s.next_refresh),
        summary: s.summary,
    })
}

fn staged_reply(r: StagedReport) -> Response<v1::TufStagedChange> {
    Response::new(v1::TufStagedChange {
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
    })
}

fn role(r: String) -> Option<String> {
    (!r.is_empty()).then_some(r)
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
        let who = caller(&req);
        let r = req.into_inner();
        tracing::info!(caller = %who, directory = ?r.directory, "tuf init");
        let init = InitRequest {
            dir: PathBuf::from(r.directory),
            root_tokens: r.root_tokens,
            root_threshold: u64::from(r.root_threshold),
            targets_token: r.targets_token,
            online_token: r.online_token,
            expiry: r.expiry.into_iter().map(|e| (e.role, e.seconds)).collect(),
            hash_bins: r.hash_bins,
        };
        self.tuf.init(init).await.map(reply).map_err(status)
    }

    async fn add_targets(
        &self,
        req: Request<v1::TufAddTargetsRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        bounded(&r.targets)?;
        tracing::info!(caller = %who, directory = ?r.directory, count = r.targets.len(), "tuf add");
        let targets = r
            .targets
            .into_iter()
            .map(|t| AddTarget {
                name: t.name,
                file: (!t.file.is_empty()).then(|| PathBuf::from(t.file)),
                sha256: t.sha256,
                length: t.length,
                custom_json: t.custom_json,
            })
            .collect();
        self.tuf
            .add_targets(&PathBuf::from(r.directory), targets, role(r.role))
            .await
            .map(reply)
            .map_err(status)
    }

    async fn remove_targets(
        &self,
        req: Request<v1::TufRemoveTargetsRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        bounded(&r.names)?;
        tracing::info!(caller = %who, directory = ?r.directory, count = r.names.len(), "tuf remove");
        self.tuf
            .remove_targets(&PathBuf::from(r.directory), r.names, role(r.role))
            .await
            .map(reply)
            .map_err(status)
    }

    async fn status(
        &self,
        req: Request<v1::TufStatusRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let r = req.into_inner();
        self.tuf
            .status(&PathBuf::from(r.directory))
            .await
            .map(reply)
            .map_err(status)
    }

    async fn refresh(
        &self,
        req: Request<v1::TufRefreshRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        tracing::info!(caller = %who, directory = ?r.directory, force = r.force, "tuf refresh");
        let dir = PathBuf::from(r.directory);
        self.tuf.refresh(&dir, r.force).await.map_err(status)?;
        let mut s = self.tuf.status(&dir).await.map_err(status)?;
        s.summary = "refreshed".into();
        Ok(reply(s))
    }

    async fn delegate(
        &self,
        req: Request<v1::TufDelegateRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        bounded(&r.paths)?;
        tracing::info!(caller = %who, directory = ?r.directory, role = ?r.role, "tuf delegate");
        self.tuf
            .delegate(
                &PathBuf::from(r.directory),
                r.role,
                r.paths,
                &r.token,
                r.terminating,
            )
            .await
            .map(reply)
            .map_err(status)
    }

    async fn rotate(
        &self,
        req: Request<v1::TufRotateRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        bounded(&r.tokens)?;
        tracing::info!(caller = %who, directory = ?r.directory, role = ?r.role, "tuf rotate");
        self.tuf
            .rotate(
                &PathBuf::from(r.directory),
                r.role,
                r.tokens,
                u64::from(r.threshold),
            )
            .await
            .map(reply)
            .map_err(status)
    }

    async fn stage_root(
        &self,
        req: Request<v1::TufStageRootRequest>,
    ) -> Result<Response<v1::TufStagedChange>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        bounded(&r.root_keys_pem)?;
        tracing::info!(caller = %who, directory = ?r.directory, "tuf stage root");
        self.tuf
            .stage_root(
                &PathBuf::from(r.directory),
                r.root_keys_pem,
                u64::from(r.root_threshold),
            )
            .await
            .map(staged_reply)
            .map_err(status)
    }

    async fn sign_staged(
        &self,
        req: Request<v1::TufSignStagedRequest>,
    ) -> Result<Response<v1::TufStagedChange>, Status> {
        let who = caller(&req);
        tracing::info!(caller = %who, "tuf sign staged");
        self.tuf
            .sign_staged(req.into_inner().staged)
            .await
            .map(staged_reply)
            .map_err(status)
    }

    async fn publish_staged(
        &self,
        req: Request<v1::TufPublishStagedRequest>,
    ) -> Result<Response<v1::TufRepositoryStatus>, Status> {
        let who = caller(&req);
        let r = req.into_inner();
        tracing::info!(caller = %who, directory = ?r.directory, "tuf publish staged");
        self.tuf
            .publish_staged(&PathBuf::from(r.directory), r.staged)
            .await
            .map(reply)
            .map_err(status)
    }
}

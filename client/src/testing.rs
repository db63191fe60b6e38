//! Test support: a fake daemon on a Unix socket and writers to read back.

use crate::cli::Format;
use crate::cmd::Ctx;
use crate::output::Output;
use crate::term::Term;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tufd_proto::v1::trust_server::{Trust, TrustServer};
use tufd_proto::v1::{self, trust_event::Event};

/// A writer tests can read back.
#[derive(Clone, Default)]
pub struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().map(|v| v.clone()).unwrap_or_default()).expect("utf-8")
    }
}

pub type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::TrustEvent, Status>> + Send>>;

/// A daemon that answers every operation with a scripted stream and
/// records the requests.
#[derive(Clone, Default)]
pub struct Fake {
    pub script: Vec<Result<v1::TrustEvent, Status>>,
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn answer(&self, req: String) -> Result<Response<EventStream>, Status> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(req);
        }
        let items = self.script.clone();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }
}

#[tonic::async_trait]
impl Trust for Fake {
    async fn verify(
        &self,
        _: Request<v1::VerifyRequest>,
    ) -> Result<Response<v1::VerifyResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    type AddSignerStream = EventStream;
    type RemoveSignerStream = EventStream;
    type SignStream = EventStream;
    type RevokeStream = EventStream;
    type RotateKeyStream = EventStream;
    type RepairStream = EventStream;

    async fn repair(&self, r: Request<v1::RepairRequest>) -> Result<Response<EventStream>, Status> {
        self.answer(format!("{:?}", r.into_inner()))
    }
    async fn forget(
        &self,
        r: Request<v1::ForgetRequest>,
    ) -> Result<Response<v1::ForgetResponse>, Status> {
        let _ = self.answer(format!("{:?}", r.into_inner()));
        Ok(Response::new(v1::ForgetResponse { forgotten: true }))
    }
    async fn add_signer(
        &self,
        r: Request<v1::AddSignerRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.answer(format!("{:?}", r.into_inner()))
    }
    async fn remove_signer(
        &self,
        r: Request<v1::RemoveSignerRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.answer(format!("{:?}", r.into_inner()))
    }
    async fn sign(&self, r: Request<v1::SignRequest>) -> Result<Response<EventStream>, Status> {
        self.answer(format!("{:?}", r.into_inner()))
    }
    async fn revoke(&self, r: Request<v1::RevokeRequest>) -> Result<Response<EventStream>, Status> {
        self.answer(format!("{:?}", r.into_inner()))
    }
    async fn rotate_key(
        &self,
        r: Request<v1::RotateKeyRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.answer(format!("{:?}", r.into_inner()))
    }
    type InspectStreamStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::InspectPart, Status>> + Send>>;

    /// Like a daemon older than InspectStream: tufctl falls back to the
    /// unary Inspect.
    async fn inspect_stream(
        &self,
        _: Request<v1::InspectRequest>,
    ) -> Result<Response<Self::InspectStreamStream>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }
    async fn inspect(
        &self,
        r: Request<v1::InspectRequest>,
    ) -> Result<Response<v1::InspectResponse>, Status> {
        let repos = r.into_inner().repositories;
        if repos.iter().any(|r| r.contains("missing")) {
            return Err(Status::not_found(format!(
                "no signatures or cannot access {}",
                repos.join(", ")
            )));
        }
        Ok(Response::new(v1::InspectResponse {
            repositories: repos
                .into_iter()
                .map(|name| v1::RepositoryInspection {
                    name,
                    signed_tags: vec![v1::SignedTag {
                        tag: "v1".into(),
                        digest: "ab".repeat(32),
                        size: 527,
                        signers: vec!["Repo Admin".into()],
                    }],
                    signers: vec![],
                    administrative_keys: vec![
                        v1::RoleKeyList {
                            name: "Root".into(),
                            key_ids: vec!["11".repeat(32)],
                        },
                        v1::RoleKeyList {
                            name: "Repository".into(),
                            key_ids: vec!["22".repeat(32)],
                        },
                    ],
                    expiry_warnings: vec![v1::ExpiryWarning {
                        role: "targets".into(),
                        expires: "2027-01-01T00:00:00Z".into(),
                    }],
                })
                .collect(),
        }))
    }
}

/// Serves `fake` on a Unix socket in a temporary directory.
pub async fn serve(fake: Fake) -> (Channel, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tufd.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TrustServer::new(fake))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    let channel = crate::connect::connect(&path, None).await.expect("connect");
    (channel, dir)
}

pub fn progress(repo: &str, message: &str) -> Result<v1::TrustEvent, Status> {
    Ok(v1::TrustEvent {
        event: Some(Event::Progress(v1::Progress {
            repository: repo.into(),
            message: message.into(),
        })),
    })
}

pub fn touch() -> Result<v1::TrustEvent, Status> {
    Ok(v1::TrustEvent {
        event: Some(Event::Touch(v1::TouchRequest {
            device: "YubiKey".into(),
            serial: "12345678".into(),
            role: "targets/releases".into(),
            repository: "reg/app".into(),
        })),
    })
}

pub fn result() -> Result<v1::TrustEvent, Status> {
    Ok(v1::TrustEvent {
        event: Some(Event::Result(v1::TrustResult {
            changes: vec![v1::RepositoryChange {
                repository: "reg/app".into(),
                initialized: false,
                published: vec![
                    v1::RoleVersion {
                        role: "targets/releases".into(),
                        version: 3,
                    },
                    v1::RoleVersion {
                        role: "snapshot".into(),
                        version: 5,
                    },
                ],
                summary: "reg/app: signed v1 into targets/releases".into(),
                attempts: 2,
            }],
        })),
    })
}

pub fn term(tty: bool) -> (Term, Buf, Buf) {
    let (o, e) = (Buf::default(), Buf::default());
    (
        Term::new(Box::new(o.clone()), Box::new(e.clone()), tty),
        o,
        e,
    )
}

pub const DIGEST: &str = "sha256:0f8b2d4e5c1a0f8b2d4e5c1a0f8b2d4e5c1a0f8b2d4e5c1a0f8b2d4e5c1a0f8b";

/// A context on `channel` writing to `term`, in `format`.
pub fn ctx(channel: Channel, term: Term, format: Format) -> Ctx {
    Ctx {
        channel,
        term,
        out: Output::new(format),
        server: None,
    }
}

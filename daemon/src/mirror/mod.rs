//! A verifying registry mirror: the OCI distribution pull API (`GET` and
//! `HEAD` of `/v2/`, manifests and blobs) in front of configured upstream
//! registries, handing out only what the trust data says.
//!
//! - A manifest by **tag** is resolved through the repository's trust data
//!   ([`Trust::verify`], GUN = upstream registry + name, docker's
//!   normalization) in the mode configured for its prefix. A trusted tag is
//!   fetched upstream **by its signed digest**, checked to hash to it (and
//!   to have the signed size) and served with `Docker-Content-Digest`,
//!   whatever the registry's tag points to now. Enforced: anything else is
//!   refused with an OCI `DENIED` error carrying `tufctl verify`'s reason.
//!   Passive: the registry's manifest for the tag, with a warning in the
//!   log. Disabled: proxied.
//! - A manifest by **digest** and blobs are content-addressed: proxied in
//!   every mode, as docker's content trust let digest pulls through, but
//!   checked to hash to the digest asked for. Manifests are read whole
//!   (bounded) and refused on mismatch. Blobs are streamed, hashed on the
//!   way, and the last chunk is held back until the hash is known: on a
//!   mismatch the stream is cut short, so the client sees a body shorter
//!   than its `Content-Length` (a broken connection), never complete wrong
//!   content.
//! - Upstream requests carry tufd's registry credentials (`[registry]`),
//!   never the client's; only configured upstreams are reachable.
//! - Bounded: manifest size, per-fetch and per-chunk deadlines, a deadline
//!   on every write to the client, a minimum blob transfer rate and a total
//!   blob deadline, requests at once (429 beyond), connections, header read
//!   time. Each refusal is logged with the caller's address (at most so
//!   many a few seconds), policy and integrity refusals are audited,
//!   repeats aggregated ([`refusals`] says which and why).

pub mod config;
mod io;
pub mod refusals;
pub mod route;

pub use config::MirrorConfig;

use crate::trust::Trust;
use crate::trust::verify::{Outcome, VerifyMode};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, header};
use route::{Reference, Route};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tufd_remote::{PullObject, RegistryClient};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Deadline of a TLS handshake and of reading a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the mirror could not start.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("mirror: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("mirror: TLS: {0}")]
    Tls(String),
    #[error("mirror: upstream registry client: {0}")]
    Registry(#[from] tufd_remote::RegistryError),
}

/// The running mirror's shared state.
struct Mirror {
    config: MirrorConfig,
    trust: Arc<Trust>,
    /// Where refusals are logged and (some) audited, with the client's
    /// address.
    refusals: refusals::Refusals,
    upstream: RegistryClient,
    requests: Arc<Semaphore>,
}

/// Binds the configured address and serves until the task is aborted.
pub async fn start(
    config: MirrorConfig,
    registry: &tufd_remote::RegistryConfig,
    trust: Arc<Trust>,
    audit: Option<Arc<crate::audit::AuditLog>>,
) -> Result<tokio::task::JoinHandle<()>, MirrorError> {
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    // Blobs may take long in total; each chunk has its own deadline, and
    // the stream a minimum rate (see `blob`).
    let mut registry = registry.clone();
    registry.timeout = Duration::from_secs(config::MAX_BLOB_SECONDS);
    registry.max_manifest_size = config.max_manifest_bytes;
    let upstream = RegistryClient::new(&registry)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| MirrorError::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(listen = %local, upstreams = ?config.upstreams, tls = tls.is_some(), "registry mirror listening");
    let connections = Arc::new(Semaphore::new(config.max_requests * 4));
    let mirror = Arc::new(Mirror {
        requests: Arc::new(Semaphore::new(config.max_requests)),
        config,
        trust,
        refusals: refusals::Refusals::new(audit),
        upstream,
    });
    // Writes the refusal counts of ended intervals; ends with the mirror.
    let weak = Arc::downgrade(&mirror);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(m) => m.refusals.tick(),
                None => return,
            }
        }
    });
    Ok(tokio::spawn(async move {
        loop {
            let Ok(conn_permit) = connections.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "mirror: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let stream = io::WriteDeadline::new(stream, mirror.config.timeout);
            let mirror = mirror.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _conn_permit = conn_permit;
                let svc = hyper::service::service_fn(move |req| {
                    let mirror = mirror.clone();
                    async move { Ok::<_, Infallible>(mirror.handle(req, peer).await) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HANDSHAKE_TIMEOUT);
                let served = match tls {
                    None => {
                        builder
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await
                    }
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(s)) => {
                                builder
                                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                                    .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(caller = %peer, error = %e, "mirror: TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(caller = %peer, "mirror: TLS handshake timed out");
                                return;
                            }
                        }
                    }
                };
                if let Err(e) = served {
                    tracing::debug!(caller = %peer, error = %e, "mirror: connection ended");
                }
            });
        }
    }))
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, MirrorError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| MirrorError::Tls(format!("{}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| MirrorError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MirrorError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| MirrorError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// An OCI error answer.
fn error(status: u16, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Docker-Distribution-API-Version", "registry/2.0")
        .body(full(body))
        .expect("static headers")
}

/// The answer when a response cannot be built (a header value it cannot
/// carry): a 502 saying so, never a panic.
fn unbuildable(e: hyper::http::Error) -> Response<Body> {
    tracing::warn!(error = %e, "mirror: an upstream answer cannot be passed on");
    error(
        502,
        "UNKNOWN",
        &format!("the upstream's answer cannot be passed on: {e}"),
    )
}

fn hex_digest(d: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(d))
}

/// A manifest read from upstream and checked.
struct Manifest {
    bytes: Bytes,
    /// What it says it is (see [`media_type`]).
    media_type: header::HeaderValue,
    digest: [u8; 32],
}

/// Media types that name a manifest: an upstream `Content-Type` of one of
/// these must agree with the manifest's own `mediaType`.
const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    tufd_remote::MEDIA_TYPE_OCI_INDEX,
    tufd_remote::MEDIA_TYPE_DOCKER_LIST,
    tufd_remote::MEDIA_TYPE_DOCKER_MANIFEST,
    tufd_remote::MEDIA_TYPE_OCI_MANIFEST,
];

/// The media type a manifest is served with: that of its bytes (their
/// `mediaType`, which the digest, and a signature, cover), as
/// `RegistryClient::read_manifest` decides it. The upstream's
/// `Content-Type` is unchecked: it is used only when the bytes name no
/// type, and when it names another manifest type than the bytes do, the
/// manifest is refused (a client would read the signed bytes as something
/// they are not). A manifest that is not a JSON object, or whose type is
/// not a media type (`type/subtype`, token characters: nothing a header
/// cannot carry), is refused; with no type anywhere, it is served as an
/// OCI image manifest.
fn media_type(content_type: Option<&str>, bytes: &[u8]) -> Result<header::HeaderValue, String> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "mediaType")]
        media_type: Option<serde_json::Value>,
    }
    let head: Head = serde_json::from_slice(bytes)
        .map_err(|e| format!("the manifest is not a JSON object: {e}"))?;
    let declared = match head.media_type {
        None => None,
        Some(serde_json::Value::String(t)) => Some(t),
        Some(other) => return Err(format!("the manifest's mediaType {other} is not a string")),
    };
    let chosen = match (content_type, declared) {
        (Some(ct), Some(mt)) if ct != mt && MANIFEST_MEDIA_TYPES.contains(&ct) => {
            return Err(format!(
                "the registry's Content-Type {ct} disagrees with the manifest's mediaType {mt:?}"
            ));
        }
        (_, Some(mt)) => mt,
        (Some(ct), None) => ct.to_owned(),
        (None, None) => tufd_remote::MEDIA_TYPE_OCI_MANIFEST.to_owned(),
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    match chosen.split_once('/') {
        Some((t, sub)) if chosen.len() <= 255 && token(t) && token(sub) => {}
        _ => {
            return Err(format!(
                "the manifest's media type {chosen:?} is not a media type"
            ));
        }
    }
    header::HeaderValue::from_str(&chosen).map_err(|e| format!("media type {chosen:?}: {e}"))
}

impl Mirror {
    async fn handle(
        &self,
        req: Request<hyper::body::Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                return error(
                    405,
                    "UNSUPPORTED",
                    "the mirror serves the pull API only (GET and HEAD)",
                );
            }
        };
        let uri = req.uri().clone();
        let refuse = |(status, code, message): route::Refusal| {
            let repository = match route::parse(uri.path()) {
                Ok(Route::Manifest { name, .. } | Route::Blob { name, .. }) => Some(name),
                _ => None,
            };
            let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
            self.refusals
                .refused(peer, path, repository, (status, code, &message));
            error(status, code, &message)
        };
        let route = match route::parse(uri.path()) {
            Ok(r) => r,
            Err(r) => return refuse(r),
        };
        let upstream = match route::upstream(uri.query(), &self.config.upstreams) {
            Ok(u) => u.to_owned(),
            Err(r) => return refuse(r),
        };
        let Ok(permit) = self.requests.clone().try_acquire_owned() else {
            return refuse((
                429,
                "TOOMANYREQUESTS",
                format!(
                    "the mirror is serving {} requests already ([mirror] max_requests); retry later",
                    self.config.max_requests
                ),
            ));
        };
        let answer = match route {
            Route::Base => Ok(Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/json")
                .header("Docker-Distribution-API-Version", "registry/2.0")
                .body(if head { empty() } else { full("{}") })
                .expect("static headers")),
            Route::Manifest {
                name,
                reference: Reference::Tag(tag),
            } => {
                self.manifest_by_tag(&upstream, &name, &tag, head, peer)
                    .await
            }
            Route::Manifest {
                name,
                reference: Reference::Digest(d),
            } => self
                .fetch_manifest(&upstream, &name, &hex_digest(&d), Some((d, None)), peer)
                .await
                .map(|m| self.manifest_response(m, head)),
            Route::Blob { name, digest } => {
                return self
                    .blob(&upstream, &name, digest, head, peer, permit)
                    .await
                    .unwrap_or_else(refuse);
            }
        };
        answer.unwrap_or_else(refuse)
    }

    async fn manifest_by_tag(
        &self,
        upstream: &str,
        name: &str,
        tag: &str,
        head: bool,
        peer: SocketAddr,
    ) -> Result<Response<Body>, route::Refusal> {
        let gun = tufd_proto::names::repository(&format!("{upstream}/{name}"))
            .map_err(|e| (400, "NAME_INVALID", format!("{upstream}/{name}: {e}")))?;
        let mode = self.trust.mode_for(&gun);
        if mode == VerifyMode::Disabled {
            tracing::info!(caller = %peer, repository = %gun, %tag, "mirror: verification disabled for this repository: proxied");
            let m = self.fetch_manifest(upstream, name, tag, None, peer).await?;
            return Ok(self.manifest_response(m, head));
        }
        let reference = format!("{gun}:{tag}");
        let verdicts = self
            .trust
            .verify(std::slice::from_ref(&reference), Some(mode))
            .await
            .map_err(|e| (400, "NAME_INVALID", e.to_string()))?;
        let verdict = verdicts
            .into_iter()
            .next()
            .ok_or_else(|| (500, "UNKNOWN", "verification answered nothing".to_owned()))?;
        match verdict.outcome {
            Outcome::Trusted { digest, size, .. } => {
                let m = self
                    .fetch_manifest(
                        upstream,
                        name,
                        &hex_digest(&digest),
                        Some((digest, Some(size))),
                        peer,
                    )
                    .await?;
                tracing::info!(caller = %peer, reference = %reference, digest = %hex_digest(&digest), "mirror: served the signed manifest");
                Ok(self.manifest_response(m, head))
            }
            Outcome::Refused { reason } => Err((403, "DENIED", reason)),
            Outcome::Unverified { reason, .. } => {
                tracing::warn!(caller = %peer, reference = %reference, %reason, "mirror (passive): trust would refuse this tag; serving the registry's manifest");
                let m = self.fetch_manifest(upstream, name, tag, None, peer).await?;
                Ok(self.manifest_response(m, head))
            }
            Outcome::Unchecked { .. } => {
                let m = self.fetch_manifest(upstream, name, tag, None, peer).await?;
                Ok(self.manifest_response(m, head))
            }
        }
    }

    fn manifest_response(&self, m: Manifest, head: bool) -> Response<Body> {
        let len = m.bytes.len();
        Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, m.media_type)
            .header(header::CONTENT_LENGTH, len)
            .header("Docker-Content-Digest", hex_digest(&m.digest))
            .header("Docker-Distribution-API-Version", "registry/2.0")
            .body(if head { empty() } else { full(m.bytes) })
            .unwrap_or_else(unbuildable)
    }

    /// Reads a manifest from upstream within the size cap; when `expect`
    /// is given, it must hash to that digest (and have that size).
    async fn fetch_manifest(
        &self,
        upstream: &str,
        name: &str,
        reference: &str,
        expect: Option<([u8; 32], Option<u64>)>,
        peer: SocketAddr,
    ) -> Result<Manifest, route::Refusal> {
        let cap = self.config.max_manifest_bytes;
        if let Some((d, Some(size))) = expect
            && size > cap
        {
            return Err((
                502,
                "MANIFEST_INVALID",
                format!(
                    "{upstream}/{name}@{}: the signed manifest is {size} bytes, over the mirror's limit of {cap} ([mirror] max_manifest_bytes)",
                    hex_digest(&d)
                ),
            ));
        }
        let limit = match expect {
            Some((_, Some(size))) => size,
            _ => cap,
        };
        let deadline = self.config.timeout;
        let upstream_err = |e: String| (502, "UNKNOWN", format!("upstream {upstream}: {e}"));
        let fetched = tokio::time::timeout(deadline, async {
            let pulled = self
                .upstream
                .pull(upstream, name, PullObject::Manifest, reference, false)
                .await
                .map_err(|e| upstream_err(e.to_string()))?;
            match pulled.status() {
                200 => {}
                404 => {
                    return Err((
                        404,
                        "MANIFEST_UNKNOWN",
                        format!("{upstream}/{name}: manifest {reference} not found upstream"),
                    ));
                }
                s => return Err(upstream_err(format!("HTTP {s} for manifest {reference}"))),
            }
            let media_type = pulled.content_type();
            let bytes = pulled.read_limited(limit).await.map_err(|e| {
                upstream_err(format!("{e} (manifest {reference}; limit {limit} bytes)"))
            })?;
            Ok((media_type, bytes))
        })
        .await
        .map_err(|_| {
            upstream_err(format!(
                "manifest {reference} not read within {} s ([mirror] timeout_seconds)",
                deadline.as_secs()
            ))
        })??;
        let (content_type, bytes) = fetched;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some((want, size)) = expect
            && (digest != want || size.is_some_and(|s| s != bytes.len() as u64))
        {
            let message = format!(
                "{upstream}/{name}: the upstream manifest for {} hashes to {} ({} bytes); refused",
                hex_digest(&want),
                hex_digest(&digest),
                bytes.len()
            );
            tracing::warn!(caller = %peer, %message, "mirror refused a manifest that does not match its digest");
            return Err((502, "MANIFEST_INVALID", message));
        }
        let media_type = media_type(content_type.as_deref(), &bytes).map_err(|why| {
            let message = format!("{upstream}/{name}: manifest {reference}: {why}; refused");
            tracing::warn!(caller = %peer, %message, "mirror refused a manifest");
            (502, "MANIFEST_INVALID", message)
        })?;
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// A blob, streamed and hashed; the last chunk is released only when
    /// the whole blob hashes to `digest`.
    async fn blob(
        &self,
        upstream: &str,
        name: &str,
        digest: [u8; 32],
        head: bool,
        peer: SocketAddr,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Response<Body>, route::Refusal> {
        let reference = hex_digest(&digest);
        let deadline = self.config.timeout;
        let upstream_err = |e: String| (502, "UNKNOWN", format!("upstream {upstream}: {e}"));
        let pulled = tokio::time::timeout(
            deadline,
            self.upstream
                .pull(upstream, name, PullObject::Blob, &reference, head),
        )
        .await
        .map_err(|_| {
            upstream_err(format!(
                "blob {reference}: no answer within {} s",
                deadline.as_secs()
            ))
        })?
        .map_err(|e| upstream_err(e.to_string()))?;
        match pulled.status() {
            200 => {}
            404 => {
                return Err((
                    404,
                    "BLOB_UNKNOWN",
                    format!("{upstream}/{name}: blob {reference} not found upstream"),
                ));
            }
            s => return Err(upstream_err(format!("HTTP {s} for blob {reference}"))),
        }
        let length = pulled.content_length();
        let mut response = Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header("Docker-Content-Digest", &reference)
            .header("Docker-Distribution-API-Version", "registry/2.0");
        if let Some(len) = length {
            response = response.header(header::CONTENT_LENGTH, len);
        }
        if head {
            return Ok(response.body(empty()).unwrap_or_else(unbuildable));
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let what = format!("{upstream}/{name}@{reference}");
        let pace = Pace::new(self.config.min_transfer_rate, self.config.transfer_window);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let body = BlobBody {
            rx,
            done: done.clone(),
            ended: false,
        };
        tokio::spawn(async move {
            let _permit = permit;
            match stream_blob(pulled, &tx, digest, length, deadline, pace).await {
                Ok(()) => done.store(true, std::sync::atomic::Ordering::Release),
                Err(why) => {
                    // The body ends in an error when the channel closes
                    // without `done` (see BlobBody); the slot is freed now.
                    tracing::warn!(caller = %peer, blob = %what, reason = %why, "mirror: blob stream aborted");
                }
            }
        });
        let body = body.boxed_unsync();
        Ok(response.body(body).unwrap_or_else(unbuildable))
    }
}

/// A blob's body as hyper reads it: the chunks the streaming task lets
/// through, then an error unless that task said the blob was whole, so a
/// cut stream never looks complete (even without a `Content-Length`).
struct BlobBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    done: Arc<std::sync::atomic::AtomicBool>,
    ended: bool,
}

impl hyper::body::Body for BlobBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Poll::Ready(None) => {
                self.ended = true;
                if self.done.load(std::sync::atomic::Ordering::Acquire) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(std::io::Error::other(
                        "the mirror cut the blob stream (see tufd's log)",
                    ))))
                }
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The minimum transfer rate of a blob: at least `min_rate` bytes a second
/// averaged over each `window` (see [`config`]), and [`config::MAX_BLOB_SECONDS`]
/// in all.
struct Pace {
    min_rate: u64,
    window: Duration,
    started: tokio::time::Instant,
    window_started: tokio::time::Instant,
    window_bytes: u64,
}

impl Pace {
    fn new(min_rate: u64, window: Duration) -> Self {
        let now = tokio::time::Instant::now();
        Pace {
            min_rate,
            window,
            started: now,
            window_started: now,
            window_bytes: 0,
        }
    }

    /// Counts `n` bytes handed to the client; an error once the blob has
    /// moved too slowly over a whole window, or for too long.
    fn passed(&mut self, n: usize) -> Result<(), String> {
        self.window_bytes += n as u64;
        let now = tokio::time::Instant::now();
        if now - self.started > Duration::from_secs(config::MAX_BLOB_SECONDS) {
            return Err(format!(
                "the blob streamed for over {} s; cut",
                config::MAX_BLOB_SECONDS
            ));
        }
        let elapsed = now - self.window_started;
        if elapsed < self.window {
            return Ok(());
        }
        let rate = self.window_bytes as f64 / elapsed.as_secs_f64();
        if (rate as u64) < self.min_rate {
            return Err(format!(
                "the blob moved at {rate:.0} bytes/s over the last {} s, under the minimum of {} KiB/s ([mirror] min_transfer_kib_per_second)",
                elapsed.as_secs(),
                self.min_rate / 1024
            ));
        }
        self.window_started = now;
        self.window_bytes = 0;
        Ok(())
    }
}

/// Streams `pulled` into `tx`, hashing it; the last chunk is sent only
/// when the whole blob hashes to `digest`. Every read from upstream and
/// every hand-over to the client has `deadline`; the stream as a whole has
/// `pace`. An error says why the stream was cut.
async fn stream_blob(
    mut pulled: tufd_remote::Pulled,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
    digest: [u8; 32],
    length: Option<u64>,
    deadline: Duration,
    mut pace: Pace,
) -> Result<(), String> {
    let send = async |chunk: Bytes| {
        use tokio::sync::mpsc::error::SendTimeoutError;
        match tx.send_timeout(chunk, deadline).await {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Timeout(_)) => Err(format!(
                "the client took no data for {} s ([mirror] timeout_seconds)",
                deadline.as_secs()
            )),
            Err(SendTimeoutError::Closed(_)) => Err("the client went away".to_owned()),
        }
    };
    let mut hasher = Sha256::new();
    let mut held: Option<Bytes> = None;
    let mut total: u64 = 0;
    loop {
        let chunk = match tokio::time::timeout(deadline, pulled.chunk()).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(format!("upstream: {e}")),
            Err(_) => {
                return Err(format!(
                    "no data from upstream within {} s ([mirror] timeout_seconds)",
                    deadline.as_secs()
                ));
            }
        };
        total += chunk.len() as u64;
        if length.is_some_and(|l| total > l) {
            return Err("upstream sent more than its Content-Length".into());
        }
        hasher.update(&chunk);
        let n = chunk.len();
        if let Some(prev) = held.replace(chunk) {
            send(prev).await?;
        }
        pace.passed(n)?;
    }
    let got: [u8; 32] = hasher.finalize().into();
    if got != digest {
        return Err(format!(
            "the blob hashes to {}, not to the digest asked for",
            hex_digest(&got)
        ));
    }
    if let Some(last) = held {
        send(last).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_of_the_bytes() {
        let oci = tufd_remote::MEDIA_TYPE_OCI_MANIFEST;
        let docker = tufd_remote::MEDIA_TYPE_DOCKER_MANIFEST;
        let m = |t: &str| format!(r#"{{"schemaVersion":2,"mediaType":"{t}"}}"#).into_bytes();
        assert_eq!(media_type(None, &m(oci)).unwrap(), oci);
        assert_eq!(media_type(Some("application/json"), &m(oci)).unwrap(), oci);
        assert_eq!(media_type(Some(oci), &m(oci)).unwrap(), oci);
        let e = media_type(Some(docker), &m(oci)).unwrap_err();
        assert!(e.contains("disagrees"), "{e}");
        assert_eq!(media_type(Some(docker), b"{}").unwrap(), docker);
        assert_eq!(media_type(None, b"{}").unwrap(), oci);
        for bad in [
            "application/x\\u0001y",
            "application/x\\ny",
            "applicationx",
            "application/é",
            "a/b c",
        ] {
            assert!(media_type(None, &m(bad)).is_err(), "{bad}");
        }
        assert!(media_type(None, br#"{"mediaType":1}"#).is_err());
        assert!(media_type(Some(oci), b"not json").is_err());
    }
}

//! Runs the real Debian `docker-registry` (distribution 2.8) on loopback for
//! end-to-end tests, and pushes small images into it over the distribution
//! API.
//!
//! ```no_run
//! # async fn demo() {
//! use tufd_tests::registry::{RegistryAuth, RegistryOptions, TestRegistry};
//!
//! let registry = TestRegistry::start(); // http on 127.0.0.1, no auth
//! let image = registry.push_image("library/app", "v1").await; // config + layer + OCI manifest
//! // resolve `{registry.host()}/library/app:v1`; expect image.digest and image.size()
//! let tls = TestRegistry::start_with(RegistryOptions {
//!     tls: true,
//!     auth: RegistryAuth::Token,
//! });
//! // trust tls.ca_path(), log in as USERNAME/PASSWORD …
//! // each process is killed when its `TestRegistry` is dropped, also on panic.
//! # }
//! ```
//!
//! Every [`TestRegistry`] has its own temporary directory (filesystem
//! storage), port and process. The process is spawned from one long-lived
//! thread with `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the test
//! process even when that is killed without unwinding.
//!
//! Authentication, when asked for, is docker-registry's `htpasswd` backend
//! (basic auth; the bcrypt hash is a constant, so no `htpasswd` tool is
//! needed) or its `token` backend with a small token service in this
//! process that checks basic credentials and issues ES256 JWTs signed by a
//! leaf of the test CA, which the registry trusts as its `rootcertbundle`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::notary::TestCa;

pub use tufd_remote::{
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
};

/// The user name the authenticating registries accept.
pub const USERNAME: &str = "tufd";
/// Its password.
pub const PASSWORD: &str = "tufd-registry-password";
/// bcrypt of [`PASSWORD`] at cost 4, so every request stays cheap.
const PASSWORD_BCRYPT: &str = "$2a$04$W/j1uAG7h1sc0lVhRYzqWudW4095yV.9kvNPSEbQh9uBBqaxMHeHW";

/// The `service` the token-auth registry names in its challenges.
pub const TOKEN_SERVICE: &str = "tufd-test-registry";
const TOKEN_ISSUER: &str = "tufd-test-token-issuer";

/// How long to wait for `GET /v2/` before giving up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How often to retry with a fresh port when another process took ours.
const PORT_ATTEMPTS: usize = 5;

/// OCI image config media type.
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer media type.
pub const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker image config media type.
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer media type.
pub const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// How the registry authenticates clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RegistryAuth {
    /// Anyone may pull and push.
    #[default]
    None,
    /// `auth.htpasswd`: basic auth with [`USERNAME`]/[`PASSWORD`].
    Htpasswd,
    /// `auth.token`: docker's bearer-token flow. The token service (plain
    /// http on loopback, in this process) wants [`USERNAME`]/[`PASSWORD`] as
    /// basic credentials and then grants what was asked for.
    Token,
}

/// Options for [`TestRegistry::start_with`].
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Serve https with a leaf (`127.0.0.1`, `localhost`) of a fresh test CA.
    pub tls: bool,
    /// Authentication.
    pub auth: RegistryAuth,
}

/// A manifest as pushed: the exact bytes the registry stores and serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedManifest {
    /// The manifest bytes.
    pub bytes: Vec<u8>,
    /// Its media type (the `Content-Type` of the PUT).
    pub media_type: String,
    /// sha256 of [`PushedManifest::bytes`].
    pub digest: [u8; 32],
    /// `(os, architecture)` of an image manifest pushed by [`TestRegistry::push_image_with`].
    pub platform: Option<(String, String)>,
}

impl PushedManifest {
    /// Length of the manifest in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// `sha256:<hex>`.
    pub fn digest_string(&self) -> String {
        format!("sha256:{}", hex::encode(self.digest))
    }
}

/// The shape of an image for [`TestRegistry::push_image_with`].
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// Docker schema 2 media types instead of OCI ones.
    pub docker_media_types: bool,
    /// `os` of the config and the platform.
    pub os: String,
    /// `architecture` of the config and the platform.
    pub architecture: String,
    /// Bytes of filler in an annotation, to make a large manifest.
    pub padding: usize,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            docker_media_types: false,
            os: "linux".into(),
            architecture: "amd64".into(),
            padding: 0,
        }
    }
}

/// One request the token service received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// `service` query parameter.
    pub service: Option<String>,
    /// `scope` query parameters, decoded.
    pub scopes: Vec<String>,
    /// The user name of the basic credentials sent, if any.
    pub username: Option<String>,
    /// Whether a token was issued.
    pub granted: bool,
}

/// A running `docker-registry` on `127.0.0.1`.
///
/// Dropping it kills the process and stops the token service; the
/// temporary directory goes last.
pub struct TestRegistry {
    child: Child,
    host: String,
    url: String,
    options: RegistryOptions,
    ca: Option<TestCa>,
    issuer: Option<Arc<TokenIssuer>>,
    token_service: Option<TokenService>,
    log: PathBuf,
    http: reqwest::Client,
    pushes: AtomicU64,
    dir: TempDir,
}

impl TestRegistry {
    /// Starts a plain-http registry without auth; panics (with the log) on failure.
    pub fn start() -> TestRegistry {
        TestRegistry::start_with(RegistryOptions::default())
    }

    /// Starts a registry; panics (with the log) on failure.
    pub fn start_with(options: RegistryOptions) -> TestRegistry {
        match TestRegistry::try_start(options) {
            Ok(r) => r,
            Err(e) => panic!("starting docker-registry: {e}"),
        }
    }

    /// Starts a registry, or explains why not.
    pub fn try_start(options: RegistryOptions) -> io::Result<TestRegistry> {
        let dir = tempfile::Builder::new()
            .prefix("tufd-registry-")
            .tempdir()?;
        let needs_ca = options.tls || options.auth == RegistryAuth::Token;
        let ca = needs_ca
            .then(|| TestCa::generate(dir.path(), "ca"))
            .transpose()?;
        let leaf = ca
            .as_ref()
            .map(|ca| ca.issue_leaf(dir.path(), "registry"))
            .transpose()?;
        let mut issuer = None;
        let mut token_service = None;
        let mut auth_yaml = String::new();
        match (options.auth, &ca, &leaf) {
            (RegistryAuth::None, _, _) => {}
            (RegistryAuth::Htpasswd, _, _) => {
                let htpasswd = dir.path().join("htpasswd");
                fs::write(&htpasswd, format!("{USERNAME}:{PASSWORD_BCRYPT}\n"))?;
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: tufd-test\n    path: {}\n",
                    htpasswd.display()
                );
            }
            (RegistryAuth::Token, Some(ca), Some(leaf)) => {
                let i = Arc::new(TokenIssuer::new(&leaf.cert, &leaf.key)?);
                let service = TokenService::start(Arc::clone(&i))?;
                auth_yaml = format!(
                    "auth:\n  token:\n    realm: {}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    service.url,
                    ca.cert.display()
                );
                issuer = Some(i);
                token_service = Some(service);
            }
            (RegistryAuth::Token, _, _) => return Err(io::Error::other("token auth needs a CA")),
        }
        let tls_yaml = match (options.tls, &leaf) {
            (true, Some(leaf)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                leaf.cert.display(),
                leaf.key.display()
            ),
            _ => String::new(),
        };
        let scheme = if options.tls { "https" } else { "http" };
        let ca_cert = ca.as_ref().map(|ca| ca.cert.clone());
        let http = push_client(ca_cert.as_deref())?;
        let probe_auth = match options.auth {
            RegistryAuth::None => None,
            RegistryAuth::Htpasswd => Some(basic_header(USERNAME, PASSWORD)),
            RegistryAuth::Token => issuer
                .as_ref()
                .map(|i| format!("Bearer {}", i.mint(USERNAME, &[]))),
        };
        let roots = match (&ca_cert, options.tls) {
            (Some(cert), true) => Some(Arc::new(crate::process::root_store(cert)?)),
            _ => None,
        };

        let mut last_err = None;
        for attempt in 0..PORT_ATTEMPTS {
            let port = crate::process::free_port()?;
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: tufd-test-secret\n{tls_yaml}\
                 {auth_yaml}",
                data = dir.path().join("data").display(),
            );
            let config_path = dir.path().join(format!("config-{attempt}.yml"));
            fs::write(&config_path, config)?;
            let log = dir.path().join(format!("registry-{attempt}.log"));
            let mut child = Guard(Some(spawn_registry(&config_path, &log)?));
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match wait_ready(
                &mut child,
                &log,
                addr,
                roots.as_ref(),
                probe_auth.as_deref(),
            ) {
                Ok(()) => {
                    let child = child
                        .0
                        .take()
                        .ok_or_else(|| io::Error::other("child handle lost"))?;
                    return Ok(TestRegistry {
                        child,
                        host: format!("127.0.0.1:{port}"),
                        url: format!("{scheme}://127.0.0.1:{port}"),
                        options,
                        ca,
                        issuer,
                        token_service,
                        log,
                        http,
                        pushes: AtomicU64::new(0),
                        dir,
                    });
                }
                Err(StartError::PortTaken(e)) => last_err = Some(e),
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no attempt made")))
    }

    /// `127.0.0.1:<port>`: the registry part of image names in it.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://127.0.0.1:<port>` or `https://…`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.host
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0)
    }

    /// The options it was started with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The test CA (for TLS or token auth).
    pub fn ca(&self) -> Option<&TestCa> {
        self.ca.as_ref()
    }

    /// The CA certificate (PEM) that signed the registry's certificate, if any.
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca.as_ref().map(|ca| ca.cert.as_path())
    }

    /// The credentials the registry (or its token service) accepts, if it authenticates.
    pub fn credentials(&self) -> Option<(&'static str, &'static str)> {
        (self.options.auth != RegistryAuth::None).then_some((USERNAME, PASSWORD))
    }

    /// The registry's process id (for tests of the harness itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory (config, storage under `data/`, log, certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's log so far, for failure messages.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The token service's base URL (`http://127.0.0.1:<port>`), with [`RegistryAuth::Token`].
    pub fn token_service_url(&self) -> Option<&str> {
        self.token_service.as_ref().map(|s| s.url.as_str())
    }

    /// The requests the token service has received so far.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.token_service
            .as_ref()
            .and_then(|s| s.requests.lock().ok().map(|r| r.clone()))
            .unwrap_or_default()
    }

    /// The `Authorization` header the harness itself uses for `repository`.
    fn authorization(&self, repository: &str) -> Option<String> {
        match self.options.auth {
            RegistryAuth::None => None,
            RegistryAuth::Htpasswd => Some(basic_header(USERNAME, PASSWORD)),
            RegistryAuth::Token => self.issuer.as_ref().map(|i| {
                let access = [(repository.to_owned(), vec!["pull".into(), "push".into()])];
                format!("Bearer {}", i.mint(USERNAME, &access))
            }),
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        repository: &str,
    ) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match self.authorization(repository) {
            Some(a) => req.header(reqwest::header::AUTHORIZATION, a),
            None => req,
        }
    }

    /// Uploads a blob (`POST …/blobs/uploads/`, then `PUT <location>&digest=…`
    /// with the whole body) and returns its digest `sha256:<hex>`. Panics on failure.
    pub async fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let start = format!("{}/v2/{repository}/blobs/uploads/", self.url);
        let resp = self
            .send(
                self.request(reqwest::Method::POST, &start, repository),
                &start,
            )
            .await;
        let location = match (resp.status().as_u16(), resp.headers().get("location")) {
            (202, Some(l)) => String::from_utf8_lossy(l.as_bytes()).into_owned(),
            (status, _) => panic!(
                "POST {start}: HTTP {status}: {}\n{}",
                body_text(resp).await,
                self.log_text()
            ),
        };
        let location = if location.starts_with('/') {
            format!("{}{location}", self.url)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={digest}");
        let req = self
            .request(reqwest::Method::PUT, &put, repository)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec());
        let resp = self.send(req, &put).await;
        if resp.status().as_u16() != 201 {
            panic!(
                "PUT {put}: HTTP {}: {}\n{}",
                resp.status(),
                body_text(resp).await,
                self.log_text()
            );
        }
        digest
    }

    /// Stores `bytes` as a manifest under `reference` (a tag or `sha256:…`).
    /// Checks that the registry reports the digest of exactly these bytes.
    /// Panics on failure; see [`TestRegistry::try_put_manifest`].
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> PushedManifest {
        match self
            .try_put_manifest(repository, reference, media_type, bytes)
            .await
        {
            Ok(m) => m,
            Err(e) => panic!("{e}\n{}", self.log_text()),
        }
    }

    /// Like [`TestRegistry::put_manifest`], returning the registry's refusal as text.
    pub async fn try_put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Vec<u8>,
    ) -> Result<PushedManifest, String> {
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.url);
        let req = self
            .request(reqwest::Method::PUT, &url, repository)
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .body(bytes.clone());
        let resp = self.send(req, &url).await;
        let status = resp.status().as_u16();
        let header = resp
            .headers()
            .get("docker-content-digest")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if status != 201 {
            return Err(format!(
                "PUT {url}: HTTP {status}: {}",
                body_text(resp).await
            ));
        }
        let pushed = PushedManifest {
            bytes,
            media_type: media_type.to_owned(),
            digest,
            platform: None,
        };
        if header.as_deref() != Some(pushed.digest_string().as_str()) {
            return Err(format!(
                "PUT {url}: registry reports digest {header:?}, pushed {}",
                pushed.digest_string()
            ));
        }
        Ok(pushed)
    }

    /// Pushes a small OCI image (config blob, one layer blob, manifest) and
    /// tags it. Returns the manifest as stored.
    pub async fn push_image(&self, repository: &str, tag: &str) -> PushedManifest {
        self.push_image_with(repository, tag, &ImageSpec::default())
            .await
    }

    /// Pushes a small image shaped by `spec` under `tag` (or only by digest
    /// when `tag` is `None`, as the children of an index usually are).
    pub async fn push_image_with(
        &self,
        repository: &str,
        tag: impl Into<Option<&str>>,
        spec: &ImageSpec,
    ) -> PushedManifest {
        let tag = tag.into();
        let bytes = self.image_manifest(repository, tag, spec).await;
        let media_type = if spec.docker_media_types {
            MEDIA_TYPE_DOCKER_MANIFEST
        } else {
            MEDIA_TYPE_OCI_MANIFEST
        };
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        let reference = tag.unwrap_or(&digest);
        let mut pushed = self
            .put_manifest(repository, reference, media_type, bytes)
            .await;
        pushed.platform = Some((spec.os.clone(), spec.architecture.clone()));
        pushed
    }

    /// Uploads the blobs of an image shaped by `spec` and returns its
    /// manifest bytes (pretty-printed JSON, so that they differ from any
    /// re-serialization), without putting the manifest.
    pub async fn image_manifest(
        &self,
        repository: &str,
        tag: Option<&str>,
        spec: &ImageSpec,
    ) -> Vec<u8> {
        let n = self.pushes.fetch_add(1, Ordering::Relaxed);
        let layer = format!(
            "tufd test layer {repository}:{} #{n} {}/{}",
            tag.unwrap_or("-"),
            spec.os,
            spec.architecture
        )
        .into_bytes();
        let layer_digest = self.push_blob(repository, &layer).await;
        let config = serde_json::json!({
            "architecture": spec.architecture,
            "os": spec.os,
            "config": { "Labels": { "tufd.test": format!("{repository}:{} #{n}", tag.unwrap_or("-")) } },
            "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        });
        let config = serde_json::to_vec(&config).unwrap_or_default();
        let config_digest = self.push_blob(repository, &config).await;
        let (manifest_type, config_type, layer_type) = if spec.docker_media_types {
            (
                MEDIA_TYPE_DOCKER_MANIFEST,
                MEDIA_TYPE_DOCKER_CONFIG,
                MEDIA_TYPE_DOCKER_LAYER,
            )
        } else {
            (
                MEDIA_TYPE_OCI_MANIFEST,
                MEDIA_TYPE_OCI_CONFIG,
                MEDIA_TYPE_OCI_LAYER,
            )
        };
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": { "mediaType": config_type, "digest": config_digest, "size": config.len() },
            "layers": [ { "mediaType": layer_type, "digest": layer_digest, "size": layer.len() } ],
        });
        if spec.padding > 0 {
            manifest["annotations"] =
                serde_json::json!({ "org.example.padding": "p".repeat(spec.padding) });
        }
        serde_json::to_vec_pretty(&manifest).unwrap_or_default()
    }

    /// Pushes a multi-platform index over `children` (already pushed to the
    /// same repository) under `tag`: an OCI image index, or a Docker
    /// manifest list with `docker_list`.
    pub async fn push_index(
        &self,
        repository: &str,
        tag: &str,
        children: &[PushedManifest],
        docker_list: bool,
    ) -> PushedManifest {
        let manifests: Vec<serde_json::Value> = children
            .iter()
            .map(|c| {
                let (os, arch) = c
                    .platform
                    .clone()
                    .unwrap_or_else(|| ("linux".into(), "amd64".into()));
                serde_json::json!({
                    "mediaType": c.media_type,
                    "digest": c.digest_string(),
                    "size": c.size(),
                    "platform": { "architecture": arch, "os": os },
                })
            })
            .collect();
        let media_type = if docker_list {
            MEDIA_TYPE_DOCKER_LIST
        } else {
            MEDIA_TYPE_OCI_INDEX
        };
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec_pretty(&index).unwrap_or_default();
        self.put_manifest(repository, tag, media_type, bytes).await
    }

    /// Pulls a manifest as an engine-less client does (`GET
    /// …/manifests/<tag or digest>` with the OCI and docker media types):
    /// the HTTP status and the bytes served.
    pub async fn pull_manifest(&self, repository: &str, reference: &str) -> (u16, Vec<u8>) {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.url);
        let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
        let resp = self
            .send(
                self.request(reqwest::Method::GET, &url, repository)
                    .header("Accept", accept),
                &url,
            )
            .await;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        (status, body)
    }

    /// Deletes a manifest by digest (`DELETE …/manifests/sha256:…`). Panics on failure.
    pub async fn delete_manifest(&self, repository: &str, digest: &str) {
        let url = format!("{}/v2/{repository}/manifests/{digest}", self.url);
        let resp = self
            .send(
                self.request(reqwest::Method::DELETE, &url, repository),
                &url,
            )
            .await;
        if resp.status().as_u16() != 202 {
            panic!(
                "DELETE {url}: HTTP {}: {}",
                resp.status(),
                body_text(resp).await
            );
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder, url: &str) -> reqwest::Response {
        match req.send().await {
            Ok(r) => r,
            Err(e) => panic!("{url}: {e:?}\n{}", self.log_text()),
        }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry")
            .field("url", &self.url)
            .field("options", &self.options)
            .field("dir", &self.dir.path())
            .field("pid", &self.child.id())
            .finish()
    }
}

async fn body_text(resp: reqwest::Response) -> String {
    resp.text().await.unwrap_or_else(|e| format!("(body: {e})"))
}

fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// The harness's own HTTP client: trusts the test CA when there is one.
fn push_client(ca: Option<&Path>) -> io::Result<reqwest::Client> {
    let roots = match ca {
        Some(ca) => crate::process::root_store(ca)?,
        None => rustls::RootCertStore::empty(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(io::Error::other)
}

enum StartError {
    PortTaken(io::Error),
    Other(io::Error),
}

/// Kills a registry whose start-up failed.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `GET /v2/` every 20 ms until it answers 200; fails when the
/// process exits (a taken port is reported as such) or the deadline passes.
fn wait_ready(
    child: &mut Guard,
    log: &Path,
    addr: SocketAddr,
    roots: Option<&Arc<rustls::RootCertStore>>,
    auth: Option<&str>,
) -> Result<(), StartError> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if probe_v2(addr, roots, auth).unwrap_or(false) {
            return Ok(());
        }
        let exited = match child.0.as_mut() {
            Some(c) => c.try_wait().map_err(StartError::Other)?,
            None => None,
        };
        if let Some(status) = exited {
            let text = fs::read_to_string(log).unwrap_or_default();
            let err = io::Error::other(format!("docker-registry exited ({status}):\n{text}"));
            return Err(if text.contains("address already in use") {
                StartError::PortTaken(err)
            } else {
                StartError::Other(err)
            });
        }
        if Instant::now() > deadline {
            return Err(StartError::Other(io::Error::other(format!(
                "docker-registry not ready after {STARTUP_TIMEOUT:?}:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            ))));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `GET /v2/` (over TLS when `roots` is given); true on HTTP 200.
fn probe_v2(
    addr: SocketAddr,
    roots: Option<&Arc<rustls::RootCertStore>>,
    auth: Option<&str>,
) -> io::Result<bool> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    tcp.set_read_timeout(Some(Duration::from_secs(2)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(2)))?;
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    let mut head = [0u8; 12];
    match roots {
        None => {
            let mut tcp = tcp;
            tcp.write_all(request.as_bytes())?;
            tcp.read_exact(&mut head)?;
        }
        Some(roots) => {
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(Arc::clone(roots))
            .with_no_client_auth();
            let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
            let conn =
                rustls::ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            tls.write_all(request.as_bytes())?;
            tls.read_exact(&mut head)?;
        }
    }
    Ok(&head == b"HTTP/1.1 200")
}

fn spawn_registry(config: &Path, log: &Path) -> io::Result<Child> {
    let out = File::create(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // docker-registry overrides its configuration from REGISTRY_* variables.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(key);
        }
    }
    crate::process::spawn_tied(cmd)
}

/// Issues the JWTs docker-registry's token auth accepts: ES256, the signing
/// certificate in `x5c`, chained to the CA the registry trusts.
struct TokenIssuer {
    key: SigningKey,
    x5c: String,
    serial: AtomicU64,
}

impl TokenIssuer {
    fn new(cert: &Path, key: &Path) -> io::Result<TokenIssuer> {
        let key_pem = fs::read_to_string(key)?;
        let secret = p256::SecretKey::from_sec1_pem(&key_pem).map_err(io::Error::other)?;
        let cert_pem = fs::read(cert)?;
        let der = pem::parse(cert_pem).map_err(io::Error::other)?;
        Ok(TokenIssuer {
            key: SigningKey::from(secret),
            x5c: STANDARD.encode(der.contents()),
            serial: AtomicU64::new(0),
        })
    }

    /// A token for `subject` with `access`: `(repository, actions)`.
    fn mint(&self, subject: &str, access: &[(String, Vec<String>)]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "x5c": [self.x5c] });
        let access: Vec<serde_json::Value> = access
            .iter()
            .map(|(name, actions)| {
                serde_json::json!({ "type": "repository", "name": name, "actions": actions })
            })
            .collect();
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER,
            "sub": subject,
            "aud": TOKEN_SERVICE,
            "exp": now + 300,
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": format!("tufd-test-{now}-{}", self.serial.fetch_add(1, Ordering::Relaxed)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature = self.key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

/// A docker token service on `127.0.0.1` (plain http), one request per connection.
struct TokenService {
    url: String,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    thread: Option<JoinHandle<()>>,
}

impl TokenService {
    fn start(issuer: Arc<TokenIssuer>) -> io::Result<TokenService> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (Arc::clone(&stop), Arc::clone(&requests));
        let thread = std::thread::Builder::new()
            .name("registry-token-service".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(conn) = conn {
                        let _ = serve_token(conn, &issuer, &requests2);
                    }
                }
            })?;
        Ok(TokenService {
            url: format!("http://{addr}"),
            addr,
            stop,
            requests,
            thread: Some(thread),
        })
    }
}

impl Drop for TokenService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_token(
    conn: TcpStream,
    issuer: &TokenIssuer,
    requests: &Mutex<Vec<TokenRequest>>,
) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut service = None;
    let mut scopes = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "service" => service = Some(percent_decode(v)),
            "scope" => scopes.push(percent_decode(v)),
            _ => {}
        }
    }
    let username = headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .map(|text| match text.split_once(':') {
            Some((u, p)) => (u.to_owned(), p == PASSWORD),
            None => (text, false),
        });
    let granted = path == "/token"
        && service.as_deref() == Some(TOKEN_SERVICE)
        && matches!(&username, Some((u, true)) if u == USERNAME);
    if let Ok(mut r) = requests.lock() {
        r.push(TokenRequest {
            service: service.clone(),
            scopes: scopes.clone(),
            username: username.as_ref().map(|(u, _)| u.clone()),
            granted,
        });
    }
    let (status, body) = if granted {
        let access: Vec<(String, Vec<String>)> = scopes
            .iter()
            .filter_map(|s| {
                let rest = s.strip_prefix("repository:")?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some((
                    name.to_owned(),
                    actions.split(',').map(str::to_owned).collect(),
                ))
            })
            .collect();
        let token = issuer.mint(USERNAME, &access);
        (
            "200 OK",
            serde_json::json!({ "token": token, "access_token": token, "expires_in": 300 })
                .to_string(),
        )
    } else {
        (
            "401 Unauthorized",
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                .to_owned(),
        )
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

//! Resolving a tag to the digest and size of its manifest over the OCI
//! distribution API, as docker does before it signs `REPO:TAG`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tufd_remote::RegistryError> {
//! use tufd_remote::{ImageRef, RegistryClient, RegistryConfig};
//!
//! let mut config = RegistryConfig::new();
//! config.ca_file = Some("/etc/tufd/registry-ca.pem".into());
//! let client = RegistryClient::new(&config)?;
//! let image = ImageRef::new("registry.example.com/team/app", "v1")?;
//! let manifest = client.resolve(&image).await?;
//! println!("{image}: {} ({} bytes, {})", manifest.digest_string(), manifest.size, manifest.media_type);
//! # Ok(()) }
//! ```
//!
//! The digest is the sha256 of the manifest bytes exactly as the registry
//! serves them (for a multi-platform image: of the index or manifest list,
//! which is what docker signs). A `Docker-Content-Digest` header, when
//! present, must agree. Schema 1 manifests are refused: their digest is not
//! the hash of the served bytes.
//!
//! Transport rules: https by default, verified against [`RegistryConfig::ca_file`]
//! or the system roots, never unverified. A registry on a loopback address
//! (`localhost`, `127.0.0.0/8`, `::1`) or listed in
//! [`RegistryConfig::insecure_registries`] is tried over https first and
//! over plain http when it answers the TLS handshake with something that is
//! not TLS; the choice is remembered per registry.
//!
//! Why not `oci-client`: all that signing needs is one manifest GET and the
//! token flow. `oci-client` 0.18 brings the whole pull/push surface, its
//! default TLS feature uses aws-lc-rs, and its ring-compatible feature wants
//! a process-wide default crypto provider installed; this module instead
//! shares this crate's per-client rustls/ring configuration (custom CA,
//! client certificate), error classification and size-bounded body reading
//! with the notary client.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{ClientIdentity, Error, RemoteConfig};

/// OCI image index (multi-platform).
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (multi-platform).
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The media types asked for, in docker's order of preference.
const ACCEPTED: [&str; 4] = [
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_MANIFEST,
];

/// The largest manifest docker and distribution accept (4 MiB).
pub const DEFAULT_MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// Limit for token-service answers and error documents.
const SMALL_BODY_LIMIT: u64 = 64 << 10;

/// Docker Hub's name in image references, and the host that serves its API.
use tufd_proto::names::{self, DOCKER_HUB};

mod pull;
mod redirect;
pub use pull::{PullObject, Pulled};
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Everything that can go wrong resolving a tag.
///
/// Variants that concern a request name its URL, or the image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The client configuration is unusable (unreadable CA file, …).
    #[error("invalid registry client configuration: {0}")]
    Config(String),

    /// An image name or tag that is not a valid docker reference.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it was refused.
        reason: String,
    },

    /// The repository exists (or the registry does not say otherwise) but has no such tag.
    #[error("no tag {tag} in {registry}/{repository}")]
    TagNotFound {
        /// The registry name, e.g. `localhost:5000`.
        registry: String,
        /// The repository, e.g. `library/app`.
        repository: String,
        /// The tag.
        tag: String,
    },

    /// The registry does not know the repository (`NAME_UNKNOWN`).
    #[error("no repository {repository} in {registry} (looking for tag {tag})")]
    RepositoryNotFound {
        /// The registry name.
        registry: String,
        /// The repository.
        repository: String,
        /// The tag asked for.
        tag: String,
    },

    /// HTTP 401/403 from the registry or its token service.
    #[error("{url}: access refused (HTTP {status}): {hint}")]
    Unauthorized {
        /// The URL requested.
        url: String,
        /// 401 or 403.
        status: u16,
        /// What to check, including the registry's own explanation when it gave one.
        hint: String,
    },

    /// The token service named by the registry failed or answered nonsense.
    #[error("{url}: token service failed: {detail}")]
    TokenService {
        /// The token request URL (without credentials).
        url: String,
        /// What went wrong.
        detail: String,
    },

    /// Plain http to a host that is neither loopback nor configured as insecure.
    #[error(
        "{url}: refusing plain http to {host}; use https or list {host} in insecure_registries"
    )]
    InsecureRefused {
        /// The URL that would have been used.
        url: String,
        /// Its host.
        host: String,
    },

    /// A blob redirect that leads where tufd does not go: plain http to
    /// another host than the upstream, or a host that resolves to a
    /// loopback, private, link-local or this machine's address.
    #[error("{url}: redirect refused: {reason}")]
    RedirectRefused {
        /// The redirect's target.
        url: String,
        /// Why it was not followed.
        reason: String,
    },

    /// The TLS handshake failed (unknown CA, wrong host name, …).
    #[error("{url}: TLS failure talking to the registry: {detail}")]
    Tls {
        /// The URL requested.
        url: String,
        /// The underlying error chain, with a hint for common cases.
        detail: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The registry could not be reached (refused, unreachable, DNS).
    #[error("{url}: cannot connect to the registry: {detail}")]
    Connect {
        /// The URL requested.
        url: String,
        /// The underlying error chain.
        detail: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The connect or the overall request timeout expired.
    #[error("{url}: the registry did not answer in time ({phase})")]
    Timeout {
        /// The URL requested.
        url: String,
        /// `connect` or `request`.
        phase: &'static str,
    },

    /// The manifest (or another answer) exceeded the limit; reading stopped there.
    #[error("{url}: response exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },

    /// `Docker-Content-Digest` disagrees with the hash of the bytes received.
    #[error(
        "{url}: digest mismatch: the registry says {header}, the manifest received hashes to {computed}"
    )]
    DigestMismatch {
        /// The URL requested.
        url: String,
        /// The header value.
        header: String,
        /// `sha256:<hex>` of the received bytes.
        computed: String,
    },

    /// A manifest kind whose digest docker would not sign (schema 1, or not a manifest at all).
    #[error("{url}: unsupported manifest media type {media_type:?}{}", hint_suffix(.media_type))]
    UnsupportedMediaType {
        /// The URL requested.
        url: String,
        /// The media type served (empty when none).
        media_type: String,
    },

    /// A success answer whose content is not what the API promises.
    #[error("{url}: malformed response from the registry: {detail}")]
    BadResponse {
        /// The URL requested.
        url: String,
        /// What was wrong.
        detail: String,
    },

    /// Any other non-success status.
    #[error("{url}: registry answered HTTP {status}: {detail}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error codes and messages, or the start of the body.
        detail: String,
    },

    /// Any other transport failure (connection reset mid-body, protocol error, …).
    #[error("{url}: request to the registry failed: {detail}")]
    Transport {
        /// The URL requested.
        url: String,
        /// The underlying error chain.
        detail: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
}

fn hint_suffix(media_type: &str) -> &'static str {
    if media_type.contains("manifest.v1+") {
        "; schema 1 manifests are not signable, push the image again with a current docker"
    } else {
        ""
    }
}

impl RegistryError {
    /// True when the tag or the repository does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            RegistryError::TagNotFound { .. } | RegistryError::RepositoryNotFound { .. }
        )
    }

    /// True for failures that may go away by trying again unchanged
    /// (connection, timeout, 429, 502–504).
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Connect { .. }
            | RegistryError::Timeout { .. }
            | RegistryError::Transport { .. } => true,
            RegistryError::Status { status, .. } => matches!(status, 429 | 502..=504),
            _ => false,
        }
    }

    /// Maps the crate's transport-level errors (from the shared helpers).
    fn from_transport(e: Error) -> Self {
        match e {
            Error::Tls {
                url,
                detail,
                source,
            } => RegistryError::Tls {
                url,
                detail,
                source,
            },
            Error::Connect {
                url,
                detail,
                source,
            } => RegistryError::Connect {
                url,
                detail,
                source,
            },
            Error::Transport {
                url,
                detail,
                source,
            } => RegistryError::Transport {
                url,
                detail,
                source,
            },
            Error::Timeout { url, phase } => RegistryError::Timeout { url, phase },
            Error::TooLarge { url, limit } => RegistryError::TooLarge { url, limit },
            Error::Config(detail) => RegistryError::Config(detail),
            other => RegistryError::BadResponse {
                url: other.url().unwrap_or_default().to_owned(),
                detail: other.to_string(),
            },
        }
    }

    fn transport(url: &str, e: reqwest::Error) -> Self {
        RegistryError::from_transport(crate::transport::classify(url, e))
    }

    /// Appends a hint to a TLS error's detail; other errors are returned unchanged.
    fn with_tls_hint(self, hint: &str) -> Self {
        match self {
            RegistryError::Tls {
                url,
                mut detail,
                source,
            } => {
                detail.push_str(&format!(" ({hint})"));
                RegistryError::Tls {
                    url,
                    detail,
                    source,
                }
            }
            other => other,
        }
    }

    /// True when the peer answered the TLS handshake with something that is
    /// not TLS, i.e. it speaks plain http on that port.
    fn is_plain_http_peer(&self) -> bool {
        let RegistryError::Tls { source, .. } = self else {
            return false;
        };
        let mut cur: Option<&(dyn StdError + 'static)> = Some(source);
        while let Some(e) = cur {
            let mut inner = e;
            loop {
                if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                    return matches!(tls, rustls::Error::InvalidMessage(_));
                }
                match inner
                    .downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                {
                    Some(next) => inner = next,
                    None => break,
                }
            }
            cur = e.source();
        }
        false
    }
}

/// User name and password for one registry (basic auth, or for its token service).
#[derive(Clone, Debug)]
pub struct RegistryCredentials {
    /// User name.
    pub username: String,
    /// Password or access token; never logged.
    pub password: SecretString,
}

impl RegistryCredentials {
    /// Credentials from a user name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        RegistryCredentials {
            username: username.into(),
            password: SecretString::from(password.into()),
        }
    }
}

/// How to reach registries. Construct with [`RegistryConfig::new`] and adjust the fields.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// PEM file of the CA certificate(s) for https registries (and token
    /// services). When set it **replaces** the system roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate for registries that want mutual TLS.
    pub client_identity: Option<ClientIdentity>,
    /// Registries (`host[:port]`, as in image names) that may be reached
    /// over plain http, in addition to loopback ones. https is still tried
    /// first and certificates are always verified.
    pub insecure_registries: Vec<String>,
    /// Credentials per registry name (`host[:port]` as in [`ImageRef::registry`],
    /// `docker.io` for Docker Hub), used for basic auth or towards the token service.
    pub credentials: BTreeMap<String, RegistryCredentials>,
    /// Limit for establishing the TCP connection and the TLS handshake.
    pub connect_timeout: Duration,
    /// Limit for one whole request, from sending to the last body byte.
    pub timeout: Duration,
    /// Largest manifest accepted; larger ones are cut off while streaming.
    pub max_manifest_size: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig::new()
    }
}

impl RegistryConfig {
    /// Defaults: system roots, no insecure registries, no credentials, 10 s
    /// connect timeout, 30 s request timeout, 4 MiB manifests.
    pub fn new() -> Self {
        RegistryConfig {
            ca_file: None,
            client_identity: None,
            insecure_registries: Vec::new(),
            credentials: BTreeMap::new(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_manifest_size: DEFAULT_MAX_MANIFEST_SIZE,
        }
    }

    /// Sets [`RegistryConfig::ca_file`].
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Adds credentials for `registry`.
    pub fn with_credentials(
        mut self,
        registry: impl Into<String>,
        credentials: RegistryCredentials,
    ) -> Self {
        self.credentials.insert(registry.into(), credentials);
        self
    }
}

/// An image tag in a registry, parsed from a docker-style name: `registry/repository:tag`.
///
/// Names are normalized as docker does: without a registry part the image
/// is on Docker Hub (`docker.io`), and a one-component Hub name gets
/// `library/` (`alpine` → `docker.io/library/alpine`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: String,
}

impl ImageRef {
    /// From a repository name (a GUN such as `localhost:5000/library/app`)
    /// and a tag.
    pub fn new(name: &str, tag: &str) -> Result<Self, RegistryError> {
        let invalid = |e: names::NameError| RegistryError::InvalidReference {
            reference: format!("{name}:{tag}"),
            reason: e.reason,
        };
        names::check_tag(tag).map_err(invalid)?;
        let r = names::Reference::parse(name).map_err(invalid)?;
        if r.tag().is_some() || r.digest().is_some() {
            return Err(RegistryError::InvalidReference {
                reference: format!("{name}:{tag}"),
                reason: "the repository name carries a tag or digest of its own".into(),
            });
        }
        Ok(ImageRef {
            registry: r.domain().to_owned(),
            repository: r.path().to_owned(),
            tag: tag.to_owned(),
        })
    }

    /// From `name:tag`, e.g. `localhost:5000/library/app:v1`. The tag is
    /// required (docker signs tags); digest references are refused.
    pub fn parse(reference: &str) -> Result<Self, RegistryError> {
        let (name, tag) =
            names::tagged(reference).map_err(|e| RegistryError::InvalidReference {
                reference: reference.to_owned(),
                reason: e.reason,
            })?;
        ImageRef::new(&name, &tag)
    }

    /// The registry as named in the image (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository inside the registry, e.g. `library/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The full repository name (the GUN content trust uses), e.g. `docker.io/library/alpine`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host (and port) serving the registry API: `registry-1.docker.io` for Docker Hub.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

impl FromStr for ImageRef {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, RegistryError> {
        ImageRef::parse(s)
    }
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = split_host_port(registry);
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'-')
            })
    };
    host_ok && port_ok
}

/// `host[:port]` → (host, port); the host keeps IPv6 brackets.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if s.starts_with('[') {
        match s.find(']') {
            Some(end) => match s[end + 1..].strip_prefix(':') {
                Some(port) => (&s[..=end], Some(port)),
                None => (s, None),
            },
            None => (s, None),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    }
}

/// Plain http is allowed to loopback hosts and configured insecure registries.
fn http_allowed(insecure: &[String], host_port: &str) -> bool {
    let (host, _) = split_host_port(host_port);
    is_loopback_host(host) || insecure.iter().any(|r| r == host_port)
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What a tag resolves to: the descriptor content trust signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestDescriptor {
    /// sha256 of the manifest bytes as served.
    pub digest: [u8; 32],
    /// Length of the manifest in bytes.
    pub size: u64,
    /// The manifest's media type, e.g. [`MEDIA_TYPE_OCI_INDEX`].
    pub media_type: String,
}

impl ManifestDescriptor {
    /// `sha256:<hex>`, the form registries and docker print.
    pub fn digest_string(&self) -> String {
        format!("sha256:{}", hex::encode(self.digest))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// Resolves tags to manifest descriptors. Cheap to clone (the connection
/// pool and the per-registry scheme choices are shared).
#[derive(Clone, Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    /// Follows blob redirects to hosts other than the upstream: connects
    /// only to public addresses (see `registry/redirect.rs`).
    redirect_http: reqwest::Client,
    insecure: Vec<String>,
    credentials: BTreeMap<String, RegistryCredentials>,
    max_manifest_size: u64,
    schemes: Arc<Mutex<HashMap<String, Scheme>>>,
    /// Pull tokens per (API host, repository), reused until shortly before they expire.
    tokens: Arc<Mutex<HashMap<(String, String), CachedToken>>>,
}

#[derive(Debug)]
struct CachedToken {
    token: SecretString,
    valid_until: Instant,
}

/// What a token service answered: the token and its lifetime.
struct Token {
    token: SecretString,
    expires_in: Duration,
}

enum Authorization<'a> {
    None,
    Basic(&'a RegistryCredentials),
    Bearer(SecretString),
}

impl RegistryClient {
    /// Builds a client; reads the CA and client-certificate files now.
    pub fn new(config: &RegistryConfig) -> Result<Self, RegistryError> {
        let mut tls_cfg = RemoteConfig::new("");
        tls_cfg.ca_file = config.ca_file.clone();
        tls_cfg.client_identity = config.client_identity.clone();
        let tls = crate::tls::client_config(&tls_cfg).map_err(RegistryError::from_transport)?;
        let builder = || {
            reqwest::Client::builder()
                .tls_backend_preconfigured(tls.clone())
                .connect_timeout(config.connect_timeout)
                .timeout(config.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("tufd-remote/", env!("CARGO_PKG_VERSION")))
        };
        let setup = |e: reqwest::Error| RegistryError::Config(format!("HTTP client setup: {e}"));
        let http = builder().build().map_err(setup)?;
        let redirect_http = builder()
            .dns_resolver(Arc::new(redirect::PublicOnly))
            .build()
            .map_err(setup)?;
        for r in &config.insecure_registries {
            if !valid_registry(r) {
                return Err(RegistryError::Config(format!(
                    "insecure registry {r:?} is not host[:port]"
                )));
            }
        }
        Ok(RegistryClient {
            http,
            redirect_http,
            insecure: config.insecure_registries.clone(),
            credentials: config.credentials.clone(),
            max_manifest_size: config.max_manifest_size,
            schemes: Arc::default(),
            tokens: Arc::default(),
        })
    }

    /// The digest, size and media type of the manifest `reference` points to.
    ///
    /// `GET /v2/<repository>/manifests/<tag>` with docker's `Accept` list,
    /// answering a `Bearer` challenge through the token service (with the
    /// registry's credentials when configured) or a `Basic` one with the
    /// credentials.
    pub async fn resolve(&self, reference: &ImageRef) -> Result<ManifestDescriptor, RegistryError> {
        let host = reference.api_host();
        let path = format!("/v2/{}/manifests/{}", reference.repository, reference.tag);
        let first = match self.cached_token(reference) {
            Some(token) => Authorization::Bearer(token),
            None => Authorization::None,
        };
        let (url, resp) = self.get_manifest(host, &path, &first).await?;
        let (auth, url, resp) = if resp.status() == StatusCode::UNAUTHORIZED {
            if matches!(first, Authorization::Bearer(_)) {
                self.forget_token(reference);
            }
            let auth = self.answer_challenge(reference, &url, resp).await?;
            let (url, resp) = self.get_manifest(host, &path, &auth).await?;
            (auth, url, resp)
        } else {
            (first, url, resp)
        };
        let status = resp.status();
        if status.is_success() {
            return self.read_manifest(&url, resp).await;
        }
        Err(self.status_error(reference, &url, resp, &auth).await)
    }

    fn token_key(reference: &ImageRef) -> (String, String) {
        (
            reference.api_host().to_owned(),
            reference.repository().to_owned(),
        )
    }

    /// A pull token from an earlier resolve in the same repository, if still valid.
    fn cached_token(&self, reference: &ImageRef) -> Option<SecretString> {
        let mut tokens = self.tokens.lock().ok()?;
        let key = Self::token_key(reference);
        match tokens.get(&key) {
            Some(t) if t.valid_until > Instant::now() => Some(t.token.clone()),
            Some(_) => {
                tokens.remove(&key);
                None
            }
            None => None,
        }
    }

    fn remember_token(&self, reference: &ImageRef, token: &Token) {
        // Reuse for 80% of its lifetime, so it does not expire in flight.
        let lifetime = token.expires_in.mul_f32(0.8);
        if lifetime.is_zero() {
            return;
        }
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, t| t.valid_until > Instant::now());
            tokens.insert(
                Self::token_key(reference),
                CachedToken {
                    token: token.token.clone(),
                    valid_until: Instant::now() + lifetime,
                },
            );
        }
    }

    fn forget_token(&self, reference: &ImageRef) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&Self::token_key(reference));
        }
    }

    /// The credentials configured for the image's registry.
    fn credentials_for(&self, reference: &ImageRef) -> Option<&RegistryCredentials> {
        self.credentials
            .get(reference.registry())
            .or_else(|| self.credentials.get(reference.api_host()))
    }

    fn http_allowed(&self, host_port: &str) -> bool {
        http_allowed(&self.insecure, host_port)
    }

    /// One manifest GET, choosing (and remembering) https or plain http.
    async fn get_manifest(
        &self,
        host: &str,
        path: &str,
        auth: &Authorization<'_>,
    ) -> Result<(String, reqwest::Response), RegistryError> {
        let known = self.schemes.lock().ok().and_then(|m| m.get(host).copied());
        let first = known.unwrap_or(Scheme::Https);
        let url = format!("{}://{host}{path}", first.as_str());
        match self.send_get(&url, auth).await {
            Ok(resp) => {
                self.remember(host, first);
                Ok((url, resp))
            }
            Err(e) if known.is_none() && e.is_plain_http_peer() && self.http_allowed(host) => {
                let url = format!("http://{host}{path}");
                tracing::debug!(%host, "registry speaks plain http");
                let resp = self.send_get(&url, auth).await?;
                self.remember(host, Scheme::Http);
                Ok((url, resp))
            }
            Err(e) if first == Scheme::Https && e.is_plain_http_peer() => {
                Err(e.with_tls_hint(&format!(
                    "the registry seems to speak plain http; if that is intended, list {host} in insecure_registries"
                )))
            }
            Err(e) => Err(e),
        }
    }

    fn remember(&self, host: &str, scheme: Scheme) {
        if let Ok(mut m) = self.schemes.lock() {
            m.insert(host.to_owned(), scheme);
        }
    }

    async fn send_get(
        &self,
        url: &str,
        auth: &Authorization<'_>,
    ) -> Result<reqwest::Response, RegistryError> {
        tracing::debug!(%url, "registry request");
        let mut req = self.http.get(url).header(ACCEPT, ACCEPTED.join(", "));
        match auth {
            Authorization::None => {}
            Authorization::Basic(c) => {
                req = req.basic_auth(&c.username, Some(c.password.expose_secret()));
            }
            Authorization::Bearer(token) => req = req.bearer_auth(token.expose_secret()),
        }
        req.send()
            .await
            .map_err(|e| RegistryError::transport(url, e))
    }

    /// Turns a 401 into the authorization to retry with.
    async fn answer_challenge<'a>(
        &'a self,
        reference: &ImageRef,
        url: &str,
        resp: reqwest::Response,
    ) -> Result<Authorization<'a>, RegistryError> {
        let challenges = challenges(resp.headers());
        let credentials = self.credentials_for(reference);
        let unauthorized = |hint: String| RegistryError::Unauthorized {
            url: url.to_owned(),
            status: 401,
            hint,
        };
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.fetch_token(reference, bearer, credentials).await?;
            self.remember_token(reference, &token);
            return Ok(Authorization::Bearer(token.token));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return match credentials {
                Some(c) => Ok(Authorization::Basic(c)),
                None => Err(unauthorized(format!(
                    "the registry wants a user name and password; configure credentials for {}",
                    reference.registry()
                ))),
            };
        }
        let offered: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        Err(unauthorized(if offered.is_empty() {
            "the registry refused access without naming an authentication scheme".to_owned()
        } else {
            format!(
                "the registry asks for authentication this client does not support ({})",
                offered.join(", ")
            )
        }))
    }

    /// The docker token flow: `GET <realm>?service=…&scope=…`, with basic
    /// credentials when configured. As with docker, the realm may be another
    /// host than the registry (Docker Hub: `auth.docker.io`); it gets the
    /// registry's credentials, over https unless it is loopback or listed as
    /// insecure.
    async fn fetch_token(
        &self,
        reference: &ImageRef,
        challenge: &Challenge,
        credentials: Option<&RegistryCredentials>,
    ) -> Result<Token, RegistryError> {
        let realm = challenge.param("realm").unwrap_or_default();
        let token_error = |url: &str, detail: String| RegistryError::TokenService {
            url: url.to_owned(),
            detail,
        };
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            token_error(
                realm,
                format!("the registry named an unusable token realm: {e}"),
            )
        })?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let host_port = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        match url.scheme() {
            "https" => {}
            "http" if self.http_allowed(&host_port) => {}
            "http" => {
                return Err(RegistryError::InsecureRefused {
                    url: realm.to_owned(),
                    host: host_port,
                });
            }
            other => {
                return Err(token_error(
                    realm,
                    format!("token realm scheme {other:?} is not http(s)"),
                ));
            }
        }
        let scope = challenge
            .param("scope")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("repository:{}:pull", reference.repository()));
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                q.append_pair("service", service);
            }
            q.append_pair("scope", &scope);
        }
        let url = url.to_string();
        tracing::debug!(%url, with_credentials = credentials.is_some(), "registry token request");
        let mut req = self.http.get(&url);
        if let Some(c) = credentials {
            req = req.basic_auth(&c.username, Some(c.password.expose_secret()));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| RegistryError::transport(&url, e))?;
        let status = resp.status();
        let body = crate::body::read_limited(&url, resp, SMALL_BODY_LIMIT)
            .await
            .map_err(RegistryError::from_transport)?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let why = error_detail(&body);
            return Err(RegistryError::Unauthorized {
                url,
                status: status.as_u16(),
                hint: match credentials {
                    Some(c) => format!(
                        "the token service rejected the credentials of {:?} for {}: {why}",
                        c.username,
                        reference.registry()
                    ),
                    None => format!(
                        "the token service wants credentials; configure them for {}: {why}",
                        reference.registry()
                    ),
                },
            });
        }
        if !status.is_success() {
            return Err(token_error(
                &url,
                format!("HTTP {}: {}", status.as_u16(), error_detail(&body)),
            ));
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| token_error(&url, format!("answer is not a token document: {e}")))?;
        // The token specification's default lifetime is 60 s.
        let expires_in = Duration::from_secs(answer.expires_in.unwrap_or(60).min(3600));
        answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token.filter(|t| !t.is_empty()))
            .map(|token| Token {
                token: SecretString::from(token),
                expires_in,
            })
            .ok_or_else(|| token_error(&url, "answer holds no token".to_owned()))
    }

    async fn read_manifest(
        &self,
        url: &str,
        resp: reqwest::Response,
    ) -> Result<ManifestDescriptor, RegistryError> {
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned());
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
            .filter(|v| !v.is_empty());
        let body: Bytes = crate::body::read_limited(url, resp, self.max_manifest_size)
            .await
            .map_err(RegistryError::from_transport)?;
        let digest: [u8; 32] = Sha256::digest(&body).into();
        let computed = format!("sha256:{}", hex::encode(digest));
        if let Some(header) = header_digest {
            match header.split_once(':') {
                Some(("sha256", hex_part)) => {
                    if !hex_part.eq_ignore_ascii_case(&computed["sha256:".len()..]) {
                        return Err(RegistryError::DigestMismatch {
                            url: url.to_owned(),
                            header,
                            computed,
                        });
                    }
                }
                Some((alg, _)) if !alg.is_empty() => {
                    tracing::debug!(%url, %header, "Docker-Content-Digest not sha256; not cross-checked");
                }
                _ => {
                    return Err(RegistryError::BadResponse {
                        url: url.to_owned(),
                        detail: format!("malformed Docker-Content-Digest {header:?}"),
                    });
                }
            }
        }
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "schemaVersion")]
            schema_version: Option<u64>,
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
        }
        let head: Head = serde_json::from_slice(&body).map_err(|e| RegistryError::BadResponse {
            url: url.to_owned(),
            detail: format!("the manifest is not a JSON object: {e}"),
        })?;
        let media_type = match (&content_type, &head.media_type) {
            (Some(ct), Some(mt)) if ct != mt && ACCEPTED.contains(&ct.as_str()) => {
                return Err(RegistryError::BadResponse {
                    url: url.to_owned(),
                    detail: format!(
                        "Content-Type {ct} disagrees with the manifest's mediaType {mt}"
                    ),
                });
            }
            (Some(ct), _) if ACCEPTED.contains(&ct.as_str()) => ct.clone(),
            (_, Some(mt)) => mt.clone(),
            (Some(ct), None) => ct.clone(),
            (None, None) => String::new(),
        };
        if !ACCEPTED.contains(&media_type.as_str()) || head.schema_version != Some(2) {
            return Err(RegistryError::UnsupportedMediaType {
                url: url.to_owned(),
                media_type,
            });
        }
        Ok(ManifestDescriptor {
            digest,
            size: body.len() as u64,
            media_type,
        })
    }

    /// True when `GET …/tags/list` for the manifest URL's repository answers
    /// 404 `NAME_UNKNOWN`. Any other outcome (including errors) is false.
    async fn repository_unknown(&self, manifest_url: &str, auth: &Authorization<'_>) -> bool {
        let Some((base, _)) = manifest_url.rsplit_once("/manifests/") else {
            return false;
        };
        let url = format!("{base}/tags/list?n=1");
        let Ok(resp) = self.send_get(&url, auth).await else {
            return false;
        };
        if resp.status() != StatusCode::NOT_FOUND {
            return false;
        }
        let body = crate::body::read_limited(&url, resp, SMALL_BODY_LIMIT)
            .await
            .unwrap_or_default();
        registry_errors(&body)
            .iter()
            .any(|e| e.code == "NAME_UNKNOWN")
    }

    async fn status_error(
        &self,
        reference: &ImageRef,
        url: &str,
        resp: reqwest::Response,
        auth: &Authorization<'_>,
    ) -> RegistryError {
        let status = resp.status();
        // Best effort: an unreadable error body must not hide the status.
        let body = crate::body::read_limited(url, resp, SMALL_BODY_LIMIT)
            .await
            .unwrap_or_default();
        let codes = registry_errors(&body);
        match status {
            StatusCode::NOT_FOUND => {
                // distribution answers MANIFEST_UNKNOWN for a tag in an
                // unknown repository too; the tag list tells them apart.
                if codes.iter().any(|e| e.code == "NAME_UNKNOWN")
                    || self.repository_unknown(url, auth).await
                {
                    RegistryError::RepositoryNotFound {
                        registry: reference.registry.clone(),
                        repository: reference.repository.clone(),
                        tag: reference.tag.clone(),
                    }
                } else {
                    RegistryError::TagNotFound {
                        registry: reference.registry.clone(),
                        repository: reference.repository.clone(),
                        tag: reference.tag.clone(),
                    }
                }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let why = error_detail(&body);
                RegistryError::Unauthorized {
                    url: url.to_owned(),
                    status: status.as_u16(),
                    hint: match self.credentials_for(reference) {
                        Some(c) => format!(
                            "the credentials of {:?} were rejected or lack pull access to {}: {why}",
                            c.username,
                            reference.name()
                        ),
                        None => format!(
                            "no credentials configured for {}; the repository may be private or not exist: {why}",
                            reference.registry()
                        ),
                    },
                }
            }
            _ if status.is_redirection() => RegistryError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                detail: "redirects are not followed for manifests".to_owned(),
            },
            _ => RegistryError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                detail: error_detail(&body),
            },
        }
    }
}

/// One entry of the distribution API's error document.
#[derive(Debug, Deserialize)]
struct RegistryErrorEntry {
    code: String,
    #[serde(default)]
    message: String,
}

fn registry_errors(body: &[u8]) -> Vec<RegistryErrorEntry> {
    #[derive(Deserialize)]
    struct Doc {
        errors: Vec<RegistryErrorEntry>,
    }
    serde_json::from_slice::<Doc>(body)
        .map(|d| d.errors)
        .unwrap_or_default()
}

/// The registry's error codes and messages, or the start of the body.
fn error_detail(body: &[u8]) -> String {
    let errors = registry_errors(body);
    if !errors.is_empty() {
        return errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no details)".to_owned();
    }
    let mut snippet: String = text.chars().take(200).collect();
    if snippet.len() < text.len() {
        snippet.push('…');
    }
    snippet
}

/// One `WWW-Authenticate` challenge: `Bearer realm="…",service="…",scope="…"`.
#[derive(Debug, PartialEq, Eq)]
struct Challenge {
    /// Lowercased.
    scheme: String,
    /// Names lowercased, values unquoted.
    params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn challenges(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        .collect()
}

/// Parses one challenge (registries send one per header).
fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, mut rest) = match header.find(' ') {
        Some(i) => (&header[..i], header[i + 1..].trim_start()),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let name = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            out.push(next);
                        }
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => out.push(c),
                }
            }
            let end = end?;
            value = out;
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        params.push((name, value));
        rest = rest
            .trim_start()
            .strip_prefix(',')
            .unwrap_or(rest)
            .trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_normalize_like_docker() {
        let r = ImageRef::new("localhost:5000/library/app", "v1").expect("ref");
        assert_eq!(
            (r.registry(), r.repository(), r.tag(), r.api_host()),
            ("localhost:5000", "library/app", "v1", "localhost:5000")
        );
        assert_eq!(r.to_string(), "localhost:5000/library/app:v1");
        let r = ImageRef::new("docker.io/library/x", "latest").expect("ref");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.name(), "docker.io/library/x");
        let r = ImageRef::new("alpine", "3").expect("ref");
        assert_eq!(r.name(), "docker.io/library/alpine");
        let r = ImageRef::new("team/app", "3").expect("ref");
        assert_eq!(r.name(), "docker.io/team/app");
        let r = ImageRef::new("index.docker.io/team/app", "3").expect("ref");
        assert_eq!(r.name(), "docker.io/team/app");
        let r = ImageRef::new("localhost/app", "3").expect("ref");
        assert_eq!((r.registry(), r.repository()), ("localhost", "app"));
        let r = ImageRef::new("[::1]:5000/a/b", "t").expect("ref");
        assert_eq!(r.api_host(), "[::1]:5000");
        let r = ImageRef::parse("localhost:5000/library/app:v1.2_x").expect("parse");
        assert_eq!((r.registry(), r.tag()), ("localhost:5000", "v1.2_x"));
        let r = ImageRef::parse("a.io/b-c/d__e.f:1").expect("parse");
        assert_eq!(r.repository(), "b-c/d__e.f");
    }

    #[test]
    fn bad_image_refs_are_refused() {
        for (name, tag) in [
            ("localhost:5000/Library/app", "v1"),
            ("localhost:5000/app", ".v1"),
            ("localhost:5000/app", ""),
            ("localhost:5000/app", &"x".repeat(129)),
            ("localhost:5000/a//b", "v1"),
            ("localhost:5000/a/b/", "v1"),
            ("localhost:5000/a___b", "v1"),
            ("localhost:5000/a?b", "v1"),
            ("localhost:5000/../b", "v1"),
            ("localhost:abc/b", "v1"),
            ("-bad.io/b", "v1"),
            ("", "v1"),
        ] {
            assert!(ImageRef::new(name, tag).is_err(), "{name}:{tag}");
        }
        for reference in ["localhost:5000/app", "app@sha256:00", "app"] {
            let err = ImageRef::parse(reference).expect_err(reference);
            assert!(
                matches!(err, RegistryError::InvalidReference { .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn challenges_parse() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/x:pull,push",error="insufficient_scope""#,
        )
        .expect("challenge");
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/x:pull,push"));
        assert_eq!(c.param("error"), Some("insufficient_scope"));
        let c = parse_challenge(r#"Basic realm="a \"b\" c""#).expect("basic");
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some(r#"a "b" c"#));
        let c = parse_challenge("Bearer realm=http://x/t , service=s").expect("unquoted");
        assert_eq!(c.param("realm"), Some("http://x/t"));
        assert_eq!(c.param("service"), Some("s"));
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn loopback_and_insecure() {
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("127.0.0.5"));
        assert!(is_loopback_host("[::1]"));
        assert!(!is_loopback_host("10.0.0.1"));
        assert!(!is_loopback_host("localhost.example.com"));
        let insecure = ["reg.lan:5000".to_owned()];
        let allowed = |h: &str| http_allowed(&insecure, h);
        assert!(allowed("reg.lan:5000"));
        assert!(allowed("127.0.0.1:5000"));
        assert!(!allowed("reg.lan"));
        assert!(!allowed("reg.lan:5001"));
    }

    #[test]
    fn shareable_across_tasks() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<RegistryClient>();
        send_sync::<RegistryError>();
        send_sync::<ImageRef>();
    }

    #[test]
    fn error_messages() {
        let e = RegistryError::TagNotFound {
            registry: "localhost:5000".into(),
            repository: "library/app".into(),
            tag: "v1".into(),
        };
        assert_eq!(e.to_string(), "no tag v1 in localhost:5000/library/app");
        assert!(e.is_not_found());
        assert_eq!(
            error_detail(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v1"}}]}"#),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(error_detail(b""), "(no details)");
    }
}

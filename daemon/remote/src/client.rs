//! [`NotaryClient`]: the operations of notary-server's HTTP API.

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::body::read_limited;
use crate::error::decode_server_errors;
use crate::transport::classify;
use crate::{Auth, Error, Gun, RemoteConfig, RoleName, SizeLimits, multipart, tls};

/// A client for one notary server. Cheap to clone (the connection pool is shared).
///
/// It moves bytes: metadata comes back exactly as the server stored it, and
/// what is published is sent exactly as given. Verifying TUF semantics is the
/// caller's job.
#[derive(Clone, Debug)]
pub struct NotaryClient {
    http: reqwest::Client,
    base: String,
    auth: Option<Auth>,
    limits: SizeLimits,
}

/// Which server-managed key: notary-server always holds the timestamp key,
/// and the snapshot key when the repository was set up that way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKeyRole {
    /// `timestamp.key`.
    Timestamp,
    /// `snapshot.key`.
    Snapshot,
}

impl ServerKeyRole {
    /// `timestamp` or `snapshot`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKeyRole::Timestamp => "timestamp",
            ServerKeyRole::Snapshot => "snapshot",
        }
    }
}

/// A public key as `GET/POST …/tuf/<role>.key` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerKey {
    /// `ecdsa`, `ed25519`, `rsa`, …
    pub keytype: String,
    /// `keyval.public`: base64 (DER SPKI for ecdsa/rsa, raw 32 bytes for ed25519).
    pub public: String,
    /// The response body verbatim (non-canonical; recompute key IDs canonically).
    pub raw: Bytes,
}

impl NotaryClient {
    /// Builds a client; reads the CA and client-certificate files now.
    pub fn new(config: &RemoteConfig) -> Result<Self, Error> {
        let base = config.url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| Error::Config(format!("server URL {:?}: {e}", config.url)))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(Error::Config(format!(
                "server URL {:?}: scheme must be https (or http)",
                config.url
            )));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() || parsed.host().is_none() {
            return Err(Error::Config(format!(
                "server URL {:?}: must be scheme://host[:port][/path] without query or fragment",
                config.url
            )));
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls::client_config(config)?)
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tufd-remote/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client setup: {e}")))?;
        Ok(NotaryClient {
            http,
            base,
            auth: config.auth.clone(),
            limits: config.limits.clone(),
        })
    }

    /// The base URL, without trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The most bytes a response for each kind of file may have.
    pub fn limits(&self) -> &SizeLimits {
        &self.limits
    }

    /// The URL of a file in a repository's TUF directory.
    pub fn tuf_url(&self, gun: &Gun, file: &str) -> String {
        format!("{}/v2/{gun}/_trust/tuf/{file}", self.base)
    }

    /// `GET /_notary_server/health`: Ok when the server and its signer are healthy.
    pub async fn health(&self) -> Result<(), Error> {
        let url = format!("{}/_notary_server/health", self.base);
        self.request(Method::GET, url, None, self.limits.other)
            .await
            .map(drop)
    }

    /// The current version of a role's metadata (`<role>.json`), as stored.
    pub async fn get_role(&self, gun: &Gun, role: &RoleName) -> Result<Bytes, Error> {
        self.get_role_within(gun, role, u64::MAX).await
    }

    /// [`get_role`](Self::get_role), reading at most `max` bytes (or the
    /// configured limit for the role, whichever is lower).
    pub async fn get_role_within(
        &self,
        gun: &Gun,
        role: &RoleName,
        max: u64,
    ) -> Result<Bytes, Error> {
        let url = self.tuf_url(gun, &format!("{role}.json"));
        self.request(Method::GET, url, None, self.limits.for_role(role).min(max))
            .await
    }

    /// A role's metadata by the sha256 of its bytes (`<role>.<hex>.json`), as
    /// snapshot and timestamp list it. The received bytes are hashed and a
    /// mismatch is an [`Error::ChecksumMismatch`].
    pub async fn get_role_by_checksum(
        &self,
        gun: &Gun,
        role: &RoleName,
        sha256: &[u8; 32],
    ) -> Result<Bytes, Error> {
        self.get_role_by_checksum_within(gun, role, sha256, u64::MAX)
            .await
    }

    /// [`get_role_by_checksum`](Self::get_role_by_checksum), reading at most
    /// `max` bytes (the length the parent role lists), or the configured
    /// limit for the role, whichever is lower.
    pub async fn get_role_by_checksum_within(
        &self,
        gun: &Gun,
        role: &RoleName,
        sha256: &[u8; 32],
        max: u64,
    ) -> Result<Bytes, Error> {
        let expected = hex::encode(sha256);
        let url = self.tuf_url(gun, &format!("{role}.{expected}.json"));
        let body = self
            .request(
                Method::GET,
                url.clone(),
                None,
                self.limits.for_role(role).min(max),
            )
            .await?;
        let actual = Sha256::digest(&body);
        if actual.as_slice() != sha256.as_slice() {
            return Err(Error::ChecksumMismatch {
                url,
                expected,
                actual: hex::encode(actual),
            });
        }
        Ok(body)
    }

    /// A specific version of a role's metadata (`<version>.<role>.json`).
    pub async fn get_role_by_version(
        &self,
        gun: &Gun,
        role: &RoleName,
        version: u64,
    ) -> Result<Bytes, Error> {
        self.get_role_by_version_within(gun, role, version, u64::MAX)
            .await
    }

    /// [`get_role_by_version`](Self::get_role_by_version), reading at most
    /// `max` bytes (or the configured limit, whichever is lower).
    pub async fn get_role_by_version_within(
        &self,
        gun: &Gun,
        role: &RoleName,
        version: u64,
        max: u64,
    ) -> Result<Bytes, Error> {
        let url = self.tuf_url(gun, &format!("{version}.{role}.json"));
        self.request(Method::GET, url, None, self.limits.for_role(role).min(max))
            .await
    }

    /// The server-managed public key for `which`.
    ///
    /// notary-server answers with the key the repository's current root lists
    /// for that role when it holds it; otherwise (no root yet, or a
    /// client-held snapshot key) it creates and returns a **new** key on every
    /// call. Put the key you got into root and publish before asking again.
    pub async fn get_server_key(
        &self,
        gun: &Gun,
        which: ServerKeyRole,
    ) -> Result<ServerKey, Error> {
        self.server_key(Method::GET, gun, which).await
    }

    /// Makes the server generate a new key for `which` and returns it. The
    /// repository keeps using the old key until a root listing the new one is published.
    pub async fn rotate_server_key(
        &self,
        gun: &Gun,
        which: ServerKeyRole,
    ) -> Result<ServerKey, Error> {
        self.server_key(Method::POST, gun, which).await
    }

    async fn server_key(
        &self,
        method: Method,
        gun: &Gun,
        which: ServerKeyRole,
    ) -> Result<ServerKey, Error> {
        let url = self.tuf_url(gun, &format!("{}.key", which.as_str()));
        let raw = self
            .request(method, url.clone(), None, self.limits.key)
            .await?;
        #[derive(Deserialize)]
        struct KeyVal {
            public: String,
        }
        #[derive(Deserialize)]
        struct Key {
            keytype: String,
            keyval: KeyVal,
        }
        let key: Key = serde_json::from_slice(&raw).map_err(|e| Error::BadResponse {
            url: url.clone(),
            detail: format!("key document: {e}"),
        })?;
        Ok(ServerKey {
            keytype: key.keytype,
            public: key.keyval.public,
            raw,
        })
    }

    /// Publishes metadata files in one atomic update (`POST …/tuf/`, one
    /// multipart part per role). The first publish must include `root`;
    /// `timestamp` is always made by the server. A lost race shows as
    /// [`Error::is_lost_race`].
    pub async fn publish(&self, gun: &Gun, files: &[(RoleName, Bytes)]) -> Result<(), Error> {
        let url = self.tuf_url(gun, "");
        if files.is_empty() {
            return Err(Error::Config(format!("{url}: nothing to publish")));
        }
        for (i, (role, _)) in files.iter().enumerate() {
            if files[..i].iter().any(|(r, _)| r == role) {
                return Err(Error::Config(format!("{url}: role {role} given twice")));
            }
        }
        let body = multipart::build(files);
        self.request(
            Method::POST,
            url,
            Some((body.content_type, body.body)),
            self.limits.other,
        )
        .await
        .map(drop)
    }

    /// Deletes all metadata of a repository on the server (`DELETE …/tuf/`).
    pub async fn delete(&self, gun: &Gun) -> Result<(), Error> {
        let url = self.tuf_url(gun, "");
        self.request(Method::DELETE, url, None, self.limits.other)
            .await
            .map(drop)
    }

    /// Sends one request and returns the success body, read up to `limit` bytes.
    async fn request(
        &self,
        method: Method,
        url: String,
        body: Option<(String, Vec<u8>)>,
        limit: u64,
    ) -> Result<Bytes, Error> {
        tracing::debug!(%method, %url, "notary request");
        let sent = std::time::Instant::now();
        let mut req = self.http.request(method, &url);
        match &self.auth {
            None => {}
            Some(Auth::Basic { username, password }) => {
                req = req.basic_auth(username, Some(password.expose_secret()));
            }
            Some(Auth::Bearer(token)) => req = req.bearer_auth(token.expose_secret()),
        }
        if let Some((content_type, bytes)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let resp = req.send().await.map_err(|e| classify(&url, e))?;
        let status = resp.status();
        if status.is_success() {
            let body = read_limited(&url, resp, limit).await?;
            tracing::debug!(%url, bytes = body.len(), us = sent.elapsed().as_micros() as u64, "notary response");
            return Ok(body);
        }
        let challenge = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        // Best effort: an unreadable error body must not hide the status.
        let body = read_limited(&url, resp, self.limits.other)
            .await
            .unwrap_or_default();
        Err(status_error(url, status, challenge, &body))
    }
}

fn status_error(url: String, status: StatusCode, challenge: Option<String>, body: &[u8]) -> Error {
    let errors = decode_server_errors(body);
    match status {
        StatusCode::NOT_FOUND => Error::NotFound {
            url,
            errors: errors.unwrap_or_default(),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Unauthorized {
            url,
            status: status.as_u16(),
            challenge,
        },
        _ => match errors {
            Some(errors) => Error::Server {
                url,
                status: status.as_u16(),
                errors,
            },
            None => {
                let text = String::from_utf8_lossy(body);
                let mut snippet: String = text.chars().take(200).collect();
                if snippet.len() < text.len() {
                    snippet.push('…');
                }
                Error::UnexpectedStatus {
                    url,
                    status: status.as_u16(),
                    body: snippet,
                }
            }
        },
    }
}

//! Errors of the notary-server client, shaped so that a person (or the
//! trust layer's retry loop) can act on them.

use std::fmt;

use serde::Deserialize;

/// Everything that can go wrong talking to a notary server.
///
/// Every variant that concerns a request names its URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is unusable (bad URL, unreadable CA file, …).
    #[error("invalid notary server configuration: {0}")]
    Config(String),

    /// A repository or role name that cannot be sent to the server as is.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `repository` or `role`.
        kind: &'static str,
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// No server is configured for this repository.
    #[error(
        "no notary server configured for repository {gun:?} (set DOCKER_CONTENT_TRUST_SERVER or add a remote for it)"
    )]
    NoServer {
        /// The repository name.
        gun: String,
    },

    /// HTTP 404: the repository, the role, the version or the checksum does not exist on the server.
    #[error(
        "{url}: not found on the notary server (unknown repository, role, version or checksum)"
    )]
    NotFound {
        /// The URL requested.
        url: String,
        /// The decoded error body, when there was one (`METADATA_NOT_FOUND`).
        errors: Vec<ServerError>,
    },

    /// HTTP 401 or 403: the server wants (other) credentials.
    #[error(
        "{url}: the notary server refused access (HTTP {status}{}); check the configured credentials",
        .challenge.as_deref().map(|c| format!(", WWW-Authenticate: {c}")).unwrap_or_default()
    )]
    Unauthorized {
        /// The URL requested.
        url: String,
        /// 401 or 403.
        status: u16,
        /// The `WWW-Authenticate` header, which names the token service for
        /// docker-style token auth.
        challenge: Option<String>,
    },

    /// The server answered with notary's error document `{"errors":[…]}`.
    #[error("{url}: notary server answered HTTP {status}: {}", ServerErrors(.errors))]
    Server {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The decoded errors, at least one.
        errors: Vec<ServerError>,
    },

    /// A non-success status without a decodable notary error document.
    #[error("{url}: unexpected HTTP {status} from notary server: {body}")]
    UnexpectedStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body, lossily decoded.
        body: String,
    },

    /// The TLS handshake failed (unknown CA, wrong host name, client certificate refused, …).
    #[error("{url}: TLS failure talking to the notary server: {detail}")]
    Tls {
        /// The URL requested.
        url: String,
        /// The underlying error chain, as text.
        detail: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The server could not be reached (refused, unreachable, DNS).
    #[error("{url}: cannot connect to the notary server: {detail}")]
    Connect {
        /// The URL requested.
        url: String,
        /// The underlying error chain, as text.
        detail: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The connect or the overall request timeout expired.
    #[error("{url}: the notary server did not answer in time ({phase})")]
    Timeout {
        /// The URL requested.
        url: String,
        /// `connect` or `request`.
        phase: &'static str,
    },

    /// The response body exceeded the configured limit; reading stopped there.
    #[error("{url}: response exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },

    /// The body fetched by checksum does not hash to that checksum.
    #[error(
        "{url}: checksum mismatch: expected sha256 {expected}, received data with sha256 {actual}"
    )]
    ChecksumMismatch {
        /// The URL requested.
        url: String,
        /// The sha256 asked for (hex).
        expected: String,
        /// The sha256 of what arrived (hex).
        actual: String,
    },

    /// A 2xx response whose body is not what the API promises (e.g. a key document that is not JSON).
    #[error("{url}: malformed response from notary server: {detail}")]
    BadResponse {
        /// The URL requested.
        url: String,
        /// What was wrong.
        detail: String,
    },

    /// Any other transport failure (connection reset mid-body, protocol error, …).
    #[error("{url}: request to notary server failed: {detail}")]
    Transport {
        /// The URL requested.
        url: String,
        /// The underlying error chain, as text.
        detail: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
}

impl Error {
    /// True when a publish lost a race against another writer and should be
    /// retried from a fresh read: HTTP 400 `VERSION`, and HTTP 500 `UPDATING`
    /// (what a PostgreSQL-backed notary-server 0.7 answers when its unique
    /// constraint fires first).
    pub fn is_lost_race(&self) -> bool {
        match self {
            Error::Server { status, errors, .. } => errors.iter().any(|e| {
                (*status == 400 && e.code == ErrorCode::Version)
                    || (*status == 500 && e.code == ErrorCode::Updating)
            }),
            _ => false,
        }
    }

    /// True for HTTP 404 (unknown repository, role, version or checksum).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for failures that may go away by trying again later unchanged
    /// (connection, timeout, 502/503/504). Lost races are not included: they
    /// need a fresh read first (see [`Error::is_lost_race`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Transport { .. } => true,
            Error::Server { status, .. } | Error::UnexpectedStatus { status, .. } => {
                matches!(status, 502..=504)
            }
            _ => false,
        }
    }

    /// The server's decoded error entries, if the server sent any.
    pub fn server_errors(&self) -> &[ServerError] {
        match self {
            Error::Server { errors, .. } | Error::NotFound { errors, .. } => errors,
            _ => &[],
        }
    }

    /// The first server error code, if any (e.g. [`ErrorCode::InvalidUpdate`]).
    pub fn server_code(&self) -> Option<&ErrorCode> {
        self.server_errors().first().map(|e| &e.code)
    }

    /// The URL the failing request went to, if the error concerns a request.
    pub fn url(&self) -> Option<&str> {
        match self {
            Error::NotFound { url, .. }
            | Error::Unauthorized { url, .. }
            | Error::Server { url, .. }
            | Error::UnexpectedStatus { url, .. }
            | Error::Tls { url, .. }
            | Error::Connect { url, .. }
            | Error::Timeout { url, .. }
            | Error::TooLarge { url, .. }
            | Error::ChecksumMismatch { url, .. }
            | Error::BadResponse { url, .. }
            | Error::Transport { url, .. } => Some(url),
            Error::Config(_) | Error::InvalidName { .. } | Error::NoServer { .. } => None,
        }
    }
}

/// One entry of notary's error document `{"errors":[{"code","message","detail"}]}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ServerError {
    /// The error code, e.g. `VERSION` or `INVALID_UPDATE`.
    pub code: ErrorCode,
    /// The human-readable message the server sent.
    #[serde(default)]
    pub message: String,
    /// The raw `detail` value (`{}`, a string, or `{"Name":…,"Error":{"Msg":…}}`).
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
}

impl ServerError {
    /// For `INVALID_UPDATE`: the validation error's name, e.g. `ErrBadRoot`,
    /// `ErrBadTargets`, `ErrBadSnapshot`, `ErrValidation`.
    pub fn detail_name(&self) -> Option<&str> {
        self.detail.as_ref()?.get("Name")?.as_str()
    }

    /// The most specific explanation the server gave: `detail.Error.Msg`, or a
    /// string `detail` (e.g. the offending role for `INVALID_ROLE`).
    pub fn detail_message(&self) -> Option<&str> {
        let detail = self.detail.as_ref()?;
        if let Some(s) = detail.as_str() {
            return Some(s);
        }
        detail.get("Error")?.get("Msg")?.as_str()
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(name) = self.detail_name() {
            write!(f, " {name}")?;
        }
        match self.detail_message() {
            Some(msg) => write!(f, ": {msg}"),
            None if !self.message.is_empty() => write!(f, ": {}", self.message),
            None => Ok(()),
        }
    }
}

struct ServerErrors<'a>(&'a [ServerError]);

impl fmt::Display for ServerErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Error codes of notary-server 0.7 (`server/errors/errors.go`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `VERSION`: the uploaded version is not newer than the stored one (lost race or stale base).
    Version,
    /// `INVALID_UPDATE`: validation failed; see [`ServerError::detail_name`].
    InvalidUpdate,
    /// `UPDATING`: storage failed while updating (500; a lost race on PostgreSQL).
    Updating,
    /// `INVALID_ROLE`: a part's filename is not a role.
    InvalidRole,
    /// `MALFORMED_JSON`: a part is not JSON.
    MalformedJson,
    /// `MALFORMED_UPLOAD`: the body is not a usable multipart upload.
    MalformedUpload,
    /// `NO_FILENAME`: a part without filename.
    NoFilename,
    /// `METADATA_NOT_FOUND`: no such metadata (404).
    MetadataNotFound,
    /// `GENERIC_NOT_FOUND`.
    GenericNotFound,
    /// `INVALID_GUN`.
    InvalidGun,
    /// `INVALID_PARAMETERS`.
    InvalidParameters,
    /// `NO_CRYPTOSERVICE`: the server has no signer for its keys.
    NoCryptoService,
    /// `NO_KEYALGORITHM`: the server has no key algorithm configured.
    NoKeyAlgorithm,
    /// `NO_STORAGE`.
    NoStorage,
    /// `UNKNOWN`.
    Unknown,
    /// Any code this client does not know, verbatim.
    Other(String),
}

impl ErrorCode {
    /// The wire form, e.g. `INVALID_UPDATE`.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Version => "VERSION",
            ErrorCode::InvalidUpdate => "INVALID_UPDATE",
            ErrorCode::Updating => "UPDATING",
            ErrorCode::InvalidRole => "INVALID_ROLE",
            ErrorCode::MalformedJson => "MALFORMED_JSON",
            ErrorCode::MalformedUpload => "MALFORMED_UPLOAD",
            ErrorCode::NoFilename => "NO_FILENAME",
            ErrorCode::MetadataNotFound => "METADATA_NOT_FOUND",
            ErrorCode::GenericNotFound => "GENERIC_NOT_FOUND",
            ErrorCode::InvalidGun => "INVALID_GUN",
            ErrorCode::InvalidParameters => "INVALID_PARAMETERS",
            ErrorCode::NoCryptoService => "NO_CRYPTOSERVICE",
            ErrorCode::NoKeyAlgorithm => "NO_KEYALGORITHM",
            ErrorCode::NoStorage => "NO_STORAGE",
            ErrorCode::Unknown => "UNKNOWN",
            ErrorCode::Other(s) => s,
        }
    }

    fn from_wire(s: String) -> Self {
        match s.as_str() {
            "VERSION" => ErrorCode::Version,
            "INVALID_UPDATE" => ErrorCode::InvalidUpdate,
            "UPDATING" => ErrorCode::Updating,
            "INVALID_ROLE" => ErrorCode::InvalidRole,
            "MALFORMED_JSON" => ErrorCode::MalformedJson,
            "MALFORMED_UPLOAD" => ErrorCode::MalformedUpload,
            "NO_FILENAME" => ErrorCode::NoFilename,
            "METADATA_NOT_FOUND" => ErrorCode::MetadataNotFound,
            "GENERIC_NOT_FOUND" => ErrorCode::GenericNotFound,
            "INVALID_GUN" => ErrorCode::InvalidGun,
            "INVALID_PARAMETERS" => ErrorCode::InvalidParameters,
            "NO_CRYPTOSERVICE" => ErrorCode::NoCryptoService,
            "NO_KEYALGORITHM" => ErrorCode::NoKeyAlgorithm,
            "NO_STORAGE" => ErrorCode::NoStorage,
            "UNKNOWN" => ErrorCode::Unknown,
            _ => ErrorCode::Other(s),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(ErrorCode::from_wire)
    }
}

/// Decodes notary's error document; `None` unless it has at least one entry.
pub(crate) fn decode_server_errors(body: &[u8]) -> Option<Vec<ServerError>> {
    #[derive(Deserialize)]
    struct Doc {
        errors: Vec<ServerError>,
    }
    serde_json::from_slice::<Doc>(body)
        .ok()
        .map(|d| d.errors)
        .filter(|e| !e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: u16, body: &str) -> Error {
        Error::Server {
            url: "https://x/".into(),
            status,
            errors: decode_server_errors(body.as_bytes()).unwrap_or_default(),
        }
    }

    #[test]
    fn lost_race() {
        let version = r#"{"errors":[{"code":"VERSION","message":"A newer version of metadata is already available.","detail":{}}]}"#;
        let updating = r#"{"errors":[{"code":"UPDATING","message":"An error has occurred while updating the TUF repository."}]}"#;
        assert!(server(400, version).is_lost_race());
        assert!(server(500, updating).is_lost_race());
        assert!(!server(500, version).is_lost_race());
        assert!(!server(400, updating).is_lost_race());
    }

    #[test]
    fn invalid_update_detail() {
        let body = r#"{"errors":[{"code":"INVALID_UPDATE","message":"Update sent by the client is invalid.","detail":{"Name":"ErrBadRoot","Error":{"Msg":"Root modifications must increment the version. Current 1, new 3"}}}]}"#;
        let e = server(400, body);
        let se = &e.server_errors()[0];
        assert_eq!(se.code, ErrorCode::InvalidUpdate);
        assert_eq!(se.detail_name(), Some("ErrBadRoot"));
        assert_eq!(
            se.detail_message(),
            Some("Root modifications must increment the version. Current 1, new 3")
        );
        assert_eq!(
            e.to_string(),
            "https://x/: notary server answered HTTP 400: INVALID_UPDATE ErrBadRoot: Root modifications must increment the version. Current 1, new 3"
        );
    }

    #[test]
    fn role_detail_and_unknown_code() {
        let e = server(
            400,
            r#"{"errors":[{"code":"INVALID_ROLE","message":"x","detail":"foo"},{"code":"NEW_ONE"}]}"#,
        );
        assert_eq!(e.server_errors()[0].detail_message(), Some("foo"));
        assert_eq!(
            e.server_errors()[1].code,
            ErrorCode::Other("NEW_ONE".into())
        );
        assert!(decode_server_errors(br#"{"errors":[]}"#).is_none());
        assert!(decode_server_errors(b"<html>").is_none());
    }
}

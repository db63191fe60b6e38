//! The daemon configuration (TOML).
//!
//! ```toml
//! socket = "/run/tufd/tufd.sock"
//! state_dir = "/var/lib/tufd"
//! default_token = "softhsm"      # optional: the first token otherwise
//!
//! [[token]]
//! name = "softhsm"
//! kind = "pkcs11"
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! label = "tufd"                 # or: serial = "…"
//! pin = "env:TUFD_PIN"           # or: file:/run/credentials/tufd.service/pin
//! sessions = 4                   # optional, concurrent signing sessions
//!
//! [[remote]]                     # notary servers, by repository prefix
//! prefix = "localhost:5000/"     # "" matches every repository
//! url = "https://127.0.0.1:4443"
//! ca = "/etc/tufd/notary-ca.pem" # optional; system roots otherwise
//! client_cert = "…"              # optional mutual TLS, with client_key
//! client_key = "…"
//! username = "ci"                # optional basic auth, with password
//! password = "env:NOTARY_PASSWORD"
//! token = "file:/run/credentials/tufd.service/notary-token"  # optional bearer
//! ```
//!
//! Repositories no `[[remote]]` matches go to `DOCKER_CONTENT_TRUST_SERVER`
//! when the daemon's environment sets it.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use tufd_keys::pin::PinSource;
use tufd_keys::pkcs11::{Pkcs11Config, TokenSelector};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole daemon configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unix socket the daemon listens on (mode 0660).
    pub socket: PathBuf,
    /// Directory for the daemon's state (lock file, later the trust store).
    pub state_dir: PathBuf,
    /// The configured tokens, in file order.
    pub tokens: Vec<TokenConfig>,
    /// Index into `tokens` of the default token.
    pub default_token: usize,
    /// Notary servers by repository prefix.
    pub remotes: Vec<tufd_remote::Route>,
}

/// One configured token.
#[derive(Debug, Clone)]
pub enum TokenConfig {
    /// A PKCS#11 token.
    Pkcs11(Pkcs11Config),
}

impl TokenConfig {
    /// The token's configured name.
    pub fn name(&self) -> &str {
        match self {
            TokenConfig::Pkcs11(c) => &c.name,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    socket: PathBuf,
    state_dir: PathBuf,
    default_token: Option<String>,
    #[serde(default, rename = "token")]
    tokens: Vec<RawToken>,
    #[serde(default, rename = "remote")]
    remotes: Vec<RawRemote>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    #[serde(default)]
    prefix: String,
    url: String,
    ca: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
    timeout_seconds: Option<u64>,
}

impl RawRemote {
    fn into_route(
        self,
        invalid: &dyn Fn(String) -> ConfigError,
    ) -> Result<tufd_remote::Route, ConfigError> {
        use secrecy::ExposeSecret;
        let secret = |what: &str, source: &str| -> Result<tufd_remote::SecretString, ConfigError> {
            let src: PinSource = source
                .parse()
                .map_err(|e| invalid(format!("remote {}: {what}: {e}", self.url)))?;
            let value = src
                .read()
                .map_err(|e| invalid(format!("remote {}: {what}: {e}", self.url)))?;
            Ok(tufd_remote::SecretString::from(
                value.expose_secret().to_owned(),
            ))
        };
        let mut config = tufd_remote::RemoteConfig::new(self.url.clone());
        config.ca_file = self.ca.clone();
        config.client_identity = match (&self.client_cert, &self.client_key) {
            (Some(cert_file), Some(key_file)) => Some(tufd_remote::ClientIdentity {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            }),
            (None, None) => None,
            _ => {
                return Err(invalid(format!(
                    "remote {}: give both client_cert and client_key, or neither",
                    self.url
                )));
            }
        };
        config.auth = match (&self.username, &self.password, &self.token) {
            (Some(u), Some(p), None) => Some(tufd_remote::Auth::Basic {
                username: u.clone(),
                password: secret("password", p)?,
            }),
            (None, None, Some(t)) => Some(tufd_remote::Auth::Bearer(secret("token", t)?)),
            (None, None, None) => None,
            _ => {
                return Err(invalid(format!(
                    "remote {}: use username with password, or token, not both",
                    self.url
                )));
            }
        };
        if let Some(t) = self.timeout_seconds {
            config.timeout = std::time::Duration::from_secs(t.max(1));
        }
        Ok(tufd_remote::Route {
            prefix: self.prefix,
            config,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    kind: String,
    module: Option<PathBuf>,
    label: Option<String>,
    serial: Option<String>,
    pin: String,
    sessions: Option<usize>,
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if raw.tokens.is_empty() {
            return Err(invalid(
                "no [[token]] is configured; tufd needs at least one token to keep keys on".into(),
            ));
        }
        let mut tokens = Vec::new();
        for t in raw.tokens {
            let name = t.name.clone();
            if tokens.iter().any(|x: &TokenConfig| x.name() == name) {
                return Err(invalid(format!("token name '{name}' is used twice")));
            }
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "token name {name:?} must be non-empty, without spaces"
                )));
            }
            let pin: PinSource = t
                .pin
                .parse()
                .map_err(|e| invalid(format!("token '{name}': pin: {e}")))?;
            match t.kind.as_str() {
                "pkcs11" => {
                    let module = t.module.ok_or_else(|| {
                        invalid(format!(
                            "token '{name}': `module` (path of the PKCS#11 library) is required"
                        ))
                    })?;
                    let selector = match (t.label, t.serial) {
                        (Some(l), None) => TokenSelector::Label(l),
                        (None, Some(s)) => TokenSelector::Serial(s),
                        _ => {
                            return Err(invalid(format!(
                                "token '{name}': give exactly one of `label` or `serial` (slot numbers change, so tufd never uses them)"
                            )));
                        }
                    };
                    let max_sessions = t.sessions.unwrap_or(4);
                    if !(1..=64).contains(&max_sessions) {
                        return Err(invalid(format!(
                            "token '{name}': sessions must be between 1 and 64"
                        )));
                    }
                    tokens.push(TokenConfig::Pkcs11(Pkcs11Config {
                        name,
                        module,
                        selector,
                        pin,
                        max_sessions,
                    }));
                }
                other => {
                    return Err(invalid(format!(
                        "token '{name}': unknown kind {other:?}; supported: \"pkcs11\""
                    )));
                }
            }
        }
        let default_token = match raw.default_token {
            None => 0,
            Some(d) => tokens
                .iter()
                .position(|t| t.name() == d)
                .ok_or_else(|| invalid(format!("default_token '{d}' is not a configured token")))?,
        };
        let remotes = raw
            .remotes
            .into_iter()
            .map(|r| r.into_route(&invalid))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            socket: raw.socket,
            state_dir: raw.state_dir,
            tokens,
            default_token,
            remotes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
socket = "/tmp/x.sock"
state_dir = "/tmp/state"
[[token]]
name = "a"
kind = "pkcs11"
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "tufd"
pin = "env:PIN"
[[token]]
name = "b"
kind = "pkcs11"
module = "/m.so"
serial = "123"
pin = "file:/p"
sessions = 2
"#;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("tufd.toml"))
    }

    #[test]
    fn parses_a_full_config() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.default_token, 0);
        let TokenConfig::Pkcs11(b) = &c.tokens[1];
        assert_eq!(b.selector, TokenSelector::Serial("123".into()));
        assert_eq!(b.max_sessions, 2);
    }

    #[test]
    fn rejects_what_a_person_gets_wrong() {
        let cases = [
            (
                GOOD.replace("label = \"tufd\"\n", ""),
                "exactly one of `label` or `serial`",
            ),
            (GOOD.replace("env:PIN", "1234"), "literal PIN"),
            (GOOD.replace("name = \"b\"", "name = \"a\""), "used twice"),
            (
                GOOD.replace(
                    "kind = \"pkcs11\"\nmodule = \"/m.so\"",
                    "kind = \"tpm\"\nmodule = \"/m.so\"",
                ),
                "unknown kind",
            ),
            (
                format!("default_token = \"zz\"\n{GOOD}"),
                "not a configured token",
            ),
            (GOOD.replace("state_dir", "stat_dir"), "unknown field"),
            (
                "socket = \"/s\"\nstate_dir = \"/d\"\n".to_string(),
                "no [[token]]",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }
}

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
//! pin = "env:TUFD_PIN"           # or: file:/run/credentials/tufd.service/pin, or prompt
//! sessions = 4                   # optional, concurrent signing sessions
//! pin_cache_seconds = 900        # optional: how long a PIN given with `tufctl token unlock`
//!                                # is kept (default 15 minutes; 0: until the daemon stops)
//!
//! [[token]]                      # a YubiKey, driven natively over PIV
//! name = "yubikey"
//! kind = "yubikey"
//! serial = 12345678              # `ykman list --serials`
//! pin = "env:TUFD_YUBIKEY_PIN"
//! management_key = "pin-protected"  # default; or env:NAME / file:PATH (hex)
//! pin_policy = "once"            # optional: once (default), always, never, default
//! touch_policy = "always"        # optional: always (default), cached, never, default
//! slots = ["9c", "9e"]           # optional: the slots tufd may use, in order; see below
//! pin_cache_seconds = 900        # optional, as for PKCS#11 tokens
//! attestation_root = "/etc/tufd/yubico-piv-ca.pem"  # optional: check attestation chains
//!                                # up to Yubico's root (otherwise up to the device's f9 certificate)
//!
//! `slots`: without it tufd tries 9c, 9e, 9d, 9a, 82…95, but uses a slot
//! without a certificate only when the device shows it holds no key (GET
//! METADATA, firmware 5.3 and later) or tufd itself freed it (deleted a
//! key there). On older firmware, where a key without a certificate cannot
//! be seen, list the slots tufd owns: a listed slot without a certificate
//! counts as free, and whatever key is in it is overwritten.
//!
//! `pin = "prompt"`: no PIN is configured; the token is locked until an
//! administrator runs `tufctl token unlock NAME` (and again after
//! `pin_cache_seconds`). With few PIN tries left (a YubiKey's count of one,
//! or a PKCS#11 token's `CKF_USER_PIN_COUNT_LOW`/`CKF_USER_PIN_FINAL_TRY`)
//! no PIN the device has not accepted before is presented, unless the
//! token sets `allow_last_pin_try = true` (the administrator's decision,
//! never a caller's). Every token also takes `unlock_attempts = 2`
//! (1 to 10): how many wrong PINs sent with `tufctl token unlock` reach
//! the device per ten minutes; further unlock requests are refused
//! without touching the device until the window passes.
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
//!
//! `tufctl sign REPO:TAG` without `--digest` reads the tag's manifest from
//! the registry the repository names:
//!
//! ```toml
//! [registry]
//! ca = "/etc/tufd/registry-ca.pem"   # optional; system roots otherwise
//! insecure = ["localhost:5000"]      # registries that may be plain http
//! [[registry.login]]
//! host = "registry.example.com"
//! username = "ci"
//! password = "env:REGISTRY_PASSWORD"
//! ```
//!
//! Validity of newly signed metadata (notary's defaults shown):
//!
//! ```toml
//! [expiry]
//! root_days = 3650
//! targets_days = 1095     # targets and delegations
//! snapshot_days = 1095
//! ```
//!
//! Every write also re-signs each role tufd can sign that expires within
//! six months.
//!
//! Who may do what (see [`crate::policy`]; without rules only root and the
//! admin group, default `tufd-admin`, may do anything):
//!
//! ```toml
//! [policy]
//! admin_group = "tufd-admin"
//! [[policy.rule]]
//! users = ["ci"]
//! repositories = ["registry.example.com/team/*"]
//! roles = ["targets/releases", "targets/ci"]
//! operations = ["sign", "revoke", "read"]
//! ```
//!
//! The audit log (see [`crate::audit`]; on by default):
//!
//! ```toml
//! [audit]
//! path = "/var/lib/tufd/audit.log"   # default: <state_dir>/audit.log
//! rotate_bytes = 67108864            # default 64 MiB; 0: never rotate
//! enabled = true                     # false only to measure its cost
//! ```
//!
//! TUF 1.0 repositories (`[tuf]`: configured names, roots for paths) are
//! described in `tuf1/places.rs`.
//!
//! Verify-before-pull (`[[verify]]` per repository prefix, `[verification]`
//! limits) is described in `trust/verify/config.rs`; the registry mirror
//! (`[mirror]`) in `mirror/config.rs`.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use tufd_keys::pin::PinSource;
use tufd_keys::pkcs11::{Pkcs11Config, TokenSelector};
use tufd_keys::yubikey::YubiKeyConfig;

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
    /// How to read manifests from registries.
    pub registry: tufd_remote::RegistryConfig,
    /// Validity of newly signed roles.
    pub expiries: crate::trust::draft::Expiries,
    /// Per token name: how long a PIN given with `tufctl token unlock` is
    /// kept (`pin_cache_seconds`; `None`: until the daemon stops).
    pub pin_cache: std::collections::HashMap<String, Option<std::time::Duration>>,
    /// Verify-before-pull: modes and trust pinning per repository prefix,
    /// limits of one verification (`[[verify]]`, `[verification]`).
    pub verify: crate::trust::verify::VerifyPolicy,
    /// The verifying registry mirror (`[mirror]`), when configured.
    pub mirror: Option<crate::mirror::MirrorConfig>,
    /// Per token name: the administrator's PIN rules (source, cache,
    /// `allow_last_pin_try`, `unlock_attempts`).
    pub pin_rules: std::collections::HashMap<String, tufd_keys::gate::PinRules>,
    /// Who may do what (`[policy]`, see [`crate::policy`]).
    pub policy: crate::policy::Policy,
    /// The audit log (`[audit]`; `None` when `enabled = false`).
    pub audit: Option<crate::audit::AuditConfig>,
    /// Where TUF 1.0 repositories may live (`[tuf]`, see
    /// [`crate::tuf1::places`]).
    pub tuf: crate::tuf1::places::Places,
}

/// One configured token.
#[derive(Debug, Clone)]
pub enum TokenConfig {
    /// A PKCS#11 token.
    Pkcs11(Pkcs11Config),
    /// A YubiKey driven natively over PIV.
    YubiKey(YubiKeyConfig),
}

impl TokenConfig {
    /// The token's configured name.
    pub fn name(&self) -> &str {
        match self {
            TokenConfig::Pkcs11(c) => &c.name,
            TokenConfig::YubiKey(c) => &c.name,
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
    #[serde(default)]
    registry: RawRegistry,
    #[serde(default)]
    expiry: RawExpiry,
    #[serde(default, rename = "verify")]
    verify_rules: Vec<crate::trust::verify::config::RawVerifyRule>,
    #[serde(default)]
    verification: crate::trust::verify::config::RawVerification,
    mirror: Option<crate::mirror::config::RawMirror>,
    #[serde(default)]
    policy: crate::policy::RawPolicy,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    tuf: crate::tuf1::places::RawPlaces,
}

/// `[audit]`: where the audit log goes.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    enabled: Option<bool>,
    path: Option<PathBuf>,
    rotate_bytes: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpiry {
    root_days: Option<i64>,
    targets_days: Option<i64>,
    snapshot_days: Option<i64>,
}

impl RawExpiry {
    fn into_expiries(
        self,
        invalid: &dyn Fn(String) -> ConfigError,
    ) -> Result<crate::trust::draft::Expiries, ConfigError> {
        let d = crate::trust::draft::Expiries::default();
        let days = |v: Option<i64>, default: time::Duration, what: &str| match v {
            None => Ok(default),
            Some(n) if (1..=36500).contains(&n) => Ok(time::Duration::days(n)),
            Some(n) => Err(invalid(format!(
                "expiry.{what} = {n}: give 1 to 36500 days"
            ))),
        };
        Ok(crate::trust::draft::Expiries {
            root: days(self.root_days, d.root, "root_days")?,
            targets: days(self.targets_days, d.targets, "targets_days")?,
            snapshot: days(self.snapshot_days, d.snapshot, "snapshot_days")?,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    ca: Option<PathBuf>,
    #[serde(default)]
    insecure: Vec<String>,
    #[serde(default)]
    login: Vec<RawLogin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    host: String,
    username: String,
    password: String,
}

impl RawRegistry {
    fn into_config(
        self,
        invalid: &dyn Fn(String) -> ConfigError,
    ) -> Result<tufd_remote::RegistryConfig, ConfigError> {
        use secrecy::ExposeSecret;
        let mut config = tufd_remote::RegistryConfig::new();
        config.ca_file = self.ca;
        config.insecure_registries = self.insecure;
        for login in self.login {
            let source: PinSource = login
                .password
                .parse()
                .map_err(|e| invalid(format!("registry login {}: password: {e}", login.host)))?;
            let password = source
                .read()
                .map_err(|e| invalid(format!("registry login {}: password: {e}", login.host)))?;
            config = config.with_credentials(
                login.host,
                tufd_remote::RegistryCredentials::new(login.username, password.expose_secret()),
            );
        }
        Ok(config)
    }
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
    serial: Option<RawSerial>,
    pin: String,
    sessions: Option<usize>,
    management_key: Option<String>,
    pin_policy: Option<String>,
    touch_policy: Option<String>,
    slots: Option<Vec<String>>,
    pin_cache_seconds: Option<u64>,
    attestation_root: Option<PathBuf>,
    allow_last_pin_try: Option<bool>,
    unlock_attempts: Option<u32>,
}

/// A serial number written as a string (PKCS#11 token serials) or a number
/// (YubiKey serials).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSerial {
    Text(String),
    Number(u64),
}

impl std::fmt::Display for RawSerial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawSerial::Text(s) => f.write_str(s),
            RawSerial::Number(n) => write!(f, "{n}"),
        }
    }
}

impl RawToken {
    /// The `kind = "yubikey"` token.
    fn into_yubikey(
        self,
        pin: PinSource,
        invalid: &dyn Fn(String) -> ConfigError,
    ) -> Result<YubiKeyConfig, ConfigError> {
        let name = self.name;
        let bad = |what: &str, e: String| invalid(format!("token '{name}': {what}: {e}"));
        if self.module.is_some() || self.label.is_some() || self.sessions.is_some() {
            return Err(invalid(format!(
                "token '{name}': `module`, `label` and `sessions` are for kind \"pkcs11\"; a YubiKey is selected by `serial`"
            )));
        }
        let serial = match &self.serial {
            Some(RawSerial::Number(n)) => u32::try_from(*n).ok(),
            Some(RawSerial::Text(t)) => t.trim().parse().ok(),
            None => None,
        }
        .ok_or_else(|| {
            invalid(format!(
                "token '{name}': `serial` (the YubiKey's serial number, `ykman list --serials`) is required"
            ))
        })?;
        let mut c = YubiKeyConfig::new(name.clone(), serial, pin);
        if let Some(m) = &self.management_key {
            c.management_key = m.parse().map_err(|e| bad("management_key", e))?;
        }
        if let Some(p) = &self.pin_policy {
            c.pin_policy = p.parse().map_err(|e| bad("pin_policy", e))?;
        }
        if let Some(t) = &self.touch_policy {
            c.touch_policy = t.parse().map_err(|e| bad("touch_policy", e))?;
        }
        if let Some(slots) = &self.slots {
            let slots: Vec<_> = slots
                .iter()
                .map(|s| tufd_keys::yubikey::parse_slot(s))
                .collect::<Result<_, _>>()
                .map_err(|e| bad("slots", e))?;
            if slots.is_empty() {
                return Err(bad("slots", "give at least one slot".into()));
            }
            c.slots = tufd_keys::yubikey::SlotChoice::Configured(slots);
        }
        if let Some(seconds) = self.pin_cache_seconds {
            c.pin_cache = (seconds > 0).then(|| std::time::Duration::from_secs(seconds));
        }
        if let Some(path) = &self.attestation_root {
            let text = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    "attestation_root",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            c.attestation_roots = tufd_keys::yubikey::attest::parse_roots_pem(&text)
                .map_err(|e| bad("attestation_root", format!("{}: {e}", path.display())))?;
        }
        Ok(c)
    }
}

/// systemd credentials as PIN sources: `credential:NAME` is the file NAME
/// in `$CREDENTIALS_DIRECTORY` (set by `LoadCredential=`), and
/// `$CREDENTIALS_DIRECTORY` / `${CREDENTIALS_DIRECTORY}` in a `file:` path is
/// expanded.
fn expand_credentials(pin: &str, dir: Option<std::ffi::OsString>) -> Result<String, String> {
    let uses = pin.starts_with("credential:")
        || pin.contains("$CREDENTIALS_DIRECTORY")
        || pin.contains("${CREDENTIALS_DIRECTORY}");
    if !uses {
        return Ok(pin.to_owned());
    }
    let dir = dir
        .map(|d| d.to_string_lossy().into_owned())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| format!("{pin:?} needs $CREDENTIALS_DIRECTORY, which systemd sets for a service with LoadCredential=; it is not set"))?;
    if let Some(name) = pin.strip_prefix("credential:") {
        if name.is_empty() || name.contains('/') {
            return Err(format!(
                "{pin:?}: give the credential's name, as in LoadCredential=NAME:PATH"
            ));
        }
        return Ok(format!("file:{dir}/{name}"));
    }
    Ok(pin
        .replace("${CREDENTIALS_DIRECTORY}", &dir)
        .replace("$CREDENTIALS_DIRECTORY", &dir))
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
        let mut pin_cache = std::collections::HashMap::new();
        let mut pin_rules = std::collections::HashMap::new();
        for t in raw.tokens {
            let name = t.name.clone();
            if tokens.iter().any(|x: &TokenConfig| x.name() == name) {
                return Err(invalid(format!("token name '{name}' is used twice")));
            }
            tufd_proto::names::check_token_name(&name).map_err(|e| invalid(e.to_string()))?;
            let pin: PinSource =
                expand_credentials(&t.pin, std::env::var_os("CREDENTIALS_DIRECTORY"))
                    .map_err(|e| invalid(format!("token '{name}': pin: {e}")))?
                    .parse()
                    .map_err(|e| invalid(format!("token '{name}': pin: {e}")))?;
            let cache = match t.pin_cache_seconds {
                None => Some(tufd_keys::yubikey::DEFAULT_PIN_CACHE),
                Some(0) => None,
                Some(n) => Some(std::time::Duration::from_secs(n)),
            };
            pin_cache.insert(name.clone(), cache);
            let unlock_attempts = t
                .unlock_attempts
                .unwrap_or(tufd_keys::gate::DEFAULT_UNLOCK_ATTEMPTS);
            if !(1..=10).contains(&unlock_attempts) {
                return Err(invalid(format!(
                    "token '{name}': unlock_attempts must be between 1 and 10"
                )));
            }
            let rules = tufd_keys::gate::PinRules {
                cache,
                allow_last_try: t.allow_last_pin_try.unwrap_or(false),
                unlock_attempts,
                ..tufd_keys::gate::PinRules::new(pin.clone())
            };
            pin_rules.insert(name.clone(), rules.clone());
            match t.kind.as_str() {
                "pkcs11" => {
                    if t.management_key.is_some()
                        || t.pin_policy.is_some()
                        || t.touch_policy.is_some()
                        || t.slots.is_some()
                        || t.attestation_root.is_some()
                    {
                        return Err(invalid(format!(
                            "token '{name}': `management_key`, `pin_policy`, `touch_policy`, `slots` and `attestation_root` are for kind \"yubikey\""
                        )));
                    }
                    let module = t.module.ok_or_else(|| {
                        invalid(format!(
                            "token '{name}': `module` (path of the PKCS#11 library) is required"
                        ))
                    })?;
                    let selector = match (t.label, t.serial) {
                        (Some(l), None) => TokenSelector::Label(l),
                        (None, Some(s)) => TokenSelector::Serial(s.to_string()),
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
                "yubikey" => {
                    let mut c = t.into_yubikey(pin, &invalid)?;
                    c.allow_last_pin_try = rules.allow_last_try;
                    c.unlock_attempts = rules.unlock_attempts;
                    tokens.push(TokenConfig::YubiKey(c));
                }
                other => {
                    return Err(invalid(format!(
                        "token '{name}': unknown kind {other:?}; supported: \"pkcs11\", \"yubikey\""
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
        let registry = raw.registry.into_config(&invalid)?;
        let expiries = raw.expiry.into_expiries(&invalid)?;
        let verify = raw.verification.into_policy(raw.verify_rules, &invalid)?;
        let mirror = raw.mirror.map(|m| m.into_config(&invalid)).transpose()?;
        let policy = raw.policy.into_policy().map_err(&invalid)?;
        let tuf = raw.tuf.into_places().map_err(&invalid)?;
        let audit = match raw.audit.enabled {
            Some(false) => None,
            _ => Some(crate::audit::AuditConfig {
                path: raw
                    .audit
                    .path
                    .unwrap_or_else(|| raw.state_dir.join("audit.log")),
                rotate_bytes: raw.audit.rotate_bytes.unwrap_or(64 << 20),
            }),
        };
        Ok(Config {
            verify,
            mirror,
            socket: raw.socket,
            state_dir: raw.state_dir,
            tokens,
            default_token,
            remotes,
            registry,
            expiries,
            pin_cache,
            pin_rules,
            policy,
            audit,
            tuf,
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
    fn systemd_credentials_are_pin_sources() {
        let dir = Some(std::ffi::OsString::from("/run/credentials/tufd.service"));
        assert_eq!(
            expand_credentials("credential:pin", dir.clone()).unwrap(),
            "file:/run/credentials/tufd.service/pin"
        );
        assert_eq!(
            expand_credentials("file:$CREDENTIALS_DIRECTORY/pin", dir.clone()).unwrap(),
            "file:/run/credentials/tufd.service/pin"
        );
        assert_eq!(
            expand_credentials("file:${CREDENTIALS_DIRECTORY}/pin", dir.clone()).unwrap(),
            "file:/run/credentials/tufd.service/pin"
        );
        assert_eq!(expand_credentials("env:PIN", None).unwrap(), "env:PIN");
        let e = expand_credentials("credential:pin", None).unwrap_err();
        assert!(e.contains("LoadCredential="), "{e}");
        assert!(expand_credentials("credential:../x", dir).is_err());
    }

    #[test]
    fn parses_a_full_config() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.default_token, 0);
        let TokenConfig::Pkcs11(b) = &c.tokens[1] else {
            panic!("token b is PKCS#11");
        };
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

    #[test]
    fn parses_yubikey_tokens() {
        use tufd_keys::yubikey::{KeyPinPolicy, KeyTouchPolicy, ManagementKeySource};
        let yk = "[[token]]\nname = \"yk\"\nkind = \"yubikey\"\nserial = 12345678\npin = \"env:YK_PIN\"\n";
        let c = parse(&format!("{GOOD}{yk}")).unwrap();
        let TokenConfig::YubiKey(y) = &c.tokens[2] else {
            panic!("token yk is a YubiKey");
        };
        assert_eq!(y.serial, 12345678);
        assert_eq!(y.management_key, ManagementKeySource::PinProtected);
        assert_eq!(y.touch_policy, KeyTouchPolicy::Always);
        // No `slots`: the defaults, which are not slots given to tufd.
        assert_eq!(y.slots, tufd_keys::yubikey::SlotChoice::Default);
        let full = format!(
            "{GOOD}{yk}management_key = \"file:/run/mgm\"\npin_policy = \"always\"\ntouch_policy = \"never\"\nslots = [\"82\", \"9a\"]\n"
        );
        let c = parse(&full).unwrap();
        let TokenConfig::YubiKey(y) = &c.tokens[2] else {
            panic!("token yk is a YubiKey");
        };
        assert_eq!(y.pin_policy, KeyPinPolicy::Always);
        assert_eq!(y.touch_policy, KeyTouchPolicy::Never);
        assert_eq!(
            y.slots
                .order()
                .iter()
                .map(|s| s.reference())
                .collect::<Vec<_>>(),
            [0x82, 0x9a]
        );
        assert!(matches!(
            y.slots,
            tufd_keys::yubikey::SlotChoice::Configured(_)
        ));
        assert!(matches!(
            y.management_key,
            ManagementKeySource::Configured(_)
        ));
        assert_eq!(
            y.pin_cache,
            Some(std::time::Duration::from_secs(15 * 60)),
            "default PIN cache"
        );
        assert!(y.attestation_roots.is_empty());
        let prompt = yk.replace("env:YK_PIN", "prompt");
        let c = parse(&format!("{GOOD}{prompt}pin_cache_seconds = 0\n")).unwrap();
        let TokenConfig::YubiKey(y) = &c.tokens[2] else {
            panic!("token yk is a YubiKey");
        };
        assert_eq!(y.pin, PinSource::Prompt);
        assert_eq!(y.pin_cache, None, "0: until the daemon stops");
        assert_eq!(c.pin_cache["yk"], None);
        assert_eq!(
            c.pin_cache["a"],
            Some(std::time::Duration::from_secs(900)),
            "default"
        );
        let c = parse(&GOOD.replace("env:PIN", "prompt")).unwrap();
        let TokenConfig::Pkcs11(a) = &c.tokens[0] else {
            panic!("token a is PKCS#11");
        };
        assert_eq!(a.pin, PinSource::Prompt);
        let err = parse(&format!(
            "{GOOD}{yk}attestation_root = \"/nonexistent/yubico.pem\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("attestation_root: cannot read"), "{err}");
        for (extra, want) in [
            ("touch_policy = \"sometimes\"\n", "touch_policy"),
            ("slots = [\"f9\"]\n", "slots"),
            ("management_key = \"00112233\"\n", "management_key"),
            ("management_key = \"prompt\"\n", "cannot be \"prompt\""),
            ("module = \"/m.so\"\n", "kind \"pkcs11\""),
        ] {
            let err = parse(&format!("{GOOD}{yk}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
        let err = parse(&format!("{GOOD}{}", yk.replace("serial = 12345678\n", "")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`serial`"), "{err}");
        let err = parse(&format!("{GOOD}touch_policy = \"never\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("are for kind \"yubikey\""), "{err}");
    }
}

//! Configuration of one notary server connection.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::RoleName;

/// How to reach one notary server.
///
/// Construct with [`RemoteConfig::new`] and adjust the public fields.
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// Base URL, e.g. `https://notary.example.com:4443`. A path prefix is
    /// kept (`https://host/notary` → `https://host/notary/v2/…`). `http://`
    /// is accepted for tests and TLS-terminating proxies on loopback.
    pub url: String,
    /// PEM file of the CA certificate(s) that sign the server's certificate.
    /// When set it **replaces** the system roots (as `notary --tlscacert` does);
    /// when unset the system roots are used.
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    pub client_identity: Option<ClientIdentity>,
    /// HTTP authentication sent with every request.
    pub auth: Option<Auth>,
    /// Limit for establishing the TCP connection and the TLS handshake.
    pub connect_timeout: Duration,
    /// Limit for one whole request, from sending to the last body byte.
    pub timeout: Duration,
    /// Maximum response sizes.
    pub limits: SizeLimits,
}

impl RemoteConfig {
    /// A configuration with defaults: system roots, no client certificate, no
    /// auth, 10 s connect timeout, 60 s request timeout, [`SizeLimits::default`].
    pub fn new(url: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            ca_file: None,
            client_identity: None,
            auth: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            limits: SizeLimits::default(),
        }
    }

    /// Sets [`RemoteConfig::ca_file`].
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
}

/// A client certificate (chain) and its private key, both PEM files.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key_file: PathBuf,
}

/// HTTP authentication for a notary server behind a proxy or token service.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `Authorization: Basic …`.
    Basic {
        /// User name.
        username: String,
        /// Password; never logged.
        password: SecretString,
    },
    /// `Authorization: Bearer …`.
    Bearer(SecretString),
}

/// Maximum response body sizes, enforced while the body streams in.
///
/// The defaults follow the shape of notary repositories: a timestamp is a
/// few hundred bytes, a root a few kilobytes of certificates, while targets
/// and snapshot grow with the number of tags and delegations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeLimits {
    /// `root.json`: 1 MiB.
    pub root: u64,
    /// `targets.json` and every delegation: 10 MiB.
    pub targets: u64,
    /// `snapshot.json`: 10 MiB.
    pub snapshot: u64,
    /// `timestamp.json`: 64 KiB.
    pub timestamp: u64,
    /// `timestamp.key` / `snapshot.key` answers: 64 KiB.
    pub key: u64,
    /// Error documents and other small answers: 64 KiB.
    pub other: u64,
}

impl Default for SizeLimits {
    fn default() -> Self {
        SizeLimits {
            root: 1 << 20,
            targets: 10 << 20,
            snapshot: 10 << 20,
            timestamp: 64 << 10,
            key: 64 << 10,
            other: 64 << 10,
        }
    }
}

impl SizeLimits {
    /// The same limit for everything (handy in tests).
    pub fn uniform(limit: u64) -> Self {
        SizeLimits {
            root: limit,
            targets: limit,
            snapshot: limit,
            timestamp: limit,
            key: limit,
            other: limit,
        }
    }

    /// The limit for a role's metadata file.
    pub fn for_role(&self, role: &RoleName) -> u64 {
        match role.as_str() {
            "root" => self.root,
            "snapshot" => self.snapshot,
            "timestamp" => self.timestamp,
            _ => self.targets,
        }
    }
}

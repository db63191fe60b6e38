//! The `[mirror]` configuration section.
//!
//! ```toml
//! [mirror]
//! listen = "127.0.0.1:5005"        # loopback: plain HTTP allowed; otherwise tls_cert/tls_key required
//! upstream = "localhost:5000"      # the registry mirrored when the client names none
//! upstreams = ["docker.io"]        # more registries a client may name (containerd's ?ns=)
//! tls_cert = "/etc/tufd/mirror.crt"  # optional PEM chain
//! tls_key = "/etc/tufd/mirror.key"   # optional PEM private key
//! max_manifest_bytes = 4194304     # larger manifests are refused
//! max_requests = 64                # requests served at once; more get 429
//! timeout_seconds = 30             # per upstream manifest fetch and per blob chunk
//! ```

use crate::config::ConfigError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The mirror's configuration, checked.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Upstream registries; the first is the default.
    pub upstreams: Vec<String>,
    /// Certificate chain and key (PEM) for TLS, when configured.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest manifest served.
    pub max_manifest_bytes: u64,
    /// Requests served at once.
    pub max_requests: usize,
    /// Deadline of an upstream manifest fetch, and of each blob chunk.
    pub timeout: Duration,
}

/// `[mirror]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    listen: Option<String>,
    upstream: String,
    #[serde(default)]
    upstreams: Vec<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_manifest_bytes: Option<u64>,
    max_requests: Option<usize>,
    timeout_seconds: Option<u64>,
}

impl RawMirror {
    /// Checks the section.
    pub fn into_config(
        self,
        invalid: &dyn Fn(String) -> ConfigError,
    ) -> Result<MirrorConfig, ConfigError> {
        let listen_text = self.listen.as_deref().unwrap_or("127.0.0.1:5005");
        let listen: SocketAddr = listen_text.parse().map_err(|e| {
            invalid(format!(
                "mirror.listen = {listen_text:?}: {e} (give an address and port, e.g. 127.0.0.1:5005)"
            ))
        })?;
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "mirror: give both tls_cert and tls_key, or neither".into(),
                ));
            }
        };
        if tls.is_none() && !listen.ip().is_loopback() {
            return Err(invalid(format!(
                "mirror.listen = {listen}: plain HTTP is only served on loopback; configure tls_cert and tls_key to listen on another address"
            )));
        }
        let mut upstreams = vec![self.upstream];
        upstreams.extend(self.upstreams);
        for u in &upstreams {
            let r = tufd_proto::names::Reference::parse(&format!("{u}/x"))
                .map_err(|e| invalid(format!("mirror upstream {u:?}: {e}")))?;
            if r.domain() != u {
                return Err(invalid(format!(
                    "mirror upstream {u:?}: give a registry host[:port] such as localhost:5000 or docker.io"
                )));
            }
        }
        let max_manifest_bytes = self
            .max_manifest_bytes
            .unwrap_or(tufd_remote::DEFAULT_MAX_MANIFEST_SIZE);
        if !(1024..=(64 << 20)).contains(&max_manifest_bytes) {
            return Err(invalid(format!(
                "mirror.max_manifest_bytes = {max_manifest_bytes}: give 1024 to 67108864"
            )));
        }
        let max_requests = self.max_requests.unwrap_or(64);
        if !(1..=4096).contains(&max_requests) {
            return Err(invalid(format!(
                "mirror.max_requests = {max_requests}: give 1 to 4096"
            )));
        }
        let timeout = self.timeout_seconds.unwrap_or(30);
        if !(1..=600).contains(&timeout) {
            return Err(invalid(format!(
                "mirror.timeout_seconds = {timeout}: give 1 to 600"
            )));
        }
        Ok(MirrorConfig {
            listen,
            upstreams,
            tls,
            max_manifest_bytes,
            max_requests,
            timeout: Duration::from_secs(timeout),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MirrorConfig, String> {
        let raw: RawMirror = toml::from_str(text).map_err(|e| e.to_string())?;
        raw.into_config(&|m| ConfigError::Invalid {
            path: "t".into(),
            message: m,
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn loopback_or_tls() {
        let c = parse("upstream = \"localhost:5000\"").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:5005");
        assert_eq!(c.upstreams, ["localhost:5000"]);
        let e = parse("listen = \"0.0.0.0:5005\"\nupstream = \"localhost:5000\"").unwrap_err();
        assert!(e.contains("only served on loopback"), "{e}");
        assert!(
            parse(
                "listen = \"0.0.0.0:5005\"\nupstream = \"r:1\"\ntls_cert = \"c\"\ntls_key = \"k\""
            )
            .is_ok()
        );
        let e = parse("upstream = \"localhost:5000\"\ntls_cert = \"c\"").unwrap_err();
        assert!(e.contains("both"), "{e}");
        let e = parse("upstream = \"localhost:5000/team\"").unwrap_err();
        assert!(e.contains("host[:port]"), "{e}");
        let c = parse("upstream = \"localhost:5000\"\nupstreams = [\"docker.io\"]").unwrap();
        assert_eq!(c.upstreams, ["localhost:5000", "docker.io"]);
    }
}

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
//! timeout_seconds = 30             # per upstream manifest fetch, per blob chunk read
//!                                  # from upstream and per write to the client
//! min_transfer_kib_per_second = 8  # a blob slower than this over a window is cut
//! transfer_window_seconds = 60     # the window of that minimum rate
//! ```
//!
//! A blob holds a request slot while it streams. The per-chunk deadline
//! alone lets a peer that hands over one byte just inside it hold the slot
//! for hours, so a blob must also move at least
//! `min_transfer_kib_per_second` averaged over each
//! `transfer_window_seconds` (from upstream to the client: a slow reader
//! counts as much as a slow upstream), and is cut after an hour in all
//! ([`MAX_BLOB_SECONDS`]). The default, 8 KiB/s over a minute (480 KiB a
//! minute), is about a twentieth of a 1 Mbit/s link, so a real layer on a
//! slow link, several pulled at once, still gets through, while a
//! trickling peer is cut within a minute and a timeout.

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
    /// Deadline of an upstream manifest fetch, of each blob chunk read
    /// from upstream and of each write to the client.
    pub timeout: Duration,
    /// The slowest a blob may stream, in bytes a second averaged over
    /// [`MirrorConfig::transfer_window`]; 0 turns the check off (the total
    /// deadline still holds).
    pub min_transfer_rate: u64,
    /// The window over which the transfer rate is measured.
    pub transfer_window: Duration,
}

/// The longest a blob may stream in all, however fast it moves.
pub const MAX_BLOB_SECONDS: u64 = 3600;

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
    min_transfer_kib_per_second: Option<u64>,
    transfer_window_seconds: Option<u64>,
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
        let min_kib = self.min_transfer_kib_per_second.unwrap_or(8);
        if min_kib > 1 << 20 {
            return Err(invalid(format!(
                "mirror.min_transfer_kib_per_second = {min_kib}: give 0 (no minimum) to 1048576"
            )));
        }
        let window = self.transfer_window_seconds.unwrap_or(60);
        if !(1..=MAX_BLOB_SECONDS).contains(&window) {
            return Err(invalid(format!(
                "mirror.transfer_window_seconds = {window}: give 1 to {MAX_BLOB_SECONDS}"
            )));
        }
        Ok(MirrorConfig {
            listen,
            upstreams,
            tls,
            max_manifest_bytes,
            max_requests,
            timeout: Duration::from_secs(timeout),
            min_transfer_rate: min_kib * 1024,
            transfer_window: Duration::from_secs(window),
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

    #[test]
    fn transfer_rate() {
        let c = parse("upstream = \"localhost:5000\"").unwrap();
        assert_eq!(c.min_transfer_rate, 8 * 1024);
        assert_eq!(c.transfer_window, Duration::from_secs(60));
        let c = parse(
            "upstream = \"localhost:5000\"\nmin_transfer_kib_per_second = 0\ntransfer_window_seconds = 5",
        )
        .unwrap();
        assert_eq!(c.min_transfer_rate, 0);
        assert_eq!(c.transfer_window, Duration::from_secs(5));
        let e = parse("upstream = \"localhost:5000\"\ntransfer_window_seconds = 0").unwrap_err();
        assert!(e.contains("give 1 to 3600"), "{e}");
    }
}

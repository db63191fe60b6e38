//! Bounded HTTP fetches for the TUF client: a length limit on every body
//! (an endless response is cut off) and a time limit on every request (a
//! slow one is abandoned).

use std::time::Duration;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("{url}: more than {limit} bytes (an endless or oversized response)")]
    TooLong { url: String, limit: u64 },
}

/// An HTTP client with per-request limits.
pub struct Fetcher {
    http: reqwest::Client,
    timeout: Duration,
}

impl Fetcher {
    /// A fetcher whose requests each take at most `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, FetchError> {
        let failed = |reason: String| FetchError::Failed {
            url: String::new(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| failed(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| FetchError::Failed {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(Self { http, timeout })
    }

    /// GETs `url`, reading at most `limit` bytes.
    pub async fn get(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let failed = |reason: String| FetchError::Failed {
            url: url.to_owned(),
            reason,
        };
        let work = async {
            let mut resp = self
                .http
                .get(url)
                .send()
                .await
                .map_err(|e| failed(e.to_string()))?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND
                || resp.status() == reqwest::StatusCode::FORBIDDEN
            {
                return Err(FetchError::NotFound(url.to_owned()));
            }
            if !resp.status().is_success() {
                return Err(failed(format!("HTTP {}", resp.status())));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| failed(e.to_string()))? {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(FetchError::TooLong {
                        url: url.to_owned(),
                        limit,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| failed(format!("no complete answer within {:?}", self.timeout)))?
    }
}

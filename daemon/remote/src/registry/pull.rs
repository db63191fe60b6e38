//! Pulling manifests and blobs as bytes or as a stream, with the same
//! transport, scheme choice and authentication (basic, docker token flow,
//! tufd's own credentials) as [`RegistryClient::resolve`]. The verifying
//! registry mirror uses it; it checks digests itself.

use super::{Authorization, ImageRef, RegistryClient, RegistryError, Scheme, StatusCode};
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, LOCATION};

/// What is pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullObject {
    /// `/v2/<name>/manifests/<reference>` (tag or digest).
    Manifest,
    /// `/v2/<name>/blobs/<digest>`.
    Blob,
}

/// True when `location` names the upstream `api_host` itself: the same
/// host and the same port (a missing port is the scheme's default, the
/// upstream's that of the scheme it is reached with). Another port of the
/// same host is another service.
fn same_origin(
    location: &reqwest::Url,
    api_host: &str,
    schemes: &std::sync::Mutex<std::collections::HashMap<String, Scheme>>,
) -> bool {
    let scheme = schemes
        .lock()
        .ok()
        .and_then(|m| m.get(api_host).copied())
        .unwrap_or(Scheme::Https);
    let Ok(upstream) = reqwest::Url::parse(&format!("{}://{api_host}/", scheme.as_str())) else {
        return false;
    };
    upstream.host() == location.host()
        && upstream.port_or_known_default() == location.port_or_known_default()
}

/// Redirects followed for blobs (registries hand blobs to storage hosts).
const MAX_BLOB_REDIRECTS: usize = 3;

/// An upstream answer whose body has not been read yet.
#[derive(Debug)]
pub struct Pulled {
    url: String,
    resp: reqwest::Response,
}

impl Pulled {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.resp.status().as_u16()
    }

    /// The media type (`Content-Type` without parameters), when given.
    pub fn content_type(&self) -> Option<String> {
        self.resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The declared body length, when given.
    pub fn content_length(&self) -> Option<u64> {
        self.resp
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        let url = &self.url;
        self.resp
            .chunk()
            .await
            .map_err(|e| RegistryError::from_transport(crate::transport::classify(url, e)))
    }

    /// The whole body, refused when larger than `limit`.
    pub async fn read_limited(self, limit: u64) -> Result<Bytes, RegistryError> {
        crate::body::read_limited(&self.url, self.resp, limit)
            .await
            .map_err(RegistryError::from_transport)
    }

    /// The URL that answered (for messages).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl RegistryClient {
    /// `GET` (or `HEAD`) of a manifest or blob of `repository` (a path
    /// such as `team/app`) on `registry` (as named in references:
    /// `docker.io` for Docker Hub). Authenticates with tufd's credentials
    /// for that registry only. Any status is returned as is except 401
    /// after authentication and redirects: blobs follow up to three
    /// redirects, without credentials, to the upstream itself or to public
    /// https hosts only (see `redirect.rs`; others are
    /// [`RegistryError::RedirectRefused`]); manifests follow none.
    pub async fn pull(
        &self,
        registry: &str,
        repository: &str,
        object: PullObject,
        reference: &str,
        head: bool,
    ) -> Result<Pulled, RegistryError> {
        let image = ImageRef {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: reference.to_owned(),
        };
        let host = image.api_host().to_owned();
        let kind = match object {
            PullObject::Manifest => "manifests",
            PullObject::Blob => "blobs",
        };
        let path = format!("/v2/{repository}/{kind}/{reference}");
        let method = if head {
            reqwest::Method::HEAD
        } else {
            reqwest::Method::GET
        };
        let first = match self.cached_token(&image) {
            Some(token) => Authorization::Bearer(token),
            None => Authorization::None,
        };
        let (mut url, mut resp) = self.request(&method, &host, &path, &first).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            if matches!(first, Authorization::Bearer(_)) {
                self.forget_token(&image);
            }
            // A HEAD answer has no body, but its challenge header is enough.
            let auth = self.answer_challenge(&image, &url, resp).await?;
            (url, resp) = self.request(&method, &host, &path, &auth).await?;
        }
        let mut hops = 0;
        while object == PullObject::Blob && resp.status().is_redirection() {
            hops += 1;
            if hops > MAX_BLOB_REDIRECTS {
                return Err(RegistryError::Status {
                    url,
                    status: resp.status().as_u16(),
                    detail: format!("more than {MAX_BLOB_REDIRECTS} redirects"),
                });
            }
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| reqwest::Url::parse(&url).ok()?.join(l).ok())
                .ok_or_else(|| RegistryError::BadResponse {
                    url: url.clone(),
                    detail: "a redirect without a usable Location".into(),
                })?;
            url = location.to_string();
            let client = self.redirect_client(&image, &location)?;
            resp = client
                .request(method.clone(), location)
                .send()
                .await
                .map_err(|e| match super::redirect::blocked_in(&e) {
                    Some(b) => RegistryError::RedirectRefused {
                        url: url.clone(),
                        reason: b.to_string(),
                    },
                    None => RegistryError::transport(&url, e),
                })?;
        }
        if resp.status() == StatusCode::UNAUTHORIZED {
            let hint = match self.credentials_for(&image) {
                Some(c) => format!(
                    "the credentials of {:?} were rejected or lack pull access to {}",
                    c.username,
                    image.name()
                ),
                None => format!(
                    "no credentials configured for {}; the repository may be private",
                    image.registry()
                ),
            };
            return Err(RegistryError::Unauthorized {
                url,
                status: 401,
                hint,
            });
        }
        Ok(Pulled { url, resp })
    }

    /// The client that may follow a redirect to `location`, or why none may:
    /// the upstream itself (same host and port) is reached as configured,
    /// over https or, when it may be, plain http; any other host over
    /// https only, through the client that connects to public addresses
    /// only. An address literal is checked here; names are checked by that
    /// client's resolver when it connects.
    fn redirect_client(
        &self,
        image: &ImageRef,
        location: &reqwest::Url,
    ) -> Result<&reqwest::Client, RegistryError> {
        let refused = |reason: String| RegistryError::RedirectRefused {
            url: location.to_string(),
            reason,
        };
        let host = location.host_str().unwrap_or_default();
        let target = match location.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let upstream = image.api_host();
        let scheme = location.scheme();
        if same_origin(location, upstream, &self.schemes) {
            return match scheme {
                "https" => Ok(&self.http),
                "http" if self.http_allowed(upstream) => Ok(&self.http),
                _ => Err(refused(format!(
                    "{scheme} to the upstream {upstream}, which is not reached over plain http (list it in insecure_registries if it speaks only http)"
                ))),
            };
        }
        if scheme != "https" {
            return Err(refused(format!(
                "{scheme} to {target}, which is not the upstream {upstream}: redirects to other hosts must use https"
            )));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<std::net::IpAddr>()
            && let Some(why) = super::redirect::forbidden(ip)
        {
            return Err(refused(format!(
                "{target} is {why}, not the upstream {upstream}; blob redirects lead only to public https hosts or the upstream itself"
            )));
        }
        Ok(&self.redirect_http)
    }

    /// One request, choosing (and remembering) https or plain http as
    /// `get_manifest` does.
    async fn request(
        &self,
        method: &reqwest::Method,
        host: &str,
        path: &str,
        auth: &Authorization<'_>,
    ) -> Result<(String, reqwest::Response), RegistryError> {
        let known = self.schemes.lock().ok().and_then(|m| m.get(host).copied());
        let first = known.unwrap_or(Scheme::Https);
        let url = format!("{}://{host}{path}", first.as_str());
        match self.send(method, &url, auth).await {
            Ok(resp) => {
                self.remember(host, first);
                Ok((url, resp))
            }
            Err(e) if known.is_none() && e.is_plain_http_peer() && self.http_allowed(host) => {
                let url = format!("http://{host}{path}");
                let resp = self.send(method, &url, auth).await?;
                self.remember(host, Scheme::Http);
                Ok((url, resp))
            }
            Err(e) => Err(e),
        }
    }

    async fn send(
        &self,
        method: &reqwest::Method,
        url: &str,
        auth: &Authorization<'_>,
    ) -> Result<reqwest::Response, RegistryError> {
        use secrecy::ExposeSecret;
        tracing::debug!(%url, %method, "registry pull request");
        let mut req = self
            .http
            .request(method.clone(), url)
            .header(reqwest::header::ACCEPT, super::ACCEPTED.join(", "));
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
}

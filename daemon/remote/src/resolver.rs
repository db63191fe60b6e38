//! Which notary server serves which repository.
//!
//! A list of `prefix → server` routes; the longest matching prefix wins, and
//! a default (typically `DOCKER_CONTENT_TRUST_SERVER`) catches the rest.

use crate::{Error, Gun, NotaryClient, RemoteConfig};

/// The environment variable docker uses for the notary server URL.
pub const DOCKER_CONTENT_TRUST_SERVER: &str = "DOCKER_CONTENT_TRUST_SERVER";

/// One route: repositories under `prefix` go to `config`.
#[derive(Clone, Debug)]
pub struct Route {
    /// A GUN prefix matched on `/` boundaries: `registry.example.com/team`
    /// matches `registry.example.com/team` and `registry.example.com/team/app`,
    /// not `registry.example.com/teamx`. A prefix ending in `/` matches only
    /// below it; the empty prefix matches everything.
    pub prefix: String,
    /// The server for these repositories.
    pub config: RemoteConfig,
}

/// Maps repositories to ready [`NotaryClient`]s.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    routes: Vec<(String, NotaryClient)>,
    default: Option<NotaryClient>,
}

impl Resolver {
    /// Builds a client for every route and for the default.
    pub fn new(routes: Vec<Route>, default: Option<RemoteConfig>) -> Result<Self, Error> {
        let mut built = Vec::with_capacity(routes.len());
        for route in routes {
            let client = NotaryClient::new(&route.config)?;
            built.push((route.prefix, client));
        }
        // Longest prefix first, so the first match is the most specific.
        built.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        let default = default.as_ref().map(NotaryClient::new).transpose()?;
        Ok(Resolver {
            routes: built,
            default,
        })
    }

    /// Like [`Resolver::new`], with the default server taken from
    /// `DOCKER_CONTENT_TRUST_SERVER` when that is set and non-empty;
    /// `template` supplies the rest of the default's settings (CA, timeouts…).
    pub fn with_env_default(routes: Vec<Route>, template: RemoteConfig) -> Result<Self, Error> {
        let default = default_server_from_env().map(|url| RemoteConfig { url, ..template });
        Resolver::new(routes, default)
    }

    /// Every configured server's base URL (routes, then the default), once
    /// each: what a caller may name as its choice of server.
    pub fn servers(&self) -> Vec<&str> {
        let mut urls: Vec<&str> = Vec::new();
        for client in self.routes.iter().map(|(_, c)| c).chain(&self.default) {
            if !urls.contains(&client.base_url()) {
                urls.push(client.base_url());
            }
        }
        urls
    }

    /// The client for `gun`, or [`Error::NoServer`].
    pub fn client_for(&self, gun: &Gun) -> Result<&NotaryClient, Error> {
        self.routes
            .iter()
            .find(|(prefix, _)| prefix_matches(prefix, gun.as_str()))
            .map(|(_, client)| client)
            .or(self.default.as_ref())
            .ok_or_else(|| Error::NoServer {
                gun: gun.to_string(),
            })
    }
}

/// `DOCKER_CONTENT_TRUST_SERVER`, if set and non-empty.
pub fn default_server_from_env() -> Option<String> {
    std::env::var(DOCKER_CONTENT_TRUST_SERVER)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn prefix_matches(prefix: &str, gun: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    if prefix.ends_with('/') {
        return gun.starts_with(prefix) && gun.len() > prefix.len();
    }
    match gun.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(prefix_matches("", "a/b"));
        assert!(prefix_matches("reg.io/team", "reg.io/team"));
        assert!(prefix_matches("reg.io/team", "reg.io/team/app"));
        assert!(!prefix_matches("reg.io/team", "reg.io/teamx"));
        assert!(prefix_matches("reg.io/", "reg.io/x"));
        assert!(!prefix_matches("reg.io/", "reg.io/"));
        assert!(!prefix_matches("reg.io/", "reg.io"));
    }

    fn gun(s: &str) -> Gun {
        Gun::new(s).expect("valid gun")
    }

    #[test]
    fn longest_prefix_then_default() {
        let routes = vec![
            Route {
                prefix: "reg.io".into(),
                config: RemoteConfig::new("https://a.example"),
            },
            Route {
                prefix: "reg.io/secret".into(),
                config: RemoteConfig::new("https://b.example"),
            },
        ];
        let r = Resolver::new(routes.clone(), None).expect("resolver");
        let url = |g: &str| r.client_for(&gun(g)).map(|c| c.base_url().to_owned()).ok();
        assert_eq!(url("reg.io/x").as_deref(), Some("https://a.example"));
        assert_eq!(url("reg.io/secret/x").as_deref(), Some("https://b.example"));
        assert_eq!(url("other.io/x"), None);
        assert!(matches!(
            r.client_for(&gun("other.io/x")),
            Err(Error::NoServer { .. })
        ));

        let r = Resolver::new(routes, Some(RemoteConfig::new("https://default.example/")))
            .expect("resolver");
        assert_eq!(
            r.client_for(&gun("other.io/x")).map(|c| c.base_url()).ok(),
            Some("https://default.example")
        );
    }
}

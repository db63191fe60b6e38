//! Docker Content Trust operations on Notary v1 repositories.
//!
//! Each operation is one transaction per repository ([`txn`]): read the
//! current metadata from the server, verify it against the trusted root in
//! the local store, apply one intent, sign the changed roles on tokens,
//! check, publish in one request, read back and verify, then update the
//! local store. This layer knows nothing of gRPC.

pub mod draft;
mod error;
pub mod fetch;
pub mod group;
pub mod inspect;
pub mod intent;
mod pending;
mod recent;
pub mod repair;
pub mod signer;
pub mod store;
pub mod txn;
pub mod verify;

pub use error::TrustError;

use crate::config::Config;
use crate::keyring::Keyring;
use draft::{Draft, HeldKey, HeldKeys, key_from_pem, server_key};
use fetch::Fetched;
use std::collections::HashMap;
use std::sync::Arc;
use time::OffsetDateTime;
use tufd_keys::KeyLabel;
use tufd_proto::names;
use tufd_remote::{Gun, ServerKeyRole};
use tufd_tuf::expiry::ROOT_EXPIRY;
use tufd_tuf::{Key, RoleName, Root};
use txn::{Change, Engine};

/// Something an operation tells the waiting client before it finishes.
#[derive(Debug, Clone)]
pub enum Event {
    /// A step of the operation.
    Progress { repository: String, message: String },
    /// A signature waits for a touch on a device.
    Touch {
        repository: String,
        /// The device's kind ("YubiKey") or token name.
        device: String,
        /// Its serial number, if it has one.
        serial: String,
        role: String,
    },
}

/// Where operations send their [`Event`]s.
pub type EventSink = tokio::sync::mpsc::UnboundedSender<Event>;

/// Which roles of which repository an operation may write (the caller's
/// policy, decided above this layer): `(repository, role) -> allowed`.
pub type RoleFilter = std::sync::Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// Every role of every repository.
pub fn any_role() -> RoleFilter {
    std::sync::Arc::new(|_, _| true)
}

/// A tag to sign: repository, tag, manifest digest and size.
#[derive(Debug, Clone)]
pub struct TagSpec {
    pub repository: String,
    pub tag: String,
    pub digest: [u8; 32],
    pub size: u64,
}

/// Which key `key rotate` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateRole {
    Root,
    Targets,
    Snapshot { server_managed: bool },
    Timestamp,
}

/// The trust layer.
pub struct Trust {
    engine: Arc<Engine>,
    registry: tufd_remote::RegistryClient,
    verify_policy: verify::VerifyPolicy,
    /// Bytes all pull-time client updates hold at once.
    verify_bytes: verify::budget::SharedBytes,
}

/// Why a caller's choice of notary server cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerChoice {
    /// The daemon serves the repository from this other configured server.
    Elsewhere { repository: String, server: String },
    /// The named server is none of the daemon's.
    Unknown { configured: Vec<String> },
}

/// A server URL as compared: no trailing `/`, scheme and host in lower case.
fn normalized_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            format!(
                "{}://{}{path}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            )
        }
        None => url.to_owned(),
    }
}

/// The repository named `name`, normalized as docker does
/// (`alpine` → `docker.io/library/alpine`); names docker refuses are
/// refused with docker's reason.
pub fn gun(name: &str) -> Result<Gun, TrustError> {
    let full = names::repository(name).map_err(|e| TrustError::InvalidRequest(e.to_string()))?;
    Gun::new(full).map_err(|e| TrustError::InvalidRequest(e.to_string()))
}

/// Whether the caller may initialize repository `gun` (adding a signer to
/// a repository that does not exist creates it): `Err` names the missing
/// permission as the policy does.
pub type MayInit = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// What `signer add` does with a repository its read finds missing.
#[derive(Clone, Copy)]
pub struct IfMissing<'a> {
    /// The token for the new root and targets keys (empty: the default).
    pub token: &'a str,
    /// The new repository's snapshot key is held by tufd, not the server.
    pub client_snapshot: bool,
    /// Whether the caller may initialize it, asked when it is found
    /// missing.
    pub may_init: &'a MayInit,
}

/// Parses `sha256:<64 hex>`.
pub fn parse_digest(digest: &str) -> Result<[u8; 32], TrustError> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        TrustError::InvalidRequest(format!(
            "digest {digest:?}: expected sha256:<64 hex digits>"
        ))
    })?;
    let bytes = hex::decode(hex)
        .ok()
        .filter(|_| hex.len() == 64)
        .ok_or_else(|| {
            TrustError::InvalidRequest(format!(
                "digest {digest:?}: expected sha256:<64 hex digits>"
            ))
        })?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes);
    Ok(out)
}

fn check_tag(tag: &str) -> Result<(), TrustError> {
    names::check_tag(tag).map_err(|e| TrustError::InvalidRequest(e.to_string()))
}

fn check_signer_name(name: &str) -> Result<RoleName, TrustError> {
    names::check_signer_name(name).map_err(|e| TrustError::InvalidRequest(e.to_string()))?;
    RoleName::parse(&format!("targets/{name}"))
        .map_err(|e| TrustError::InvalidRequest(e.to_string()))
}

/// A signer call names at least one repository, each valid.
fn check_repositories(repositories: &[String]) -> Result<(), TrustError> {
    if repositories.is_empty() {
        return Err(TrustError::InvalidRequest(
            "give at least one repository".into(),
        ));
    }
    repositories.iter().try_for_each(|r| gun(r).map(drop))
}

fn missing(gun: &str) -> TrustError {
    TrustError::NotFound(format!(
        "{gun}: the repository has no trust data on the server; `tufctl signer add` initializes it"
    ))
}

/// The repository this attempt read, as a draft to change (the read moves
/// into it); the error a person gets when it does not exist yet.
fn existing(name: &str, fetched: Option<Fetched>) -> Result<Draft, TrustError> {
    let f = fetched.ok_or_else(|| missing(name))?;
    Draft::from_read(name, f, OffsetDateTime::now_utc())
}

/// [`existing`] for intents that also look at the read itself (a copy).
fn existing_kept(name: &str, fetched: Option<Fetched>) -> Result<(Fetched, Draft), TrustError> {
    let f = fetched.ok_or_else(|| missing(name))?;
    let draft = Draft::from_fetched(name, &f, OffsetDateTime::now_utc())?;
    Ok((f, draft))
}

/// Runs one transaction per item, in order. A failure stops the rest and
/// names the repositories already published.
async fn each_repository<I, F, Fut>(items: I, mut one: F) -> Result<Vec<Change>, TrustError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<Change, TrustError>>,
{
    let mut changes = Vec::new();
    for item in items {
        let change = one(item).await.map_err(|e| e.after(&changes))?;
        changes.push(change);
    }
    Ok(changes)
}

/// The refusal when a caller's [`BeforeEffect`] failed.
pub(crate) fn before_failed(why: &str) -> TrustError {
    TrustError::Unrecorded(format!(
        "the audit log could not be synced ({why}); nothing was published; check the disk of the audit log"
    ))
}

/// What must be done before a change takes effect for a caller (its audit
/// record made durable): awaited right before the publish, after the read,
/// the intent and the signing, which have no effect. An error refuses the
/// change; nothing is published.
pub type BeforeEffect =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

impl Trust {
    /// Checks a caller's choice of notary server (docker's
    /// `DOCKER_CONTENT_TRUST_SERVER`, sent by tufctl) for `repositories`:
    /// it must be the configured server the daemon serves each of them
    /// from. Never a redirect: the daemon only talks to its own servers.
    pub fn check_server_choice(
        &self,
        choice: &str,
        repositories: &[String],
    ) -> Result<(), ServerChoice> {
        let wanted = normalized_url(choice);
        let configured: Vec<String> = self
            .engine
            .resolver
            .servers()
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !configured.iter().any(|c| normalized_url(c) == wanted) {
            return Err(ServerChoice::Unknown { configured });
        }
        for r in repositories {
            let Ok(g) = gun(r) else { continue };
            if let Ok(client) = self.engine.client(&g)
                && normalized_url(client.base_url()) != wanted
            {
                return Err(ServerChoice::Elsewhere {
                    repository: g.as_str().to_owned(),
                    server: client.base_url().to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Builds the trust layer for a configuration.
    pub fn new(config: &Config, keyring: Arc<Keyring>) -> Result<Self, TrustError> {
        let resolver = tufd_remote::Resolver::with_env_default(
            config.remotes.clone(),
            tufd_remote::RemoteConfig::new(""),
        )
        .map_err(|e| TrustError::InvalidRequest(format!("notary server configuration: {e}")))?;
        let store = store::TrustStore::open(&config.state_dir)?;
        let registry = tufd_remote::RegistryClient::new(&config.registry)
            .map_err(|e| TrustError::InvalidRequest(format!("registry configuration: {e}")))?;
        Ok(Self {
            engine: Arc::new(Engine::new(
                keyring,
                resolver,
                store,
                config.expiries,
                config.verify.max_bytes,
            )),
            registry,
            verify_policy: config.verify.clone(),
            // An update waits for room at most a quarter of its deadline.
            verify_bytes: verify::budget::SharedBytes::new(
                config.verify.max_total_bytes,
                config.verify.deadline / 4,
            ),
        })
    }

    /// The digest and size of `repository:tag`'s manifest, read from the
    /// registry the repository names (as docker does before it signs).
    pub async fn resolve(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<([u8; 32], u64), TrustError> {
        let image = tufd_remote::ImageRef::new(repository, tag)
            .map_err(|e| TrustError::InvalidRequest(format!("{repository}:{tag}: {e}")))?;
        let m = self.registry.resolve(&image).await.map_err(|e| {
            if e.is_not_found() {
                TrustError::NotFound(e.to_string())
            } else {
                TrustError::Registry {
                    reference: format!("{repository}:{tag}"),
                    source: Box::new(e),
                }
            }
        })?;
        Ok((m.digest, m.size))
    }

    /// The key named `name` for `gun` on a token: the existing one, or a new
    /// one generated on `token`.
    async fn ensure_key(
        &self,
        held: &HeldKeys,
        name: &str,
        gun: &str,
        token: &str,
    ) -> Result<HeldKey, TrustError> {
        if let Some(k) = held.by_label(name, gun) {
            return Ok(k.clone());
        }
        let label = KeyLabel::new(name, gun).map_err(|e| TrustError::Keyring(e.into()))?;
        let record = self.engine.keyring.generate(label, token).await?;
        let store = self.engine.keyring.key_store(&record.token)?;
        Ok(HeldKey {
            signer: signer::TokenSigner::new(store.clone(), record),
            store,
        })
    }

    /// A fresh key name `<role>-<n>` for a rotation.
    fn next_name(held: &HeldKeys, role: &str, gun: &str) -> String {
        (2..)
            .map(|n| format!("{role}-{n}"))
            .find(|n| held.by_label(n, gun).is_none())
            .expect("an unused name exists")
    }

    /// Builds the root certificate key for `gun` on the token, and keeps
    /// the certificate on the key's device (a YubiKey slot then holds the
    /// repository's root certificate itself).
    async fn root_cert_key(&self, gun: &str, key: &HeldKey) -> Result<Key, TrustError> {
        let held = key.clone();
        let gun_owned = gun.to_owned();
        tokio::task::spawn_blocking(move || {
            let md = |e| TrustError::metadata(&gun_owned, e);
            let key = tufd_tuf::build_root_key(&gun_owned, &held.signer, OffsetDateTime::now_utc())
                .map_err(md)?;
            let der = {
                use der::Encode;
                let certs = key.certificates().map_err(md)?;
                certs
                    .first()
                    .and_then(|c| c.to_der().ok())
                    .ok_or_else(|| TrustError::Internal("the root key has no certificate".into()))?
            };
            held.store
                .store_certificate(&held.signer.record().id, &der)
                .map_err(|e| TrustError::Keyring(e.into()))?;
            Ok(key)
        })
        .await
        .map_err(|e| TrustError::Internal(format!("certificate worker failed: {e}")))?
    }

    /// The draft of a new repository: root and targets keys on `token`,
    /// timestamp (and, unless `client_snapshot`, snapshot) keys from the
    /// server, a self-signed root certificate with CN = the repository.
    async fn new_repository(
        &self,
        gun: &Gun,
        held: &HeldKeys,
        token: &str,
        client_snapshot: bool,
    ) -> Result<Draft, TrustError> {
        let name = gun.as_str();
        let client = self.engine.client(gun)?;
        let remote = |e| TrustError::remote(name, e);
        let timestamp = server_key(
            name,
            &client
                .get_server_key(gun, ServerKeyRole::Timestamp)
                .await
                .map_err(remote)?,
        )?;
        let snapshot = if client_snapshot {
            let k = self.ensure_key(held, "snapshot", name, token).await?;
            Key::ecdsa(k.signer.record().spki_der.clone())
        } else {
            server_key(
                name,
                &client
                    .get_server_key(gun, ServerKeyRole::Snapshot)
                    .await
                    .map_err(remote)?,
            )?
        };
        let root_key = self.ensure_key(held, "root", name, token).await?;
        let targets_key = self.ensure_key(held, "targets", name, token).await?;
        let root_cert = self.root_cert_key(name, &root_key).await?;
        let now = OffsetDateTime::now_utc();
        let mut root = Root::new(now + ROOT_EXPIRY);
        let md = |e| TrustError::metadata(name, e);
        root.set_role_keys(&RoleName::Root, &[root_cert])
            .map_err(md)?;
        root.set_role_keys(
            &RoleName::Targets,
            &[Key::ecdsa(targets_key.signer.record().spki_der.clone())],
        )
        .map_err(md)?;
        root.set_role_keys(&RoleName::Snapshot, &[snapshot])
            .map_err(md)?;
        root.set_role_keys(&RoleName::Timestamp, &[timestamp])
            .map_err(md)?;
        Ok(Draft::new_repository(name, root, now))
    }

    /// `signer add`: the signer's key becomes targets/NAME and joins
    /// targets/releases. A repository the transaction's read finds missing
    /// is initialized first as `missing` says, when its `may_init` allows
    /// it; else nothing is created ([`TrustError::Denied`]).
    pub async fn add_signer(
        &self,
        signer: &str,
        repositories: &[String],
        public_key_pem: &str,
        missing: IfMissing<'_>,
        events: &EventSink,
    ) -> Result<Vec<Change>, TrustError> {
        let IfMissing {
            token,
            client_snapshot,
            may_init,
        } = missing;
        let role = check_signer_name(signer)?;
        check_repositories(repositories)?;
        let key = key_from_pem(public_key_pem)?;
        let (role, key) = (&role, &key);
        each_repository(repositories, |repo| async move {
            let g = gun(repo)?;
            self.engine
                .transact(&g, events, |fetched, held| {
                    let g = g.clone();
                    async move {
                        let name = g.as_str();
                        let (draft, held) = match fetched {
                            Some(f) => (
                                Draft::from_fetched(name, &f, OffsetDateTime::now_utc())?,
                                held,
                            ),
                            None => {
                                may_init(name).map_err(|needed| TrustError::Denied {
                                    repository: name.to_owned(),
                                    needed,
                                })?;
                                let draft = self
                                    .new_repository(&g, &held, token, client_snapshot)
                                    .await?;
                                // With the root and targets keys just generated.
                                (draft, self.engine.held_keys().await?)
                            }
                        };
                        intent::signer::add(name, draft, &held, signer, role, key)
                    }
                })
                .await
        })
        .await
    }

    /// `signer remove`: see [`intent::signer::remove`].
    pub async fn remove_signer(
        &self,
        signer: &str,
        repositories: &[String],
        force: bool,
        events: &EventSink,
    ) -> Result<Vec<Change>, TrustError> {
        let role = check_signer_name(signer)?;
        check_repositories(repositories)?;
        let role = &role;
        each_repository(repositories, |repo| async move {
            let g = gun(repo)?;
            self.engine
                .transact(&g, events, |fetched, held| {
                    let g = g.clone();
                    async move {
                        let name = g.as_str();
                        let (f, draft) = existing_kept(name, fetched)?;
                        intent::signer::remove(name, &f, draft, &held, signer, role, force)
                    }
                })
                .await
        })
        .await
    }

    /// `sign`: adds tags, as `docker trust sign` does, to every direct
    /// delegation of targets whose key tufd holds (targets/releases and the
    /// signer's own targets/NAME), or to targets when the repository has no
    /// delegations. The tags of one repository are one transaction.
    pub async fn sign(
        &self,
        tags: &[TagSpec],
        events: &EventSink,
    ) -> Result<Vec<Change>, TrustError> {
        self.sign_in(tags, any_role(), events, None).await
    }

    /// `sign` into the roles `allowed` lets the caller write only.
    pub async fn sign_in(
        &self,
        tags: &[TagSpec],
        allowed: RoleFilter,
        events: &EventSink,
        before: Option<BeforeEffect>,
    ) -> Result<Vec<Change>, TrustError> {
        if tags.is_empty() {
            return Err(TrustError::InvalidRequest(
                "give at least one REPO:TAG".into(),
            ));
        }
        // Grouped by repository in the order first named; each name given
        // is normalized once and found again by hash (a request carries up
        // to 100 000 tags).
        let mut by_repo: Vec<(String, Vec<TagSpec>)> = Vec::new();
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let mut slot_of_gun: HashMap<String, usize> = HashMap::new();
        for t in tags {
            check_tag(&t.tag)?;
            if t.size == 0 {
                return Err(TrustError::InvalidRequest(format!(
                    "{}:{}: size 0; a manifest is never empty (give its size in bytes, or no digest to read both from the registry)",
                    t.repository, t.tag
                )));
            }
            let slot = match slot_of.get(t.repository.as_str()) {
                Some(&i) => i,
                None => {
                    let repository = gun(&t.repository)?.as_str().to_owned();
                    let i = *slot_of_gun.entry(repository.clone()).or_insert_with(|| {
                        by_repo.push((repository, Vec::new()));
                        by_repo.len() - 1
                    });
                    slot_of.insert(&t.repository, i);
                    i
                }
            };
            let (repository, specs) = &mut by_repo[slot];
            specs.push(TagSpec {
                repository: repository.clone(),
                ..t.clone()
            });
        }
        // One repository (the usual sign): its transaction awaits `before`
        // right before its publish. Several: awaited now, before any.
        let before = match before {
            Some(b) if by_repo.len() > 1 => {
                b.await.map_err(|e| before_failed(&e))?;
                None
            }
            b => b,
        };
        let before = std::sync::Mutex::new(before);
        let (allowed, before) = (&allowed, &before);
        each_repository(by_repo, |(repo, specs)| async move {
            let g = gun(&repo)?;
            let before = before.lock().unwrap_or_else(|e| e.into_inner()).take();
            // Concurrent signs into one repository share a transaction
            // (group commit, see `group.rs`).
            self.engine
                .sign_grouped(&g, specs, allowed.clone(), events, before)
                .await
        })
        .await
    }

    /// `revoke`: removes `tag` (or every tag) from every role that lists it.
    /// Nothing changes when a listing role cannot be signed by tufd.
    pub async fn revoke(
        &self,
        repository: &str,
        tag: Option<&str>,
        events: &EventSink,
    ) -> Result<Change, TrustError> {
        self.revoke_in(repository, tag, any_role(), events).await
    }

    /// `revoke`, refused when a role listing the tag is not one `allowed`
    /// lets the caller write.
    pub async fn revoke_in(
        &self,
        repository: &str,
        tag: Option<&str>,
        allowed: RoleFilter,
        events: &EventSink,
    ) -> Result<Change, TrustError> {
        if let Some(t) = tag {
            check_tag(t)?;
        }
        let g = gun(repository)?;
        self.engine
            .transact(&g, events, |fetched, held| {
                let g = g.clone();
                let allowed = allowed.clone();
                async move {
                    let name = g.as_str();
                    let draft = existing(name, fetched)?;
                    intent::revoke::apply(name, draft, &held, tag, &|r| allowed(name, r))
                }
            })
            .await
    }

    /// `key rotate`: replaces a repository key. The new key is made first
    /// (on a token, or by the server), then [`intent::rotate::apply`].
    pub async fn rotate(
        &self,
        repository: &str,
        which: RotateRole,
        token: &str,
        events: &EventSink,
    ) -> Result<Change, TrustError> {
        use intent::rotate::NewKey;
        let g = gun(repository)?;
        self.engine
            .transact(&g, events, |fetched, held| {
                let g = g.clone();
                async move {
                    let name = g.as_str();
                    let draft = existing(name, fetched)?;
                    intent::rotate::check(name, &draft, &held)?;
                    let client = self.engine.client(&g)?;
                    let remote = |e| TrustError::remote(name, e);
                    let token_key = |role: &'static str| {
                        let held = &held;
                        async move {
                            let k = self
                                .ensure_key(held, &Self::next_name(held, role, name), name, token)
                                .await?;
                            Ok::<_, TrustError>(k)
                        }
                    };
                    let new = match which {
                        RotateRole::Targets => {
                            let k = token_key("targets").await?;
                            NewKey::Targets(Key::ecdsa(k.signer.record().spki_der.clone()))
                        }
                        RotateRole::Snapshot {
                            server_managed: true,
                        } => NewKey::Snapshot {
                            key: server_key(
                                name,
                                &client
                                    .rotate_server_key(&g, ServerKeyRole::Snapshot)
                                    .await
                                    .map_err(remote)?,
                            )?,
                            token: None,
                        },
                        RotateRole::Snapshot {
                            server_managed: false,
                        } => {
                            let k = token_key("snapshot").await?;
                            NewKey::Snapshot {
                                key: Key::ecdsa(k.signer.record().spki_der.clone()),
                                token: Some(k.signer.record().token.clone()),
                            }
                        }
                        RotateRole::Timestamp => NewKey::Timestamp(server_key(
                            name,
                            &client
                                .rotate_server_key(&g, ServerKeyRole::Timestamp)
                                .await
                                .map_err(remote)?,
                        )?),
                        RotateRole::Root => {
                            let old = intent::rotate::current_root_keys(&draft, &held);
                            let k = token_key("root").await?;
                            NewKey::Root {
                                cert: self.root_cert_key(name, &k).await?,
                                old,
                            }
                        }
                    };
                    intent::rotate::apply(name, draft, new)
                }
            })
            .await
    }

    /// Waits for work that outlives answers (stores of verified results);
    /// shutdown calls it, bounded.
    pub async fn idle(&self) {
        self.engine.idle().await;
    }

    /// Reads and verifies a repository (trust on first use when tufd has
    /// not seen it), storing what verified.
    pub async fn read(&self, repository: &str) -> Result<Fetched, TrustError> {
        let g = gun(repository)?;
        let lock = self.engine.lock_for(g.as_str());
        let _guard = lock.lock().await;
        let f = match self.engine.read(&g).await {
            Ok(f) => f.ok_or_else(|| missing(g.as_str()))?,
            Err(e @ TrustError::Metadata { .. }) => {
                // Say what clients see and how to get out, when only
                // delegations fail to verify.
                let skipped = match self.engine.read_lenient(&g).await {
                    Ok(Some(l)) => l.repo.skipped,
                    _ => Vec::new(),
                };
                if skipped.is_empty() {
                    return Err(e);
                }
                let hidden: Vec<String> = skipped
                    .iter()
                    .map(|s| format!("{} (tags {})", s.name, s.targets.join(", ")))
                    .collect();
                return Err(TrustError::Refused(format!(
                    "{e}. Clients skip {} and do not see those tags; whoever holds the targets key (or a key the role lists) can run `tufctl repair {}`",
                    hidden.join("; "),
                    g.as_str()
                )));
            }
            Err(e) => return Err(e),
        };
        if !f.unchanged {
            // The kept read-back (`recent.rs`) is now older than the store:
            // it may no longer stand in for a read or serve as the floor.
            self.engine.recent.forget(g.as_str());
            self.engine.store.save(g.as_str(), &f.repo)?;
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_compare_without_trailing_slash_and_case_of_scheme_and_host() {
        assert_eq!(
            normalized_url("HTTPS://Notary.Example.com:4443/"),
            "https://notary.example.com:4443"
        );
        assert_eq!(normalized_url(" https://h/notary/ "), "https://h/notary");
        assert_ne!(
            normalized_url("https://h/Notary"),
            normalized_url("https://h/notary")
        );
        assert_ne!(
            normalized_url("https://h:4443"),
            normalized_url("https://h:443")
        );
    }

    #[test]
    fn digests_tags_and_signer_names_are_checked() {
        assert_eq!(
            parse_digest(&format!("sha256:{}", "ab".repeat(32))).unwrap(),
            [0xab; 32]
        );
        for bad in [
            "ab",
            "sha256:xyz",
            &format!("sha512:{}", "ab".repeat(32)),
            &format!("sha256:{}", "ab".repeat(31)),
        ] {
            assert!(parse_digest(bad).is_err(), "{bad}");
        }
        assert!(check_tag("v1.0-rc_1").is_ok());
        for bad in ["", "a<b>&c-ü€", "../../x", "a\tb", &"t".repeat(129)] {
            assert!(
                matches!(check_tag(bad), Err(TrustError::InvalidRequest(m)) if m.contains("invalid tag format")),
                "{bad:?}"
            );
        }
        assert_eq!(gun("alpine").unwrap().as_str(), "docker.io/library/alpine");
        assert_eq!(
            gun("localhost:5000/x").unwrap().as_str(),
            "localhost:5000/x"
        );
        for bad in [
            "", "Alpine", "repo:a:b", "a/../b", "a:1", " x", "/lead", "trail/", "a?b",
        ] {
            assert!(gun(bad).is_err(), "{bad:?}");
        }
        assert!(check_repositories(&[]).is_err());
        assert!(check_repositories(&["ok/x".into(), "Bad".into()]).is_err());
        assert!(check_repositories(&["ok/x".into()]).is_ok());
        assert!(check_signer_name("alice-2_ci").is_ok());
        for bad in ["Alice", "releases", "", "a/b", "a b"] {
            assert!(check_signer_name(bad).is_err(), "{bad}");
        }
    }
}

//! Notary-server client for tufd.
//!
//! Fetches and publishes TUF metadata over notary-server 0.7's HTTP API
//! (`/v2/<gun>/_trust/tuf/…`). It moves bytes and knows the API and its
//! errors; it does not parse TUF metadata — verification is the trust
//! layer's job.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tufd_remote::Error> {
//! use tufd_remote::{Gun, NotaryClient, RemoteConfig, RoleName};
//!
//! let client = NotaryClient::new(
//!     &RemoteConfig::new("https://notary.example.com:4443").with_ca_file("/etc/tufd/ca.pem"),
//! )?;
//! let gun = Gun::new("registry.example.com/team/app")?;
//! let timestamp = client.get_role(&gun, &RoleName::TIMESTAMP).await?;
//! # let (targets, snapshot) = (timestamp.clone(), timestamp.clone());
//! match client
//!     .publish(&gun, &[(RoleName::TARGETS, targets), (RoleName::SNAPSHOT, snapshot)])
//!     .await
//! {
//!     Err(e) if e.is_lost_race() => { /* re-read, re-apply, re-sign, retry */ }
//!     other => other?,
//! }
//! # Ok(()) }
//! ```

mod body;
mod client;
mod config;
mod error;
mod multipart;
mod names;
mod registry;
mod resolver;
mod tls;
mod transport;

pub use client::{NotaryClient, ServerKey, ServerKeyRole};
pub use config::{Auth, ClientIdentity, RemoteConfig, SizeLimits};
pub use error::{Error, ErrorCode, ServerError};
pub use names::{Gun, RoleName};
pub use registry::{
    DEFAULT_MAX_MANIFEST_SIZE, ImageRef, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, ManifestDescriptor, PullObject, Pulled,
    RegistryClient, RegistryConfig, RegistryCredentials, RegistryError,
};
pub use resolver::{DOCKER_CONTENT_TRUST_SERVER, Resolver, Route, default_server_from_env};

/// Re-exported body type of fetched metadata.
pub use bytes::Bytes;
/// Re-exported so callers can build [`Auth`] without depending on `secrecy` themselves.
pub use secrecy::SecretString;

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn shareable_across_tasks() {
        send_sync::<crate::NotaryClient>();
        send_sync::<crate::Resolver>();
        send_sync::<crate::Error>();
    }
}

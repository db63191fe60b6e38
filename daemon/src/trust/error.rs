//! Errors of trust operations.

use crate::keyring::KeyringError;

/// Why a trust operation failed. Every message names the repository and
/// says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The notary server could not be used.
    #[error("{repository}: {source}")]
    Remote {
        repository: String,
        source: Box<tufd_remote::Error>,
    },
    /// The registry could not tell the manifest digest of a tag.
    #[error("{reference}: {source}")]
    Registry {
        reference: String,
        source: Box<tufd_remote::RegistryError>,
    },
    /// Metadata did not verify, or could not be built.
    #[error("{repository}: {source}")]
    Metadata {
        repository: String,
        source: Box<tufd_tuf::Error>,
    },
    /// A token operation failed.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The repository, signer or tag does not exist.
    #[error("{0}")]
    NotFound(String),
    /// tufd holds no key that may sign what the operation must change.
    #[error("{0}")]
    NoKey(String),
    /// The operation would leave the repository in a state the user did not
    /// ask for (e.g. without signers); refused.
    #[error("{0}")]
    Refused(String),
    /// The caller lacks a permission the operation turned out to need
    /// (a signer added to a repository that does not exist creates it,
    /// which is "init"); `needed` names it as the policy does. Nothing
    /// was changed.
    #[error(
        "{repository}: permission denied: {needed} (the repository does not exist: adding a signer would initialize it); nothing was created"
    )]
    Denied { repository: String, needed: String },
    /// The request is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// Concurrent writers kept winning until the deadline.
    #[error(
        "{repository}: gave up after {attempts} attempts in {seconds} s: other writers kept changing the repository; nothing of this change was published; try again"
    )]
    Contended {
        repository: String,
        attempts: u32,
        seconds: u64,
    },
    /// The server serves a role older than the version tufd verified (or
    /// just published): a rollback, refused.
    #[error(
        "{repository}: {role}: version {served} is not acceptable, expected >= {trusted}, the version tufd verified before: the server rolled {role} back (refused, as the notary client refuses it). A hostile server does this; so does notary-server itself when another writer's publish commits at the same moment as a change to {role} (it can build its snapshot from the {role} it read before that change): then the change of v{trusted} was lost. Check what the server serves with a fresh `notary list {repository}`; to accept it, run `tufctl trust forget {repository}` and apply the lost change again"
    )]
    RolledBack {
        repository: String,
        role: String,
        served: u64,
        trusted: u64,
    },
    /// The change was published, but the repository as served afterwards
    /// does not verify with it (or reading it back failed): the message
    /// says what was published and what state the repository is in.
    #[error("{repository}: {message}")]
    Unverified { repository: String, message: String },
    /// This operation's change was published and then undone to keep
    /// another writer's published change valid; `source` is what the
    /// retry from a fresh read then answered.
    #[error("{what}. Retried from a fresh read: {source}")]
    Undone {
        what: String,
        source: Box<TrustError>,
    },
    /// The local trust store could not be read or written.
    #[error("trust store {path}: {detail}")]
    Store { path: String, detail: String },
    /// A call on several repositories failed part-way; the earlier ones
    /// were published.
    #[error("{source} (already published before this failure: {})", done.join("; "))]
    Partial {
        done: Vec<String>,
        source: Box<TrustError>,
    },
    /// The daemon's CPU pool is full; the caller may retry.
    #[error("{0}")]
    Busy(String),
    /// The change could not be recorded (the audit log's sync failed), so
    /// it was not made.
    #[error("{0}")]
    Unrecorded(String),
    /// A worker thread failed.
    #[error("internal error: {0}")]
    Internal(String),
    /// The failure of a transaction several callers joined (group
    /// commit), as each of them is told it.
    #[error(transparent)]
    Shared(std::sync::Arc<TrustError>),
}

impl TrustError {
    /// Wraps `self` with the summaries of `done`, if any.
    pub(crate) fn after(self, done: &[super::txn::Change]) -> Self {
        if done.is_empty() {
            return self;
        }
        TrustError::Partial {
            done: done.iter().map(|c| c.summary.clone()).collect(),
            source: Box::new(self),
        }
    }

    pub(crate) fn remote(repository: &str, source: tufd_remote::Error) -> Self {
        TrustError::Remote {
            repository: repository.to_owned(),
            source: Box::new(source),
        }
    }

    pub(crate) fn metadata(repository: &str, source: tufd_tuf::Error) -> Self {
        TrustError::Metadata {
            repository: repository.to_owned(),
            source: Box::new(source),
        }
    }
}

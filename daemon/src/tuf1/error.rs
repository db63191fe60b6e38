//! Errors of TUF 1.0 repository management.

use std::path::PathBuf;

use crate::keyring::KeyringError;
use tufd_tuf::tuf1::Tuf1Error;

/// What can go wrong managing a TUF 1.0 repository directory.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// Reading or writing a file failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What tufd was doing.
        action: &'static str,
        /// The system error.
        source: std::io::Error,
    },
    /// Metadata could not be parsed, signed or verified.
    #[error("{context}: {source}")]
    Metadata {
        /// Which file or role.
        context: String,
        /// The TUF layer's error.
        source: Tuf1Error,
    },
    /// A token failed.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// No configured token holds a key the operation needs.
    #[error(
        "no token holds key {keyid} of role {role}; `tufctl key list` shows the keys tufd holds"
    )]
    NoKey {
        /// The role to sign.
        role: String,
        /// The key it lists.
        keyid: String,
    },
    /// The directory is not a repository tufd manages.
    #[error("{0}")]
    NotFound(String),
    /// A repository or target exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request cannot be carried out as given.
    #[error("{0}")]
    InvalidRequest(String),
    /// A staged change does not have the signatures it needs yet.
    #[error("the staged change is not signed enough yet: {0}")]
    Waiting(String),
    /// The request names a place outside what the configuration allows.
    #[error("refused: {0}")]
    Refused(String),
    /// The repository's creation has not finished: `tufctl tuf init` is
    /// still writing it, or was interrupted (then running it again
    /// finishes it).
    #[error("{}", unfinished(.dir, *.under_way))]
    Unfinished {
        /// The repository directory.
        dir: PathBuf,
        /// Whether an init in this daemon is writing it now.
        under_way: bool,
    },
    /// Another writer holds the repository.
    #[error("{0} is being written by another process; try again")]
    Busy(PathBuf),
    /// The published roles verify under no root tufd published.
    #[error("{0}")]
    Inconsistent(String),
    /// A publish interrupted after its new root could not be completed.
    #[error(
        "{dir}: root v{version} is published but {roles} still carry the previous root's keys (an interrupted publish), and completing it failed: {source}; make the keys readable, then run `tufctl tuf refresh --force {dir}`"
    )]
    Interrupted {
        /// The repository.
        dir: PathBuf,
        /// The newest root's version.
        version: u64,
        /// The roles that do not verify under it.
        roles: String,
        /// Why they could not be signed again.
        source: Box<RepoError>,
    },
    /// The name a new key was to get is taken.
    #[error("{0}")]
    NameTaken(String),
    /// Metadata would be published already expired.
    #[error("{0}")]
    Expired(String),
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

fn unfinished(dir: &std::path::Path, under_way: bool) -> String {
    let dir = dir.display();
    if under_way {
        format!(
            "the TUF repository at {dir} is being created; try again when `tufctl tuf init` has finished"
        )
    } else {
        format!(
            "the creation of the TUF repository at {dir} was interrupted before it finished, so clients cannot use it yet; finish it with `tufctl tuf init {dir}` (the keys it already made on the tokens are reused)"
        )
    }
}

impl RepoError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, action: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| RepoError::Io {
            path,
            action,
            source,
        }
    }

    /// A metadata error about `context`.
    pub fn metadata(context: impl Into<String>) -> impl FnOnce(Tuf1Error) -> Self {
        let context = context.into();
        move |source| RepoError::Metadata { context, source }
    }
}

//! The Unix socket server: set-up, serving, graceful shutdown.

use crate::config::Config;
use crate::keyring::Keyring;
use crate::service::{KeysService, SystemService, TrustService};
use crate::trust::{Trust, TrustError};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tufd_proto::v1::keys_server::KeysServer;
use tufd_proto::v1::system_server::SystemServer;
use tufd_proto::v1::trust_server::TrustServer;

/// How long in-flight requests get to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("another tufd is already listening on {0}; stop it or configure another socket")]
    SocketInUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("another tufd is using the state directory {0}")]
    StateLocked(PathBuf),
    #[error("{0}")]
    Trust(#[from] Box<TrustError>),
    #[error("{0}")]
    Mirror(#[from] crate::mirror::MirrorError),
    #[error("serving failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

/// Holds the state directory's lock for the life of the daemon.
pub struct StateLock {
    _lock: fd_lock::RwLockWriteGuard<'static, File>,
}

/// Creates the state directory (0750) and takes its exclusive lock.
pub fn lock_state_dir(dir: &Path) -> Result<StateLock, ServerError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(io(dir, "creating the state directory"))?;
    let path = dir.join("tufd.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path, "opening the lock file"))?;
    // The lock lives as long as the process: leak the RwLock to get a
    // 'static guard.
    let lock: &'static mut fd_lock::RwLock<File> = Box::leak(Box::new(fd_lock::RwLock::new(file)));
    let guard = lock
        .try_write()
        .map_err(|_| ServerError::StateLocked(dir.to_owned()))?;
    Ok(StateLock { _lock: guard })
}

/// Binds the socket: parent directory created 0750, a stale socket left by
/// a crashed daemon removed, a live one refused; the socket is mode 0660.
pub fn bind_socket(path: &Path) -> Result<UnixListener, ServerError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .map_err(io(parent, "creating the socket directory"))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServerError::SocketInUse(path.to_owned()));
            }
            tracing::info!(socket = %path.display(), "removing a stale socket");
            std::fs::remove_file(path).map_err(io(path, "removing the stale socket"))?;
        }
        Ok(_) => return Err(ServerError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path, "inspecting the socket path")(e)),
    }
    let listener = UnixListener::bind(path).map_err(io(path, "binding the socket"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(io(path, "setting the socket's mode"))?;
    Ok(listener)
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

/// Runs the daemon until `shutdown` resolves; then lets in-flight requests
/// finish (up to [`SHUTDOWN_GRACE`]) and removes the socket.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let _state = lock_state_dir(&config.state_dir)?;
    let keyring = Arc::new(Keyring::from_config(&config));
    let trust = Arc::new(Trust::new(&config, keyring.clone()).map_err(Box::new)?);
    let listener = bind_socket(&config.socket)?;
    let mirror = match &config.mirror {
        Some(m) => Some(crate::mirror::start(m.clone(), &config.registry, trust.clone()).await?),
        None => None,
    };
    tracing::info!(socket = %config.socket.display(), tokens = config.tokens.len(), "tufd listening");

    // Open every token now so problems show in the log at start-up; a
    // token that fails stays unavailable and is retried on use.
    for t in keyring.tokens().await {
        match &t.status {
            tufd_keys::TokenStatus::Ready { key_count, .. } => {
                tracing::info!(token = %t.name, keys = key_count, "token ready")
            }
            other => tracing::error!(token = %t.name, status = ?other, "token not ready"),
        }
    }

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serve = tonic::transport::Server::builder()
        .add_service(SystemServer::new(SystemService::new(keyring.clone())))
        .add_service(KeysServer::new(KeysService::new(keyring)))
        .add_service(TrustServer::new(TrustService::new(trust)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(serve);
    let result = tokio::select! {
        r = &mut serve => r,
        () = shutdown => {
            let _ = stop_tx.send(());
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut serve).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}; exiting");
                    Ok(())
                }
            }
        }
    };
    if let Some(m) = mirror {
        m.abort();
    }
    if let Err(e) = std::fs::remove_file(&config.socket) {
        tracing::warn!(socket = %config.socket.display(), error = %e, "could not remove the socket");
    }
    tracing::info!("tufd stopped");
    Ok(result?)
}

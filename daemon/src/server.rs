//! The Unix socket server: set-up, serving, graceful shutdown.

use crate::config::Config;
use crate::keyring::Keyring;
use crate::service::{Gate, KeysService, PolicyService, SystemService, TrustService, TufService};
use crate::trust::{Trust, TrustError};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tufd_proto::v1::keys_server::KeysServer;
use tufd_proto::v1::policy_server::PolicyServer;
use tufd_proto::v1::system_server::SystemServer;
use tufd_proto::v1::trust_server::TrustServer;
use tufd_proto::v1::tuf_server::TufServer;

/// How long in-flight requests get to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long start-up waits for the tokens to be opened and scanned before
/// serving anyway (a token with thousands of keys, or a slow one).
const STARTUP_SCAN_WAIT: Duration = Duration::from_secs(2);
/// The largest request or response message (gRPC's usual 4 MiB, stated).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Requests in flight on one connection; more wait for their turn.
pub const MAX_REQUESTS_PER_CONNECTION: usize = 16;
/// HTTP/2 flow-control window of a connection and of each request on it:
/// what a peer may send that the daemon has not read yet. Requests past
/// [`MAX_REQUESTS_PER_CONNECTION`] wait unread, outside the request budget
/// (`service::budget`), so this bounds what they hold: 256 connections ×
/// 256 KiB (hyper's default, 1 MiB, let 64 crowded connections hold 87 MB).
/// Over a Unix socket a large request still streams at memory speed.
pub const CONNECTION_WINDOW: usize = 256 * 1024;

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
    Unsafe(String),
    #[error("{0}")]
    Trust(#[from] Box<TrustError>),
    #[error("{0}")]
    Mirror(#[from] crate::mirror::MirrorError),
    #[error("TUF 1.0 repositories: {0}")]
    Tuf1(#[from] crate::tuf1::RepoError),
    #[error("serving failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}; tufd does not run without its audit log")]
    Audit(#[from] crate::audit::AuditError),
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

/// Creates the state directory (0700; one of an earlier version, 0750, is
/// made 0700) and takes its exclusive lock (`tufd.lock`, 0600: a lock file
/// others could open, they could lock, and keep the daemon from starting).
pub fn lock_state_dir(dir: &Path) -> Result<StateLock, ServerError> {
    use crate::check::STATE_DIR_MODE;
    crate::check::state_directory_mode(dir).map_err(ServerError::Unsafe)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(STATE_DIR_MODE)
        .create(dir)
        .map_err(io(dir, "creating the state directory"))?;
    let mode = std::fs::metadata(dir)
        .map_err(io(dir, "inspecting the state directory"))?
        .permissions()
        .mode()
        & 0o7777;
    if mode != STATE_DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(STATE_DIR_MODE))
            .map_err(io(dir, "making the state directory private (chmod 0700)"))?;
        tracing::info!(directory = %dir.display(), was = format!("{mode:04o}"), "the state directory is now 0700: the daemon's alone");
    }
    let path = dir.join("tufd.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path, "opening the lock file"))?;
    // A lock file of an earlier version was 0640.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io(&path, "making the lock file private (chmod 0600)"))?;
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
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::check::directory_mode("socket directory", parent).map_err(ServerError::Unsafe)?;
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .map_err(io(parent, "creating the socket directory"))?;
        // Explicitly: the daemon's umask (077) would leave it 0700, out
        // of the socket group's reach.
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o750))
            .map_err(io(parent, "setting the socket directory's mode"))?;
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

/// The socket systemd passed (socket activation: `LISTEN_FDS`,
/// `LISTEN_PID`), if any.
fn activated_socket() -> Result<Option<UnixListener>, ServerError> {
    let mut fds = listenfd::ListenFd::from_env();
    let here = Path::new("LISTEN_FDS");
    let Some(std_listener) = fds
        .take_unix_listener(0)
        .map_err(io(here, "taking the socket passed by systemd"))?
    else {
        return Ok(None);
    };
    std_listener
        .set_nonblocking(true)
        .map_err(io(here, "making the passed socket non-blocking"))?;
    Ok(Some(
        UnixListener::from_std(std_listener).map_err(io(here, "using the passed socket"))?,
    ))
}

/// Tells the service manager (`NOTIFY_SOCKET`, `Type=notify`) our state;
/// nothing without one.
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

/// Rereads the configuration on SIGHUP: a valid one replaces the policy
/// for new requests; an invalid one is refused and the old policy kept.
async fn reload_on_hangup(path: PathBuf, gate: Arc<Gate>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reload needs a restart");
        return;
    };
    while hup.recv().await.is_some() {
        notify(&[sd_notify::NotifyState::Reloading]);
        // Off the runtime: names in the policy go to the user database.
        let file = path.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&file))
            .await
            .unwrap_or_else(|e| {
                Err(crate::config::ConfigError::Invalid {
                    path: path.clone(),
                    message: format!("the reload failed: {e}"),
                })
            });
        match loaded {
            Ok(new) => {
                let policy = new.policy.reloaded(&gate.policy());
                let admin_group = policy.admin_group_description();
                gate.set_policy(policy);
                tracing::info!(config = %path.display(), %admin_group, "SIGHUP: policy reloaded (tokens, socket, remotes and audit settings need a restart)");
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: configuration refused; the previous policy stays in force");
            }
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }
}

/// Runs the daemon until `shutdown` resolves; then lets in-flight requests
/// finish (up to [`SHUTDOWN_GRACE`]) and removes the socket.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve(config, None, shutdown).await
}

/// The socket's connection limits (a test build may shorten the idle
/// timeout, see `testhook`).
fn connection_limits() -> crate::connections::Limits {
    let mut limits = crate::connections::Limits::default();
    if let Some(t) = crate::testhook::idle_timeout() {
        limits.idle_timeout = t;
    }
    limits
}

/// [`run`], rereading the policy from `config_path` on SIGHUP. Uses the
/// socket systemd passes (socket activation) when there is one, and
/// notifies READY once the tokens are opened and STOPPING on shutdown.
pub async fn serve(
    config: Config,
    config_path: Option<PathBuf>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let _state = lock_state_dir(&config.state_dir)?;
    let audit = match config.audit.clone() {
        Some(a) => Some(Arc::new(crate::audit::AuditLog::open(a)?)),
        None => {
            tracing::warn!("the audit log is off ([audit] enabled = false)");
            None
        }
    };
    let gate = Arc::new(Gate::new(config.policy.clone(), audit));
    let audit_log = gate.audit_log().cloned();
    let keyring = Arc::new(Keyring::from_config(&config));
    let trust = Arc::new(Trust::new(&config, keyring.clone()).map_err(Box::new)?);
    let tuf1 = Arc::new(crate::tuf1::Tuf1::new(keyring.clone(), &config.state_dir)?);
    let (listener, activated) = match activated_socket()? {
        Some(l) => (l, true),
        None => (bind_socket(&config.socket)?, false),
    };
    let mirror = match &config.mirror {
        Some(m) => Some(
            crate::mirror::start(
                m.clone(),
                &config.registry,
                trust.clone(),
                gate.audit_log().cloned(),
            )
            .await?,
        ),
        None => None,
    };
    if activated {
        tracing::info!(
            tokens = config.tokens.len(),
            "tufd listening on the socket systemd passed"
        );
    } else {
        tracing::info!(socket = %config.socket.display(), tokens = config.tokens.len(), "tufd listening");
    }
    tracing::info!(admin_group = %gate.policy().admin_group_description(), "policy: root and the admin group administer");
    if let Some(path) = config_path {
        tokio::spawn(reload_on_hangup(path, gate.clone()));
    }

    // Open every token now so problems show in the log at start-up; a
    // token that fails stays unavailable and is retried on use. A token
    // whose scan takes longer than STARTUP_SCAN_WAIT is left scanning in
    // the background: the socket serves meanwhile (`status` says
    // "scanning").
    let probe = tokio::spawn({
        let keyring = keyring.clone();
        async move {
            for t in keyring.tokens().await {
                match &t.status {
                    tufd_keys::TokenStatus::Ready { key_count, .. } => {
                        tracing::info!(token = %t.name, keys = key_count, "token ready")
                    }
                    other => tracing::error!(token = %t.name, status = ?other, "token not ready"),
                }
            }
        }
    });
    if tokio::time::timeout(STARTUP_SCAN_WAIT, probe)
        .await
        .is_err()
    {
        tracing::info!(
            "tokens still being scanned for keys; serving meanwhile (status shows them as scanning)"
        );
    }

    // The TUF 1.0 refresher re-signs online roles on its own schedule; it
    // holds no request, so it stops with the runtime.
    let refresher = tokio::spawn(tuf1.clone().run_refresher());
    notify(&[sd_notify::NotifyState::Ready]);

    crate::connections::raise_open_files_limit();
    let (incoming, connections) = crate::connections::incoming(listener, connection_limits());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serve = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(MAX_REQUESTS_PER_CONNECTION)
        .max_concurrent_streams(u32::try_from(MAX_REQUESTS_PER_CONNECTION * 2).ok())
        .initial_connection_window_size(u32::try_from(CONNECTION_WINDOW).ok())
        .initial_stream_window_size(u32::try_from(CONNECTION_WINDOW).ok())
        .layer(crate::service::budget::BudgetLayer::new(
            crate::service::budget::RequestBudget::new(crate::service::budget::DEFAULT_LIMIT),
        ))
        .layer(crate::service::unmapped::AdminUnlessGatedLayer::new(
            gate.clone(),
        ))
        .add_service(
            SystemServer::new(SystemService::new(keyring.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            KeysServer::new(KeysService::new(keyring, gate.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            TrustServer::new(TrustService::new(trust.clone(), gate.clone()))
                .max_decoding_message_size(crate::service::MAX_TRUST_REQUEST_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            PolicyServer::new(PolicyService::new(gate.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            TufServer::new(TufService::new(tuf1, config.tuf.clone(), gate.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stop_rx.await;
        });
    tokio::pin!(serve);
    let result = tokio::select! {
        r = &mut serve => r,
        () = shutdown => {
            notify(&[sd_notify::NotifyState::Stopping]);
            let _ = stop_tx.send(());
            connections.drain();
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
    refresher.abort();
    // Verified results still being stored (after their callers were
    // answered) reach the store before the daemon exits.
    if tokio::time::timeout(SHUTDOWN_GRACE, trust.idle())
        .await
        .is_err()
    {
        tracing::warn!("trust store writes did not finish within {SHUTDOWN_GRACE:?}; exiting");
    }
    // The last answers' audit `end` lines are synced after those answers.
    if let Some(log) = audit_log {
        match tokio::task::spawn_blocking(move || log.sync_through(u64::MAX)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "audit log: the final sync failed"),
            Err(e) => tracing::error!(error = %e, "audit log: the final sync failed"),
        }
    }
    if activated {
        // systemd owns the socket.
    } else if let Err(e) = std::fs::remove_file(&config.socket) {
        tracing::warn!(socket = %config.socket.display(), error = %e, "could not remove the socket");
    }
    tracing::info!("tufd stopped");
    Ok(result?)
}

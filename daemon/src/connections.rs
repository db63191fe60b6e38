//! Bounded connections on the Unix socket.
//!
//! Every member of the socket's group can open connections; none may starve
//! the others. The accept loop (a task of its own, as mini-redis does it)
//! keeps at most [`Limits::max_connections`] open: when a new connection
//! arrives at the cap, the connection that has been quiet longest is
//! closed, preferring those not waiting for an answer (the peer spoke last
//! and the daemon has not written since: a request in flight, such as a
//! signature waiting for a touch, is closed only when nothing else can
//! be). A connection with no traffic in either direction for
//! [`Limits::idle_timeout`] is closed too. When the process runs out of
//! file descriptors (`EMFILE`), the loop closes the quietest connection and
//! backs off instead of spinning.
//!
//! Who the peer is gets fixed when the connection is accepted
//! ([`PeerInfo`]): its uid, gid and pid (`SO_PEERCRED`) and its
//! supplementary groups (`SO_PEERGROUPS`), as they were when it connected.
//! A pid names another process once the peer exits, so nothing that
//! decides what a request may do is read from `/proc` later.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, UdsConnectInfo};

/// The connection limits of the socket.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; at the cap the quietest one is closed.
    pub max_connections: usize,
    /// A connection without traffic for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// How long the accept loop waits after running out of descriptors.
const EMFILE_BACKOFF: Duration = Duration::from_millis(50);

struct Entry {
    /// Milliseconds since [`Registry::epoch`] of the last byte either way.
    last_active: AtomicU64,
    /// Whether the peer ever sent a byte.
    spoke: AtomicBool,
    /// The peer spoke last: a request may be waiting for its answer.
    awaiting: AtomicBool,
    close: Arc<Notify>,
}

struct Registry {
    epoch: Instant,
    next_id: u64,
    open: HashMap<u64, Arc<Entry>>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Closes the connection quiet the longest; false if there is none.
    fn evict_quietest(&mut self) -> bool {
        let Some(id) = self
            .open
            .iter()
            .min_by_key(|(_, e)| {
                (
                    e.awaiting.load(Ordering::Relaxed),
                    e.last_active.load(Ordering::Relaxed),
                )
            })
            .map(|(id, _)| *id)
        else {
            return false;
        };
        if let Some(e) = self.open.remove(&id) {
            e.close.notify_one();
        }
        true
    }
}

type Shared = Arc<Mutex<Registry>>;

fn lock(r: &Shared) -> std::sync::MutexGuard<'_, Registry> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// The peer of a connection as the kernel described it at accept time;
/// every request on the connection carries it (its `ConnectInfo`).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's address and credentials (`SO_PEERCRED`: uid, gid and pid
    /// when it connected).
    pub uds: UdsConnectInfo,
    /// The peer's supplementary groups when it connected
    /// (`SO_PEERGROUPS`, Linux ≥ 4.13); `None` when the kernel does not
    /// report them.
    pub groups: Option<Arc<[u32]>>,
}

impl PeerInfo {
    /// What the kernel says about the peer of `stream`.
    pub fn of(stream: &UnixStream) -> Self {
        let groups = match peer_groups(stream) {
            Ok(g) => Some(g.into()),
            Err(e) => {
                tracing::debug!(error = %e, "SO_PEERGROUPS unavailable; a caller's groups come from /proc while its pid still names it");
                None
            }
        };
        PeerInfo {
            uds: stream.connect_info(),
            groups,
        }
    }
}

/// The supplementary groups of the peer of `stream` when it connected
/// (`getsockopt(SOL_SOCKET, SO_PEERGROUPS)`).
pub fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    let fd = stream.as_raw_fd();
    // Most callers are in a few groups; the kernel says how many when the
    // buffer is short (ERANGE), and the list is capped (NGROUPS_MAX).
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..3 {
        let mut len = libc::socklen_t::try_from(std::mem::size_of_val(groups.as_slice()))
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: getsockopt(2) writes at most `len` bytes into `groups`,
        // which holds `len` bytes, and stores the size it needs in `len`.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if r == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) || n <= groups.len() {
            return Err(e);
        }
        groups.resize(n, 0);
    }
    Err(io::Error::other("the peer's group list kept growing"))
}

/// One accepted connection: the stream, closed when idle or evicted.
pub struct Connection {
    stream: UnixStream,
    peer: PeerInfo,
    id: u64,
    entry: Arc<Entry>,
    registry: Shared,
    close: Pin<Box<OwnedNotified>>,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    closed: bool,
}

impl Connection {
    fn active(&mut self) {
        let now = lock(&self.registry).now_ms();
        self.entry.last_active.store(now, Ordering::Relaxed);
        self.idle.as_mut().reset(Instant::now() + self.idle_timeout);
    }

    /// True once the connection is to be closed (idle or evicted).
    fn closing(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed
            && (self.close.as_mut().poll(cx).is_ready() || self.idle.as_mut().poll(cx).is_ready())
        {
            self.closed = true;
            tracing::debug!(connection = self.id, "closing an idle connection");
        }
        self.closed
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        lock(&self.registry).open.remove(&self.id);
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.closing(cx) {
            // End of stream: the server closes the connection.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.entry.spoke.store(true, Ordering::Relaxed);
            self.entry.awaiting.store(true, Ordering::Relaxed);
            self.active();
        }
        r
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let r = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.entry.awaiting.store(false, Ordering::Relaxed);
            self.active();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Connected for Connection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer.clone()
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A handle on the open connections, for shutdown.
#[derive(Clone)]
pub struct Connections {
    registry: Shared,
}

/// Connections quiet this long are closed while the daemon shuts down.
const DRAIN_QUIET: Duration = Duration::from_secs(5);

impl Connections {
    /// For a graceful shutdown: closes the connections whose peer never
    /// sent a byte now (they have no request to finish), and from then on
    /// every connection quiet for [`DRAIN_QUIET`], so that idle peers
    /// cannot hold the shutdown for its whole grace period.
    pub fn drain(&self) {
        let registry = self.registry.clone();
        tokio::spawn(async move {
            loop {
                {
                    let mut reg = lock(&registry);
                    let now = reg.now_ms();
                    let quiet = u64::try_from(DRAIN_QUIET.as_millis()).unwrap_or(u64::MAX);
                    reg.open.retain(|_, e| {
                        let close = !e.spoke.load(Ordering::Relaxed)
                            || now.saturating_sub(e.last_active.load(Ordering::Relaxed)) >= quiet;
                        if close {
                            e.close.notify_one();
                        }
                        !close
                    });
                    if reg.open.is_empty() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

/// Accepts connections on `listener` within `limits`, as a stream for
/// tonic's `serve_with_incoming_shutdown`. The loop ends when the stream
/// is dropped.
pub fn incoming(
    listener: UnixListener,
    limits: Limits,
) -> (
    tokio_stream::wrappers::ReceiverStream<io::Result<Connection>>,
    Connections,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let registry: Shared = Arc::new(Mutex::new(Registry {
        epoch: Instant::now(),
        next_id: 0,
        open: HashMap::new(),
    }));
    let handle = Connections {
        registry: registry.clone(),
    };
    tokio::spawn(async move {
        let mut warned_at: Option<Instant> = None;
        loop {
            let stream = tokio::select! {
                r = listener.accept() => r,
                () = tx.closed() => return,
            };
            let stream = match stream {
                Ok((s, _)) => s,
                Err(e) => {
                    if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "accepting a connection failed; backing off");
                        warned_at = Some(Instant::now());
                    }
                    if out_of_descriptors(&e) {
                        lock(&registry).evict_quietest();
                    }
                    tokio::time::sleep(EMFILE_BACKOFF).await;
                    continue;
                }
            };
            let (id, entry) = {
                let mut reg = lock(&registry);
                while reg.open.len() >= limits.max_connections.max(1) {
                    if !reg.evict_quietest() {
                        break;
                    }
                }
                let id = reg.next_id;
                reg.next_id += 1;
                let entry = Arc::new(Entry {
                    last_active: AtomicU64::new(reg.now_ms()),
                    spoke: AtomicBool::new(false),
                    awaiting: AtomicBool::new(false),
                    close: Arc::new(Notify::new()),
                });
                reg.open.insert(id, entry.clone());
                (id, entry)
            };
            let peer = PeerInfo::of(&stream);
            let conn = Connection {
                stream,
                peer,
                id,
                close: Box::pin(entry.close.clone().notified_owned()),
                entry,
                registry: registry.clone(),
                idle: Box::pin(tokio::time::sleep(limits.idle_timeout)),
                idle_timeout: limits.idle_timeout,
                closed: false,
            };
            if tx.send(Ok(conn)).await.is_err() {
                return;
            }
        }
    });
    (tokio_stream::wrappers::ReceiverStream::new(rx), handle)
}

/// Raises the soft limit on open files to the hard limit, so the cap on
/// connections, not the descriptor table, is what bounds them.
pub fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::debug!("could not raise the open files limit");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn the_peer_groups_are_those_of_the_connecting_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut got = peer_groups(&a).expect("SO_PEERGROUPS (Linux >= 4.13)");
        let mut mine: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        got.sort_unstable();
        mine.sort_unstable();
        assert_eq!(got, mine);
        let info = PeerInfo::of(&a);
        assert_eq!(info.groups.as_deref(), Some(mine.as_slice()));
        assert_eq!(
            info.uds.peer_cred.map(|c| c.pid()),
            Some(Some(std::process::id() as i32))
        );
    }

    #[tokio::test]
    async fn the_quietest_connection_makes_room_and_idle_ones_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let limits = Limits {
            max_connections: 2,
            idle_timeout: Duration::from_millis(300),
        };
        let (mut incoming, _handle) = incoming(listener, limits);
        let _a = UnixStream::connect(&path).await.unwrap();
        let mut first = incoming.next().await.unwrap().unwrap();
        let _b = UnixStream::connect(&path).await.unwrap();
        let _second = incoming.next().await.unwrap().unwrap();
        let before_third = Instant::now();
        let _c = UnixStream::connect(&path).await.unwrap();
        let _third = incoming.next().await.unwrap().unwrap();
        // The first (quietest) was evicted: its reads end.
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::io::AsyncReadExt::read(&mut first, &mut buf),
        )
        .await
        .expect("evicted connection ends")
        .unwrap();
        assert_eq!(n, 0);
        // The third, idle, ends after the idle timeout.
        let mut third = _third;
        let n = tokio::io::AsyncReadExt::read(&mut third, &mut buf)
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert!(before_third.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_connection_waiting_for_its_answer_is_closed_last() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let limits = Limits {
            max_connections: 2,
            idle_timeout: Duration::from_secs(60),
        };
        let (mut incoming, _handle) = incoming(listener, limits);
        // The oldest connection sent a request and waits for its answer.
        let mut waiting_peer = UnixStream::connect(&path).await.unwrap();
        let mut waiting = incoming.next().await.unwrap().unwrap();
        waiting_peer.write_all(b"request").await.unwrap();
        let mut buf = [0u8; 16];
        let n = waiting.read(&mut buf).await.unwrap();
        assert_eq!(n, 7);
        // A newer one is idle (it got its answer).
        let mut idle_peer = UnixStream::connect(&path).await.unwrap();
        let mut idle = incoming.next().await.unwrap().unwrap();
        idle_peer.write_all(b"r").await.unwrap();
        assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        idle.write_all(b"answer").await.unwrap();
        // At the cap, the idle one makes room although it is newer.
        let _third_peer = UnixStream::connect(&path).await.unwrap();
        let _third = incoming.next().await.unwrap().unwrap();
        let n = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut buf))
            .await
            .expect("the idle connection ends")
            .unwrap();
        assert_eq!(n, 0);
        waiting.write_all(b"answer").await.unwrap();
        let mut answer = [0u8; 6];
        waiting_peer.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"answer");
    }
}

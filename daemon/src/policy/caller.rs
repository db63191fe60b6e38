//! Who is calling: the peer credentials of the Unix socket, fixed when the
//! connection was accepted (`SO_PEERCRED`: uid, gid, pid; `SO_PEERGROUPS`:
//! supplementary groups), and the user's name from the user database.
//! Nothing a client says about itself is used.
//!
//! The pid is not an identity: once the connecting process exits, another
//! process (another user's) may get its pid while the connection lives on
//! in whoever it was passed to. So `/proc/PID` is read only after checking
//! that its `Uid:` and `Gid:` lines are the peer's, and what it gives (the
//! command name and executable, for the audit log) is informative only.
//! The groups come from `SO_PEERGROUPS`; only on a kernel without it
//! (before Linux 4.13) are they read from `/proc/PID/status`, and then only
//! when that process still runs as the peer's uid and gid; otherwise the
//! request is refused ([`CallerError`]).
//!
//! The user database (NSS: files, LDAP, sssd, …) can be slow or hang, and
//! a request must not wait for it on a thread that serves the socket.
//! [`Caller::from_peer`] looks users up on a blocking thread, one lookup per
//! user at a time, keeps the answer for [`NAME_TTL`], and waits for a
//! lookup at most [`LOOKUP_WAIT`] (counted from the lookup's start, so a
//! hung database costs each later request nothing). Without an answer the
//! request goes on without the user's name (messages and the audit log
//! then name the uid only).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a user database answer is used before it is asked again.
pub const NAME_TTL: Duration = Duration::from_secs(60);

/// The longest a request waits for the user database.
pub const LOOKUP_WAIT: Duration = Duration::from_millis(200);

/// Distinct users kept; answers past [`NAME_TTL`] are dropped beyond it.
const KEPT: usize = 1024;

/// Why a caller's identity cannot be established.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    /// No `SO_PEERGROUPS`, and `/proc` no longer describes the peer.
    #[error(
        "cannot tell the groups of uid {uid}: the kernel does not report a socket peer's groups (SO_PEERGROUPS needs Linux 4.13 or later) and {why}; tufd refuses rather than judge the request by another process's groups (upgrade the kernel, or keep the process that connected running, with its uid and gid unchanged, while the connection is used)"
    )]
    GroupsUnknown {
        /// The peer's uid.
        uid: u32,
        /// What `/proc` said instead.
        why: String,
    },
}

/// The identity of a connected process, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Effective user ID of the peer when it connected.
    pub uid: u32,
    /// Effective group ID of the peer when it connected.
    pub gid: u32,
    /// Supplementary groups of the peer when it connected
    /// (`SO_PEERGROUPS`), or the group database's list for a user without
    /// a process (`policy check --user`).
    pub groups: Vec<u32>,
    /// Process ID of the peer when it connected, when the kernel gave one
    /// (it may name another process by now).
    pub pid: Option<i32>,
    /// The peer's executable (`/proc/PID/exe`), when readable and the
    /// process still runs as the peer's uid and gid; informative only. A
    /// daemon without `CAP_SYS_PTRACE` (the systemd unit) cannot read it
    /// for other users' processes.
    pub exe: Option<PathBuf>,
    /// The peer's command name (`/proc/PID/comm`, when the process still
    /// runs as the peer's uid and gid; set by the process itself, so
    /// informative only).
    pub comm: Option<String>,
    /// The user's name from the user database, when it has one.
    pub user_name: Option<String>,
}

impl Caller {
    /// The caller from the kernel's peer credentials (`groups`: from
    /// `SO_PEERGROUPS`, `None` when the kernel gave none), without the
    /// user database: no name. Never blocks.
    pub fn from_kernel(
        uid: u32,
        gid: u32,
        pid: Option<i32>,
        groups: Option<&[u32]>,
    ) -> Result<Self, CallerError> {
        Self::kernel(uid, gid, pid, groups)
    }

    /// [`from_kernel`](Self::from_kernel) completed with the user's name
    /// from the user database (waiting for it at most [`LOOKUP_WAIT`]; see
    /// the module doc). Everything from `/proc` is read before the wait.
    pub async fn from_peer(
        uid: u32,
        gid: u32,
        pid: Option<i32>,
        groups: Option<&[u32]>,
    ) -> Result<Self, CallerError> {
        let mut caller = Self::kernel(uid, gid, pid, groups)?;
        caller.user_name = directory().user(uid, gid).await.name;
        Ok(caller)
    }

    /// `user` as the user database describes it, with the groups it lists
    /// the user in (no process: `policy check --user`). Blocking.
    pub fn from_database(user: nix::unistd::User) -> Self {
        let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
        Caller {
            uid,
            gid,
            groups: database_groups(&user.name, gid).unwrap_or_default(),
            pid: None,
            exe: None,
            comm: None,
            user_name: Some(user.name),
        }
    }

    /// The groups from `SO_PEERGROUPS` (else from `/proc` while it shows
    /// the peer), and what `/proc` shows of the peer for the record.
    fn kernel(
        uid: u32,
        gid: u32,
        pid: Option<i32>,
        groups: Option<&[u32]>,
    ) -> Result<Self, CallerError> {
        let status = pid.map(|p| status_of_peer(p, uid, gid));
        let groups = match (groups, &status) {
            (Some(g), _) => g.to_vec(),
            (None, Some(Ok(text))) => {
                parse_groups(text).ok_or_else(|| CallerError::GroupsUnknown {
                    uid,
                    why: "its /proc status has no Groups: line".into(),
                })?
            }
            (None, Some(Err(why))) => {
                return Err(CallerError::GroupsUnknown {
                    uid,
                    why: why.clone(),
                });
            }
            (None, None) => {
                return Err(CallerError::GroupsUnknown {
                    uid,
                    why: "the kernel gave no pid for it".into(),
                });
            }
        };
        let (exe, comm) = match (pid, &status) {
            (Some(p), Some(Ok(_))) => informative(p, uid, gid),
            _ => (None, None),
        };
        Ok(Caller {
            uid,
            gid,
            groups,
            pid,
            exe,
            comm,
            user_name: None,
        })
    }

    /// Whether the caller is in group `gid` (primary or supplementary).
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// "uid 1001 (ci)" for messages.
    pub fn describe(&self) -> String {
        match &self.user_name {
            Some(n) => format!("uid {} ({n})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// What the user database says about a user.
#[derive(Debug, Clone, Default)]
struct Known {
    name: Option<String>,
}

/// One user's entry: a lookup under way, or its answer.
enum Entry {
    /// On a blocking thread since `since`; `previous` is served meanwhile.
    Running {
        since: Instant,
        previous: Option<Known>,
        done: tokio::sync::watch::Receiver<bool>,
    },
    Done {
        known: Known,
        at: Instant,
    },
}

/// The user database answers, by (uid, gid): the group list depends on
/// the group the peer runs as.
#[derive(Default)]
struct Directory {
    entries: Mutex<HashMap<(u32, u32), Entry>>,
}

fn directory() -> &'static Arc<Directory> {
    static DIRECTORY: OnceLock<Arc<Directory>> = OnceLock::new();
    DIRECTORY.get_or_init(Default::default)
}

impl Directory {
    /// What the database says about `uid` (running as `gid`): a fresh
    /// answer at once, else the answer of a lookup that ends within
    /// [`LOOKUP_WAIT`] of its start, else the last answer or nothing.
    async fn user(self: &Arc<Self>, uid: u32, gid: u32) -> Known {
        let key = (uid, gid);
        let (mut done, since, previous) = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            match entries.get(&key) {
                Some(Entry::Done { known, at }) if at.elapsed() < NAME_TTL => {
                    return known.clone();
                }
                Some(Entry::Running {
                    since,
                    previous,
                    done,
                }) => (done.clone(), *since, previous.clone()),
                stale => {
                    let previous = match stale {
                        Some(Entry::Done { known, .. }) => Some(known.clone()),
                        _ => None,
                    };
                    let (done, since) = self.start(&mut entries, key, previous.clone());
                    (done, since, previous)
                }
            }
        };
        // A refresh serves the last answer meanwhile, without waiting.
        if let Some(previous) = previous {
            return previous;
        }
        let left = LOOKUP_WAIT.saturating_sub(since.elapsed());
        if left.is_zero() {
            return Known::default();
        }
        if tokio::time::timeout(left, done.wait_for(|d| *d))
            .await
            .is_ok_and(|r| r.is_ok())
            && let Some(Entry::Done { known, .. }) = self
                .entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
        {
            return known.clone();
        }
        tracing::warn!(
            uid,
            "the user database did not answer within {LOOKUP_WAIT:?}; going on with the uid only"
        );
        Known::default()
    }

    /// Starts looking `key` up on a blocking thread (the entry says so
    /// until the answer replaces it); returns what signals the answer and
    /// when the lookup started.
    fn start(
        self: &Arc<Self>,
        entries: &mut HashMap<(u32, u32), Entry>,
        key: (u32, u32),
        previous: Option<Known>,
    ) -> (tokio::sync::watch::Receiver<bool>, Instant) {
        if entries.len() >= KEPT {
            entries.retain(|_, e| match e {
                Entry::Done { at, .. } => at.elapsed() < NAME_TTL,
                Entry::Running { .. } => true,
            });
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let since = Instant::now();
        entries.insert(
            key,
            Entry::Running {
                since,
                previous,
                done: rx.clone(),
            },
        );
        let this = Arc::clone(self);
        drop(tokio::task::spawn_blocking(move || {
            let known = look_up(key.0, key.1);
            let at = Instant::now();
            let mut entries = this.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.insert(key, Entry::Done { known, at });
            drop(entries);
            let _ = tx.send(true);
        }));
        (rx, since)
    }
}

/// Asks the user database (blocking; may hang).
fn look_up(uid: u32, _gid: u32) -> Known {
    let name = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name);
    Known { name }
}

/// The groups the group database lists user `name` in, with `gid`
/// (blocking; may hang).
fn database_groups(name: &str, gid: u32) -> Option<Vec<u32>> {
    let cname = std::ffi::CString::new(name).ok()?;
    nix::unistd::getgrouplist(&cname, gid.into())
        .ok()
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
}

/// `/proc/PID/status` when that process still runs as the peer (effective
/// uid and gid as `SO_PEERCRED` gave them); else why not.
fn status_of_peer(pid: i32, uid: u32, gid: u32) -> Result<String, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("process {pid}, which connected, is gone ({e})"))?;
    let effective = |key: &str| -> Option<u32> {
        let line = status.lines().find_map(|l| l.strip_prefix(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    match (effective("Uid:"), effective("Gid:")) {
        (Some(u), Some(g)) if u == uid && g == gid => Ok(status),
        (Some(u), Some(g)) => Err(format!(
            "pid {pid} now names a process of uid {u} gid {g}, not the one that connected (uid {uid} gid {gid})"
        )),
        _ => Err(format!("/proc/{pid}/status has no Uid:/Gid: lines")),
    }
}

/// The executable and command name of `pid`, kept only when the process
/// runs as the peer before and after they are read (informative only: the
/// pid may have been reused by a process of the same user).
fn informative(pid: i32, uid: u32, gid: u32) -> (Option<PathBuf>, Option<String>) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_owned());
    match status_of_peer(pid, uid, gid) {
        Ok(_) => (exe, comm),
        Err(_) => (None, None),
    }
}

fn parse_groups(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    line.split_whitespace().map(|g| g.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_proc_status() {
        let status = "Name:\tx\nUid:\t0\t0\t0\t0\nGroups:\t4 24 27 \nNSpid:\t1\n";
        assert_eq!(parse_groups(status), Some(vec![4, 24, 27]));
        assert_eq!(parse_groups("Groups:\t\n"), Some(vec![]));
        assert_eq!(parse_groups("Name: x\n"), None);
    }

    #[tokio::test]
    async fn this_process_is_described_from_the_kernel() {
        let (uid, gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        let me = Caller::from_peer(uid, gid, Some(std::process::id() as i32), Some(&[4242]))
            .await
            .unwrap();
        assert_eq!(me.exe, std::env::current_exe().ok());
        assert!(me.comm.is_some());
        assert!(me.in_group(gid));
        // The groups are the socket's, not this process's /proc ones.
        assert_eq!(me.groups, vec![4242]);
        // Without SO_PEERGROUPS, /proc's while it shows the peer.
        let fallback = Caller::from_kernel(uid, gid, Some(std::process::id() as i32), None);
        assert!(fallback.is_ok(), "{fallback:?}");
    }

    /// A pid now run by another uid (pid 1 is root's; the peer here is
    /// uid 4243): nothing of it is used, and without SO_PEERGROUPS the
    /// caller is refused rather than given that process's groups.
    #[test]
    fn a_pid_of_another_user_gives_neither_groups_nor_names() {
        let c = Caller::from_kernel(4243, 4243, Some(1), Some(&[])).unwrap();
        assert_eq!((c.exe, c.comm, c.groups), (None, None, vec![]));
        let e = Caller::from_kernel(4243, 4243, Some(1), None).unwrap_err();
        assert!(
            e.to_string().contains("pid 1 now names a process of uid 0"),
            "{e}"
        );
        let gone = Caller::from_kernel(4243, 4243, Some(i32::MAX), None).unwrap_err();
        assert!(gone.to_string().contains("is gone"), "{gone}");
        assert!(Caller::from_kernel(4243, 4243, None, None).is_err());
    }

    /// A lookup that outlives the wait: the request goes on without it,
    /// later requests do not wait again nor start a second lookup, and the
    /// answer is used once it came.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_lookup_costs_one_bounded_wait_and_no_second_lookup() {
        let dir = Arc::new(Directory::default());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let key = (4242, 4242);
        dir.entries.lock().unwrap().insert(
            key,
            Entry::Running {
                since: Instant::now(),
                previous: None,
                done: rx,
            },
        );
        let started = Instant::now();
        assert!(dir.user(4242, 4242).await.name.is_none());
        let waited = started.elapsed();
        assert!(
            waited >= LOOKUP_WAIT - Duration::from_millis(5) && waited < LOOKUP_WAIT * 3,
            "{waited:?}"
        );
        let started = Instant::now();
        assert!(dir.user(4242, 4242).await.name.is_none());
        assert!(
            started.elapsed() < LOOKUP_WAIT / 2,
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(
            dir.entries.lock().unwrap().get(&key),
            Some(Entry::Running { .. })
        ));
        dir.entries.lock().unwrap().insert(
            key,
            Entry::Done {
                known: Known {
                    name: Some("ci".into()),
                },
                at: Instant::now(),
            },
        );
        let _ = tx.send(true);
        let known = dir.user(4242, 4242).await;
        assert_eq!(known.name.as_deref(), Some("ci"));
    }
}

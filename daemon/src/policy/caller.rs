//! Who is calling: the peer credentials of the Unix socket (`SO_PEERCRED`),
//! completed from `/proc` and the user database. Nothing a client says
//! about itself is used.
//!
//! The user database (NSS: files, LDAP, sssd, …) can be slow or hang, and
//! a request must not wait for it on a thread that serves the socket.
//! [`Caller::from_peer`] looks users up on a blocking thread, one lookup per
//! user at a time, keeps the answer for [`NAME_TTL`], and waits for a
//! lookup at most [`LOOKUP_WAIT`] (counted from the lookup's start, so a
//! hung database costs each later request nothing). Without an answer the
//! request goes on without the user's name (messages and the audit log
//! then name the uid only) and, when `/proc` no longer shows the caller's
//! groups, with its primary group only: the policy fails closed.

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

/// The identity of a connected process, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Effective user ID of the peer when it connected.
    pub uid: u32,
    /// Effective group ID of the peer when it connected.
    pub gid: u32,
    /// Supplementary groups (from `/proc/PID/status`, or the user's
    /// group list from the group database when the process is gone).
    pub groups: Vec<u32>,
    /// Process ID of the peer, when the kernel gave one.
    pub pid: Option<i32>,
    /// The peer's executable (`/proc/PID/exe`), when readable: a daemon
    /// without `CAP_SYS_PTRACE` (the systemd unit) cannot read it for
    /// other users' processes.
    pub exe: Option<PathBuf>,
    /// The peer's command name (`/proc/PID/comm`, readable by everyone;
    /// set by the process itself, so informative only).
    pub comm: Option<String>,
    /// The user's name from the user database, when it has one.
    pub user_name: Option<String>,
}

impl Caller {
    /// The caller from the kernel's peer credentials and `/proc` alone,
    /// without the user database: no name, and only the primary group
    /// when `/proc` no longer shows the process. Never blocks.
    pub fn from_kernel(uid: u32, gid: u32, pid: Option<i32>) -> Self {
        Self::kernel(uid, gid, pid).0
    }

    /// The caller from the kernel's peer credentials, completed from the
    /// user database (waiting for it at most [`LOOKUP_WAIT`]; see the
    /// module doc). Everything from `/proc` is read before the wait, while
    /// the pid still names the caller.
    pub async fn from_peer(uid: u32, gid: u32, pid: Option<i32>) -> Self {
        let (mut caller, proc_has_groups) = Self::kernel(uid, gid, pid);
        let known = directory().user(uid, gid).await;
        if !proc_has_groups {
            caller.groups = known.groups.unwrap_or_default();
        }
        caller.user_name = known.name;
        caller
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

    /// What the kernel and `/proc` say; `true` when `/proc` gave the groups.
    fn kernel(uid: u32, gid: u32, pid: Option<i32>) -> (Self, bool) {
        let groups = pid.and_then(proc_groups);
        let exe = pid.and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok());
        let comm = pid.and_then(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .ok()
                .map(|c| c.trim_end().to_owned())
        });
        let from_proc = groups.is_some();
        let caller = Caller {
            uid,
            gid,
            groups: groups.unwrap_or_default(),
            pid,
            exe,
            comm,
            user_name: None,
        };
        (caller, from_proc)
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
    /// The groups the database lists the user in (with the peer's group).
    groups: Option<Vec<u32>>,
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
fn look_up(uid: u32, gid: u32) -> Known {
    let name = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name);
    let groups = name.as_deref().and_then(|n| database_groups(n, gid));
    Known { name, groups }
}

/// The groups the group database lists user `name` in, with `gid`
/// (blocking; may hang).
fn database_groups(name: &str, gid: u32) -> Option<Vec<u32>> {
    let cname = std::ffi::CString::new(name).ok()?;
    nix::unistd::getgrouplist(&cname, gid.into())
        .ok()
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
}

/// The `Groups:` line of `/proc/PID/status`.
fn proc_groups(pid: i32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_groups(&status)
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
        let me = Caller::from_peer(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
            Some(std::process::id() as i32),
        )
        .await;
        assert_eq!(me.exe, std::env::current_exe().ok());
        assert!(me.comm.is_some());
        assert!(me.in_group(nix::unistd::getegid().as_raw()));
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
                    groups: Some(vec![4242, 7]),
                },
                at: Instant::now(),
            },
        );
        let _ = tx.send(true);
        let known = dir.user(4242, 4242).await;
        assert_eq!(known.name.as_deref(), Some("ci"));
        assert_eq!(known.groups, Some(vec![4242, 7]));
    }
}

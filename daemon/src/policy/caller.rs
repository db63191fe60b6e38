//! Who is calling: the peer credentials of the Unix socket (`SO_PEERCRED`),
//! completed from `/proc`. Nothing a client says about itself is used.

use std::path::PathBuf;

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
    /// Builds the caller from the kernel's peer credentials.
    pub fn from_peer(uid: u32, gid: u32, pid: Option<i32>) -> Self {
        let user_name = nix::unistd::User::from_uid(uid.into())
            .ok()
            .flatten()
            .map(|u| u.name);
        let groups = pid
            .and_then(proc_groups)
            .or_else(|| {
                let name = user_name.as_deref()?;
                let cname = std::ffi::CString::new(name).ok()?;
                nix::unistd::getgrouplist(&cname, gid.into())
                    .ok()
                    .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            })
            .unwrap_or_default();
        let exe = pid.and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok());
        let comm = pid.and_then(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .ok()
                .map(|c| c.trim_end().to_owned())
        });
        Caller {
            uid,
            gid,
            groups,
            pid,
            exe,
            comm,
            user_name,
        }
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

    #[test]
    fn this_process_is_described_from_the_kernel() {
        let me = Caller::from_peer(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
            Some(std::process::id() as i32),
        );
        assert_eq!(me.exe, std::env::current_exe().ok());
        assert!(me.comm.is_some());
        assert!(me.in_group(nix::unistd::getegid().as_raw()));
    }
}

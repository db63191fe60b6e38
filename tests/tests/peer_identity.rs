//! A connection is judged as the process that made it, for its whole life.
//! The reviewer's attack: a client connects in a child, keeps the socket
//! in its parent, the child exits, and a process of an admin takes the
//! child's pid; tufd then read the admin's groups from `/proc/PID/status`
//! on each request. The groups now come from `SO_PEERGROUPS` at accept
//! time: the old connection stays refused while the pid names the admin's
//! process, and a connection made with the admin group as a supplementary
//! group is served. Needs root (users, setuid, `ns_last_pid`); skips with a
//! message otherwise.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tufd_proto::v1::{self, keys_client::KeysClient, policy_client::PolicyClient};
use tufd_tests::daemon::TestEnv;
use tufd_tests::users::{TestUser, can_create_users, open_socket_to_everyone};

/// Connects to `socket` from a child process running as `uid`/`gid` with
/// supplementary `groups`, which hands the connection over (SCM_RIGHTS)
/// and exits; returns the connection and the (reaped) child's pid.
fn connect_in_child(socket: &Path, uid: u32, gid: u32, groups: &[u32]) -> (OwnedFd, i32) {
    // Everything the child needs is prepared here: after fork it makes
    // system calls only.
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = socket.as_os_str().as_bytes();
    assert!(path.len() < addr.sun_path.len(), "socket path too long");
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let groups: Vec<libc::gid_t> = groups.to_vec();
    let mut pair = [0; 2];
    // SAFETY: socketpair(2) fills the two-element array.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0, "socketpair");
    // SAFETY: both descriptors were just made and are owned here.
    let (mine, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    let mut byte = [0u8; 1];
    let mut cmsg = [0u64; 8];
    // SAFETY: fork(2); the child only makes system calls on memory
    // prepared above and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: system calls on the prepared buffers; no allocation.
        unsafe {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                libc::_exit(2);
            }
            let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if s < 0
                || libc::connect(
                    s,
                    (&raw const addr).cast(),
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                ) != 0
            {
                libc::_exit(3);
            }
            let mut iov = libc::iovec {
                iov_base: byte.as_mut_ptr().cast(),
                iov_len: 1,
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &raw mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(4) as _;
            let c = libc::CMSG_FIRSTHDR(&raw const msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), s);
            if libc::sendmsg(theirs.as_raw_fd(), &raw const msg, 0) != 1 {
                libc::_exit(4);
            }
            libc::_exit(0);
        }
    }
    drop(theirs);
    let mut status = 0;
    // SAFETY: waitpid(2) on our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the connecting child failed: status {status:#x} (2 setuid, 3 connect, 4 sendmsg)"
    );
    // SAFETY: recvmsg(2) into local buffers; the descriptor received is
    // taken over once.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg) as _;
        assert_eq!(
            libc::recvmsg(mine.as_raw_fd(), &raw mut msg, 0),
            1,
            "recvmsg"
        );
        let c = libc::CMSG_FIRSTHDR(&raw const msg);
        assert!(
            !c.is_null() && (*c).cmsg_type == libc::SCM_RIGHTS,
            "no descriptor"
        );
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
        (OwnedFd::from_raw_fd(fd), pid)
    }
}

const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";

/// Runs `sleep` as `user` with `group` as a supplementary group under pid
/// `pid` (writing `ns_last_pid` until the kernel hands that pid to it;
/// the value found first is written back). None when this kernel or
/// container does not let us choose pids.
fn take_pid(pid: i32, user: &TestUser, group: u32) -> Option<Child> {
    let saved = std::fs::read_to_string(NS_LAST_PID).ok()?;
    let mut got = None;
    for _ in 0..50 {
        if std::fs::write(NS_LAST_PID, (pid - 1).to_string()).is_err() {
            break;
        }
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .arg(format!("--groups={group}"))
            .args(["--", "sleep", "60"])
            .spawn()
            .expect("setpriv runs");
        if child.id() as i32 == pid {
            got = Some(child);
            break;
        }
        // Another process on the machine was faster: again.
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::write(NS_LAST_PID, saved.trim());
    got
}

/// A gRPC channel over the connection `fd` (made by another process).
async fn channel_over(fd: OwnedFd) -> tonic::transport::Channel {
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true).unwrap();
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(stream)));
    tonic::transport::Endpoint::from_static("http://tufd.local")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let taken = slot.lock().unwrap().take();
            async move {
                let s = taken.ok_or_else(|| std::io::Error::other("one connection only"))?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::from_std(s)?,
                ))
            }
        }))
        .await
        .expect("a channel over the passed connection")
}

/// What the daemon answers on `channel`: whether `key list` is served,
/// and `policy check key-delete` for the caller.
async fn ask(
    channel: tonic::transport::Channel,
) -> (Result<(), tonic::Status>, v1::PolicyCheckResponse) {
    let list = KeysClient::new(channel.clone())
        .list_keys(v1::ListKeysRequest::default())
        .await
        .map(|_| ());
    let check = PolicyClient::new(channel)
        .check(v1::PolicyCheckRequest {
            operation: "key-delete".into(),
            ..Default::default()
        })
        .await
        .expect("policy check answers")
        .into_inner();
    (list, check)
}

fn status_line(pid: i32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_reused_pid_does_not_lend_its_groups_to_a_connection() {
    if !can_create_users() {
        eprintln!(
            "SKIPPED a_reused_pid_does_not_lend_its_groups_to_a_connection: needs root (CI runs as root)"
        );
        return;
    }
    let env = TestEnv::new();
    let client = TestUser::create(&env, "c");
    let admin = TestUser::create(&env, "a");
    let config = format!(
        "{}\n[policy]\nadmin_group = \"{}\"\n",
        env.config(),
        admin.gid
    );
    let _d = env.start_with(&config);
    open_socket_to_everyone(&env);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // With the admin group as a supplementary group, the caller is an
    // admin: the groups of the connecting process count.
    let (fd, _) = connect_in_child(&env.socket(), client.uid, client.gid, &[admin.gid]);
    let (list, check) = rt.block_on(async { ask(channel_over(fd).await).await });
    assert!(list.is_ok(), "an admin group member lists keys: {list:?}");
    assert!(check.allowed, "{check:?}");

    // The reviewer's case: the client connects without groups, its child
    // exits, and the admin's process takes its pid.
    let (fd, pid) = connect_in_child(&env.socket(), client.uid, client.gid, &[]);
    let channel = rt.block_on(channel_over(fd));
    let Some(mut admins) = take_pid(pid, &admin, admin.gid) else {
        eprintln!("SKIPPED the pid reuse half: {NS_LAST_PID} cannot be written here");
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !status_line(pid, "Uid:").contains(&admin.uid.to_string())
        || !status_line(pid, "Groups:").contains(&admin.gid.to_string())
    {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never became the admin's"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (list, check) = rt.block_on(ask(channel));
    let _ = admins.kill();
    let _ = admins.wait();
    let refused = list.expect_err("the old connection must not be served as the admin");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(!check.allowed, "judged with the admin's groups: {check:?}");
    assert!(
        check.explanation.starts_with("denied")
            && !check.explanation.contains("is in the admin group"),
        "{}",
        check.explanation
    );
}

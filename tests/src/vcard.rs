//! A virtual PIV card (YubiKey stand-in) behind a private pcscd.
//!
//! [`VirtualCard::start`] brings up, for one test:
//!
//! * `pcscd` with vsmartcard's vpcd driver, in its own mount and network
//!   namespaces (`unshare --mount --net`). A private directory is mounted over
//!   `/run`, so pcscd's socket is `<tempdir>/run/pcscd/pcscd.comm`, seen only
//!   by clients given `PCSCLITE_CSOCK_NAME`; the system pcscd and
//!   `/run/pcscd` are never touched. USB reader drivers are hidden from it,
//!   so a real YubiKey plugged into the machine never shows up in a test.
//!   In its own network namespace vpcd listens on its usual port 35963
//!   (and 35964) without clashing with other instances or being reachable
//!   from outside.
//! * the card runner `piv-card` (`tests/piv-card`: piv-authenticator on
//!   Trussed), started inside pcscd's network namespace, connected to vpcd.
//!
//! The vpcd reader is named [`READER_NAME`] (slot 0 holds the card, slot 1
//! stays empty): the name begins with "Yubico", which ykcs11 requires.
//!
//! Dropping the guard stops both processes and removes the directory. They
//! also get SIGTERM if the test process dies (parent-death signal).
//!
//! Needs root (for the namespaces) and the Debian packages `pcscd` and
//! `vsmartcard-vpcd`; without root, [`VirtualCard::start`] refuses rather
//! than touch the system's pcscd.
//!
//! # PC/SC clients in the test process itself
//!
//! libpcsclite reads `PCSCLITE_CSOCK_NAME` once per process, at its first
//! call. Subprocesses (tufd, pkcs11-tool, yubico-piv-tool) get the variable
//! through [`VirtualCard::configure`]. Clients inside the test process (the
//! `yubikey` crate, ykcs11 loaded through `cryptoki`) need
//! [`VirtualCard::use_in_this_process`] before their first PC/SC call, and a
//! test binary can then talk to only one card in-process: keep such tests to
//! one per binary (or one shared card), and use subprocesses for the rest.
//!
//! # Environment
//!
//! * `TUFD_PIV_CARD_BIN`: the runner binary to use; otherwise it is built
//!   (`cargo build --release --locked --manifest-path
//!   tests/piv-card/Cargo.toml`, once per test process, under a file lock).
//! * `TUFD_VCARD_VERBOSE=1`: pcscd logs at debug level with APDUs, the
//!   runner logs every APDU (see [`VirtualCard::logs`]).
//! * `TUFD_VPCD_DRIVER`: the vpcd driver library, if not at Debian's
//!   `/usr/lib/pcsc/drivers/serial/libifdvpcd.so`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The PC/SC name of the reader holding the virtual card.
pub const READER_NAME: &str = "Yubico YubiKey vcard 00 00";
/// The friendly name given to vpcd in the private reader configuration;
/// pcscd appends the slot numbers.
const FRIENDLY_NAME: &str = "Yubico YubiKey vcard";
/// The environment variable that points libpcsclite at a pcscd socket.
pub const SOCKET_ENV: &str = "PCSCLITE_CSOCK_NAME";
/// The card's default PIN.
pub const DEFAULT_PIN: &[u8] = b"123456";
/// The card's default PUK.
pub const DEFAULT_PUK: &[u8] = b"12345678";

/// vpcd's port for slot 0 (inside pcscd's private network namespace).
const VPCD_PORT: u16 = 35963;
const DEFAULT_VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
/// Where pcscd looks for USB reader drivers (hidden from the private pcscd).
const USB_DRIVERS_DIR: &str = "/usr/lib/pcsc/drivers";
const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs in pcscd's fresh namespaces before it starts: `$1` is the private
/// directory for `/run`, `$2` an empty directory for the USB drivers, `$3`
/// the reader configuration directory; the rest are pcscd's options.
const NAMESPACE_SCRIPT: &str = r#"set -e
mount --bind "$1" /run
if [ -d "$USB_DRIVERS_DIR" ]; then mount --bind "$2" "$USB_DRIVERS_DIR"; fi
conf="$3"
shift 3
exec pcscd --foreground --config "$conf" "$@"
"#;

/// Options for [`VirtualCard`]; see [`VirtualCard::builder`].
#[derive(Debug, Default, Clone)]
pub struct Builder {
    state_dir: Option<PathBuf>,
    verbose: bool,
}

impl Builder {
    /// Keeps the card's flash in `dir` (created if missing), so keys and
    /// PINs survive a restart of the card; by default the card lives in
    /// memory and every start is a factory-fresh card.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Logs every APDU (runner) and pcscd's debug output; see
    /// [`VirtualCard::logs`]. Also on with `TUFD_VCARD_VERBOSE=1`.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Starts pcscd and the card; see [`VirtualCard::start`].
    pub fn start(self) -> io::Result<VirtualCard> {
        VirtualCard::start_with(self)
    }
}

/// A running virtual PIV card and its private pcscd. Dropping it stops both.
pub struct VirtualCard {
    // Field order matters for Drop: processes are stopped in `drop`, the
    // directory is removed afterwards.
    pcscd: Child,
    runner: Child,
    socket: PathBuf,
    dir: TempDir,
}

impl std::fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCard")
            .field("socket", &self.socket)
            .field("pcscd", &self.pcscd.id())
            .field("runner", &self.runner.id())
            .finish()
    }
}

impl VirtualCard {
    /// Starts a private pcscd with a factory-fresh card in memory (PIN
    /// 123456, PUK 12345678, default 3DES management key) and waits until the
    /// card is present in [`READER_NAME`].
    pub fn start() -> io::Result<Self> {
        Self::builder().start()
    }

    /// Options: persistent card state, verbose logs.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn start_with(options: Builder) -> io::Result<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the virtual card needs root: pcscd must run in a private mount namespace; \
                 refusing to use or touch the system pcscd (/run/pcscd)",
            ));
        }
        let verbose = options.verbose
            || std::env::var_os("TUFD_VCARD_VERBOSE").is_some_and(|v| v != "0" && !v.is_empty());
        let runner_bin = runner_binary()?;
        let driver = vpcd_driver()?;

        let dir = tempfile::Builder::new().prefix("tufd-vcard-").tempdir()?;
        let run_dir = dir.path().join("run");
        let empty_dir = dir.path().join("empty");
        let conf_dir = dir.path().join("reader.conf.d");
        for d in [&run_dir, &empty_dir, &conf_dir] {
            fs::create_dir(d)?;
        }
        // A copy of the driver: the drivers directory is hidden in the
        // namespace.
        let driver_copy = dir.path().join("libifdvpcd.so");
        fs::copy(&driver, &driver_copy)?;
        fs::write(
            conf_dir.join("vpcd"),
            format!(
                "FRIENDLYNAME \"{FRIENDLY_NAME}\"\n\
                 DEVICENAME   /dev/null:0x{VPCD_PORT:04X}\n\
                 LIBPATH      {}\n\
                 CHANNELID    0x{VPCD_PORT:04X}\n",
                driver_copy.display()
            ),
        )?;
        let socket = run_dir.join("pcscd").join("pcscd.comm");
        let pcscd_log = dir.path().join("pcscd.log");
        let runner_log = dir.path().join("piv-card.log");
        let ready_file = dir.path().join("card-ready");

        let mut pcscd_cmd = Command::new("unshare");
        pcscd_cmd
            .args(["--mount", "--net", "--propagation", "private", "--"])
            .args(["/bin/sh", "-c", NAMESPACE_SCRIPT, "sh"])
            .arg(&run_dir)
            .arg(&empty_dir)
            .arg(&conf_dir)
            .env("USB_DRIVERS_DIR", USB_DRIVERS_DIR)
            .stdin(Stdio::null())
            .stdout(log_file(&pcscd_log)?)
            .stderr(log_file(&pcscd_log)?);
        if verbose {
            pcscd_cmd.args(["--debug", "--apdu"]);
        }
        let pcscd = spawn_tied_to_process(pcscd_cmd).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("virtual card: cannot run unshare (util-linux): {err}"),
            )
        })?;
        // From here on, `Partial` stops what was started if anything fails.
        let mut partial = Partial {
            pcscd: Some(pcscd),
            runner: None,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        wait_for(
            deadline,
            "pcscd's socket",
            &mut partial,
            &[&pcscd_log],
            || socket.exists(),
        )?;
        let pcscd_pid = partial.pcscd.as_ref().map(Child::id).unwrap_or_default();
        let (mnt_ns, net_ns) = namespaces_of(pcscd_pid)?;
        let (own_mnt_ns, own_net_ns) = namespaces_of(std::process::id())?;
        if mnt_ns == own_mnt_ns || net_ns == own_net_ns {
            return Err(io::Error::other(
                "pcscd did not get private namespaces; refusing to continue",
            ));
        }

        let net_ns_file = File::open(format!("/proc/{pcscd_pid}/ns/net"))?;
        let mut runner_cmd = Command::new(&runner_bin);
        runner_cmd
            .args(["--host", "127.0.0.1", "--port", &VPCD_PORT.to_string()])
            .arg("--ready-file")
            .arg(&ready_file)
            .stdin(Stdio::null())
            .stdout(log_file(&runner_log)?)
            .stderr(log_file(&runner_log)?);
        match &options.state_dir {
            Some(state) => runner_cmd.arg("--state-dir").arg(state),
            None => runner_cmd.arg("--in-memory"),
        };
        if verbose {
            runner_cmd.arg("--verbose");
        }
        // SAFETY: the hook runs between fork and exec and only makes system
        // calls (setns, socket, ioctl, close) on stack data: async-signal-safe.
        unsafe {
            runner_cmd.pre_exec(move || enter_network_namespace(&net_ns_file));
        }
        partial.runner = Some(spawn_tied_to_process(runner_cmd).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!(
                    "virtual card: cannot run the card runner {}: {err}",
                    runner_bin.display()
                ),
            )
        })?);

        let logs: [&Path; 2] = [&pcscd_log, &runner_log];
        wait_for(deadline, "the card", &mut partial, &logs, || {
            ready_file.exists()
        })?;
        // pcscd marks the card present right after reading its ATR.
        thread::sleep(Duration::from_millis(100));

        let (Some(pcscd), Some(runner)) = (partial.pcscd.take(), partial.runner.take()) else {
            return Err(io::Error::other("virtual card processes vanished"));
        };
        Ok(Self {
            pcscd,
            runner,
            socket,
            dir,
        })
    }

    /// The private pcscd's socket: the value for `PCSCLITE_CSOCK_NAME`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The environment a PC/SC client process needs to see this card (and
    /// only it): `PCSCLITE_CSOCK_NAME`.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![(SOCKET_ENV, self.socket.clone().into_os_string())]
    }

    /// Adds [`VirtualCard::env`] to a command (tufd, pkcs11-tool, ...).
    pub fn configure<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.envs(self.env())
    }

    /// The PC/SC reader holding the card, [`READER_NAME`].
    pub fn reader_name(&self) -> &'static str {
        READER_NAME
    }

    /// Points PC/SC clients inside this process (the `yubikey` crate, ykcs11
    /// loaded in-process) at this card, by setting `PCSCLITE_CSOCK_NAME`.
    ///
    /// Call it before the process's first PC/SC call: libpcsclite reads the
    /// variable once per process. Fails if an earlier card was bound to this
    /// process, since libpcsclite would keep talking to that one.
    pub fn use_in_this_process(&self) -> io::Result<()> {
        static BOUND: Mutex<Option<PathBuf>> = Mutex::new(None);
        let mut bound = BOUND
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match bound.as_ref() {
            Some(socket) if socket == &self.socket => Ok(()),
            Some(socket) => Err(io::Error::other(format!(
                "this process's PC/SC library already talks to {}: libpcsclite reads \
                 {SOCKET_ENV} once per process; use one card per test binary for \
                 in-process clients, or a subprocess",
                socket.display()
            ))),
            None => {
                // SAFETY: set_var races with concurrent getenv in other
                // threads. Test support only; called before the first PC/SC
                // call, typically at the start of the one test using it.
                unsafe { std::env::set_var(SOCKET_ENV, &self.socket) };
                *bound = Some(self.socket.clone());
                Ok(())
            }
        }
    }

    /// pcscd's and the runner's output so far, for failure messages.
    pub fn logs(&self) -> String {
        read_logs(&[
            &self.dir.path().join("pcscd.log"),
            &self.dir.path().join("piv-card.log"),
        ])
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        // The runner first (it leaves on its own when vpcd goes away too),
        // then pcscd, whose namespaces and mounts vanish with it.
        stop(&mut self.runner);
        stop(&mut self.pcscd);
    }
}

/// Processes of a start that has not finished; stopped if it fails.
struct Partial {
    pcscd: Option<Child>,
    runner: Option<Child>,
}

impl Partial {
    /// Describes a child that exited, if any did.
    fn exited(&mut self) -> Option<String> {
        for (name, child) in [("pcscd", &mut self.pcscd), ("piv-card", &mut self.runner)] {
            if let Some(child) = child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Some(format!("{name} exited ({status})"));
            }
        }
        None
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(runner) = &mut self.runner {
            stop(runner);
        }
        if let Some(pcscd) = &mut self.pcscd {
            stop(pcscd);
        }
    }
}

/// Polls `ready` until it holds, a child exits, or `deadline` passes.
fn wait_for(
    deadline: Instant,
    what: &str,
    partial: &mut Partial,
    logs: &[&Path],
    mut ready: impl FnMut() -> bool,
) -> io::Result<()> {
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(exited) = partial.exited() {
            return Err(io::Error::other(format!(
                "virtual card: waiting for {what}: {exited}\n{}",
                read_logs(logs)
            )));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "virtual card: {what} not ready after {START_TIMEOUT:?}\n{}",
                    read_logs(logs)
                ),
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Opens a log file for appending, so stdout and stderr can share it.
fn log_file(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new().create(true).append(true).open(path)
}

fn read_logs(logs: &[&Path]) -> String {
    let mut out = String::new();
    for log in logs {
        let name = log.file_name().unwrap_or_default().to_string_lossy();
        let text = fs::read_to_string(log).unwrap_or_default();
        out.push_str(&format!("--- {name}\n{text}"));
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The inode numbers of a process's mount and network namespaces.
fn namespaces_of(pid: u32) -> io::Result<(u64, u64)> {
    let mnt = fs::metadata(format!("/proc/{pid}/ns/mnt"))?.ino();
    let net = fs::metadata(format!("/proc/{pid}/ns/net"))?.ino();
    Ok((mnt, net))
}

/// In the runner's child process: joins pcscd's network namespace and brings
/// its loopback interface up (a new network namespace starts with it down).
fn enter_network_namespace(ns: &File) -> io::Result<()> {
    // SAFETY: plain system calls on a valid descriptor and stack data.
    unsafe {
        if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = Ok(());
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) != 0 {
            result = Err(io::Error::last_os_error());
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS, &mut req) != 0 {
                result = Err(io::Error::last_os_error());
            }
        }
        libc::close(sock);
        result
    }
}

/// SIGTERM, then SIGKILL if the process has not exited in time; reaps it.
fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // unreaped child, so it cannot have been recycled.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` so that it gets SIGTERM when the test process dies.
///
/// The parent-death signal fires when the *thread* that forked the child
/// exits, and test threads end with their test; so children are forked by
/// one helper thread that lives as long as the process.
fn spawn_tied_to_process(mut command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    // SAFETY: prctl(PR_SET_PDEATHSIG) is a plain system call, async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("vcard-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .map(|_| ())
            .unwrap_or_else(|err| eprintln!("vcard: cannot start spawner thread: {err}"));
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("vcard spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("vcard spawner thread is gone"))?
}

/// The vpcd driver library.
fn vpcd_driver() -> io::Result<PathBuf> {
    let path = std::env::var_os("TUFD_VPCD_DRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VPCD_DRIVER));
    if path.is_file() {
        Ok(path)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "vpcd driver {} not found (Debian: apt-get install pcscd vsmartcard-vpcd, \
                 or set TUFD_VPCD_DRIVER)",
                path.display()
            ),
        ))
    }
}

/// The card runner: `TUFD_PIV_CARD_BIN`, or built once per process.
pub fn runner_binary() -> io::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("TUFD_PIV_CARD_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("TUFD_PIV_CARD_BIN={} is not a file", bin.display()),
            ))
        };
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_runner().map_err(|err| err.to_string()))
        .clone()
        .map_err(io::Error::other)
}

/// `cargo build --release` of `tests/piv-card`, under a file lock so that
/// concurrent test binaries do not build it twice at once.
fn build_runner() -> io::Result<PathBuf> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("piv-card");
    let target_dir = crate_dir.join("target");
    fs::create_dir_all(&target_dir)?;
    let lock = File::create(target_dir.join(".tufd-build.lock"))?;
    // SAFETY: flock on a descriptor we own; released when `lock` closes.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
        ])
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .stdin(Stdio::null())
        .output()?;
    drop(lock);
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "building the virtual card runner failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let bin = target_dir.join("release").join("piv-card");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(io::Error::other(format!(
            "{} missing after build",
            bin.display()
        )))
    }
}

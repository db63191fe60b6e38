//! Starting a real `tufd` process and running the real `tufctl` against it.
//!
//! The binaries come from the workspace's target directory (the test
//! command builds them first), or from `TUFD_BIN` / `TUFCTL_BIN`.

use crate::softhsm::{self, SoftHsm};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where a workspace binary is: next to the test executable's `deps/`.
pub fn binary(name: &str) -> PathBuf {
    let var = format!("{}_BIN", name.to_uppercase());
    if let Ok(p) = std::env::var(&var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build -p tufd -p tufctl`) or set {var}",
        path.display()
    );
    path
}

/// A test's world: a temp directory, a SoftHSM2 token, a daemon config.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub hsm: SoftHsm,
    /// Extra environment for the daemon (the PIN variable by default).
    pub daemon_env: Vec<(String, String)>,
    /// A command the daemon runs under (program and arguments, then the
    /// daemon's own command line), e.g. `unshare` with a script that ends
    /// in `exec "$@"`; empty: the daemon runs directly.
    pub daemon_wrapper: Vec<String>,
}

/// The label of the token [`TestEnv::new`] creates.
pub const TOKEN_LABEL: &str = "tufd-test";

impl TestEnv {
    /// A fresh directory and one initialized token `tufd-test`, PIN in
    /// `TUFD_PIN`.
    pub fn new() -> Self {
        let hsm = SoftHsm::new();
        hsm.init_token(TOKEN_LABEL);
        Self {
            dir: tempfile::Builder::new()
                .prefix("tufd-e2e-")
                .tempdir()
                .expect("temp dir"),
            hsm,
            daemon_env: vec![("TUFD_PIN".into(), softhsm::PIN.into())],
            daemon_wrapper: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The socket path the default configuration uses.
    pub fn socket(&self) -> PathBuf {
        self.path().join("run/tufd.sock")
    }

    /// A configuration with `tokens` (TOML `[[token]]` tables). TUF 1.0
    /// repositories may live anywhere below the test's directory unless
    /// `tokens` brings its own `[tuf]` table.
    pub fn config_with(&self, tokens: &str) -> String {
        let tuf = if tokens.contains("[tuf]") || tokens.contains("[[tuf.") {
            String::new()
        } else {
            format!("\n[tuf]\nroots = [{:?}]\n", self.path())
        };
        format!(
            "socket = \"{}\"\nstate_dir = \"{}\"\n{tokens}{tuf}",
            self.socket().display(),
            self.path().join("state").display()
        )
    }

    /// The default configuration: one SoftHSM2 token named `dev`.
    pub fn config(&self) -> String {
        self.config_with(&token_toml(
            "dev",
            softhsm::MODULE,
            TOKEN_LABEL,
            "env:TUFD_PIN",
        ))
    }

    /// Starts tufd with the default configuration and waits until it answers.
    pub fn start(&self) -> Daemon {
        self.start_with(&self.config())
    }

    /// Starts tufd with `config` and waits until it answers.
    pub fn start_with(&self, config: &str) -> Daemon {
        Daemon::start(self, config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs tufctl against this environment's socket.
    pub fn tufctl(&self, args: &[&str]) -> CmdOutput {
        self.tufctl_env(args, &[])
    }

    /// Runs tufctl with extra environment variables.
    pub fn tufctl_env(&self, args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
        let mut cmd = Command::new(binary("tufctl"));
        cmd.env("TUFD_SOCKET", self.socket())
            .env_remove("TUFCTL_KEY_PASSPHRASE")
            .env_remove("DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE")
            .env_remove("DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE")
            .env_remove("DOCKER_CONTENT_TRUST_SERVER")
            .current_dir(self.path())
            .args(args)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        CmdOutput::from(cmd.output().expect("tufctl runs"))
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// A `[[token]]` table for a PKCS#11 token selected by label.
pub fn token_toml(name: &str, module: &str, label: &str, pin: &str) -> String {
    format!(
        "[[token]]\nname = \"{name}\"\nkind = \"pkcs11\"\nmodule = \"{module}\"\nlabel = \"{label}\"\npin = \"{pin}\"\n"
    )
}

/// What a tufctl run printed.
#[derive(Debug)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// What any process printed, as text.
impl From<std::process::Output> for CmdOutput {
    fn from(out: std::process::Output) -> Self {
        CmdOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl CmdOutput {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "tufctl failed: {self:?}");
        &self.stdout
    }

    /// Asserts success and that stdout is one `--output json` envelope
    /// conforming to the published schema; returns its `data`.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        let mut doc = crate::json_output::envelope(self.ok());
        assert_eq!(doc["ok"], true, "{self:?}");
        doc["data"].take()
    }

    /// Asserts that stdout is one `--output json` envelope conforming to
    /// the published schema (success or failure) and returns it whole.
    #[track_caller]
    pub fn envelope(&self) -> serde_json::Value {
        crate::json_output::envelope(&self.stdout)
    }

    /// Asserts failure with `code` and that stderr contains `needle`.
    #[track_caller]
    pub fn fails_with(&self, code: i32, needle: &str) {
        assert_eq!(self.status.code(), Some(code), "{self:?}");
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} in stderr: {self:?}"
        );
    }
}

/// A running tufd process, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    /// Starts tufd with `config`; `Err` with its log when it does not come up.
    pub fn try_start(env: &TestEnv, config: &str) -> Result<Self, String> {
        Self::start(env, config)
    }

    fn start(env: &TestEnv, config: &str) -> Result<Self, String> {
        let config_path = env.path().join("tufd.toml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let log = env.path().join("tufd.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| e.to_string())?;
        let mut cmd = match env.daemon_wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(binary("tufd"));
                cmd
            }
            None => Command::new(binary("tufd")),
        };
        cmd.arg("--config")
            .arg(&config_path)
            .env("SOFTHSM2_CONF", env.hsm.conf())
            .env("TUFD_LOG", "info,tufd=debug,tufd_keys=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file);
        for (k, v) in &env.daemon_env {
            cmd.env(k, v);
        }
        let child = crate::process::spawn_tied(cmd).map_err(|e| format!("starting tufd: {e}"))?;
        let mut d = Daemon {
            child: Some(child),
            log,
            socket: env.socket(),
        };
        d.wait_ready(env)?;
        Ok(d)
    }

    fn wait_ready(&mut self, env: &TestEnv) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("tufd exited early ({status}):\n{}", self.log()));
            }
            if self.socket.exists() && env.tufctl(&["status"]).status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("tufd did not answer in time:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().expect("wait for tufd")
    }

    /// Kills the daemon with SIGKILL (a crash: the socket stays behind).
    pub fn crash(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

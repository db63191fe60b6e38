//! Runs the real notary-signer and notary-server (Debian `notary` 0.7) on
//! loopback for end-to-end tests, and the real `notary` client against them.
//!
//! Certificates are made with the `openssl` command-line tool (a P-256 CA and
//! one leaf with SAN `IP:127.0.0.1, DNS:localhost`, used by both servers and
//! as the server's client certificate towards the signer).
//!
//! ```no_run
//! use tufd_tests::notary::NotaryServers;
//!
//! let servers = NotaryServers::start();
//! let cli = servers.cli();
//! cli.run_ok(["init", "example.com/app", "-p"]);
//! // … talk to servers.url() trusting servers.ca_path() …
//! // both servers are killed when `servers` is dropped, also on panic.
//! ```
//!
//! Every [`NotaryServers`] has its own temporary directory, ports and
//! processes, so parallel tests do not interfere. The processes are spawned
//! from one long-lived thread with `PR_SET_PDEATHSIG = SIGKILL`, so they die
//! with the test process even when it is killed without unwinding.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The passphrase [`NotaryCli`] gives the notary client for every key role.
pub const PASSPHRASE: &str = "tufd-test-passphrase";

/// How long to wait for `/_notary_server/health` before giving up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// How often to retry with fresh ports when another process took ours.
const PORT_ATTEMPTS: usize = 5;

/// The key algorithm notary-server asks its signer for (timestamp and
/// server-managed snapshot keys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// P-256 ECDSA (`keytype: ecdsa`), notary's usual production setting.
    #[default]
    Ecdsa,
    /// Ed25519 (`keytype: ed25519`).
    Ed25519,
}

impl KeyAlgorithm {
    fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ecdsa => "ecdsa",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

/// A certificate authority made with `openssl` in a directory.
#[derive(Clone, Debug)]
pub struct TestCa {
    /// The CA certificate (PEM).
    pub cert: PathBuf,
    /// The CA private key (PEM, SEC1).
    pub key: PathBuf,
}

/// A leaf certificate issued by a [`TestCa`].
#[derive(Clone, Debug)]
pub struct TestLeaf {
    /// The leaf certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, SEC1).
    pub key: PathBuf,
}

impl TestCa {
    /// Makes a self-signed P-256 CA `"<name>.crt"`/`"<name>.key"` in `dir`, valid 2 days.
    pub fn generate(dir: &Path, name: &str) -> io::Result<TestCa> {
        let key = dir.join(format!("{name}.key"));
        let cert = dir.join(format!("{name}.crt"));
        openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ],
            &key,
        )?;
        let subj = format!("/CN=tufd test CA {name}");
        let o = OsStr::new;
        let args = [
            o("req"),
            o("-x509"),
            o("-new"),
            o("-sha256"),
            o("-days"),
            o("2"),
            o("-subj"),
            o(&subj),
            o("-addext"),
            o("basicConstraints=critical,CA:TRUE"),
            o("-addext"),
            o("keyUsage=critical,keyCertSign,cRLSign"),
            o("-key"),
            key.as_os_str(),
            o("-out"),
            cert.as_os_str(),
        ];
        run_openssl(dir, &args)?;
        Ok(TestCa { cert, key })
    }

    /// Issues a P-256 leaf for `127.0.0.1` and `localhost` (server and client
    /// auth), files `"<name>.crt"`/`"<name>.key"` in `dir`.
    pub fn issue_leaf(&self, dir: &Path, name: &str) -> io::Result<TestLeaf> {
        let key = dir.join(format!("{name}.key"));
        let cert = dir.join(format!("{name}.crt"));
        let csr = dir.join(format!("{name}.csr"));
        let ext = dir.join(format!("{name}.ext"));
        fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        )?;
        openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
            ],
            &key,
        )?;
        let o = OsStr::new;
        run_openssl(
            dir,
            &[
                o("req"),
                o("-new"),
                o("-subj"),
                o("/CN=localhost"),
                o("-key"),
                key.as_os_str(),
                o("-out"),
                csr.as_os_str(),
            ],
        )?;
        run_openssl(
            dir,
            &[
                o("x509"),
                o("-req"),
                o("-sha256"),
                o("-days"),
                o("2"),
                o("-set_serial"),
                o("2"),
                o("-in"),
                csr.as_os_str(),
                o("-CA"),
                self.cert.as_os_str(),
                o("-CAkey"),
                self.key.as_os_str(),
                o("-extfile"),
                ext.as_os_str(),
                o("-out"),
                cert.as_os_str(),
            ],
        )?;
        Ok(TestLeaf { cert, key })
    }
}

fn openssl(dir: &Path, args: &[&str], out: &Path) -> io::Result<()> {
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.push(out.as_os_str());
    run_openssl(dir, &all)
}

fn run_openssl(dir: &Path, args: &[&OsStr]) -> io::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {:?} failed ({}): {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Options for [`NotaryServers::start_with`].
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Algorithm of the server-managed keys.
    pub key_algorithm: KeyAlgorithm,
}

/// A running notary-signer + notary-server pair (memory storage) on loopback.
///
/// Dropping it kills both processes and removes the temporary directory.
pub struct NotaryServers {
    // `Drop` kills both processes before the fields (and the directory) go.
    server: Child,
    signer: Child,
    url: String,
    port: u16,
    ca: TestCa,
    leaf: TestLeaf,
    server_log: PathBuf,
    signer_log: PathBuf,
    clients: AtomicUsize,
    dir: TempDir,
}

/// A daemon configuration with the test token and one `[[remote]]` for
/// every repository, whose `url` (and `ca`) lines are `server`; `extra`
/// is appended.
pub fn remote_config(env: &crate::daemon::TestEnv, server: &str, extra: &str) -> String {
    env.config_with(&format!(
        "{}[[remote]]\nprefix = \"\"\n{server}{extra}",
        crate::daemon::token_toml(
            "dev",
            crate::softhsm::MODULE,
            crate::daemon::TOKEN_LABEL,
            "env:TUFD_PIN"
        )
    ))
}

impl NotaryServers {
    /// A daemon configuration for `env` with one SoftHSM2 token and these
    /// servers as the notary server of every repository; `extra` is
    /// appended (more TOML tables).
    pub fn daemon_config(&self, env: &crate::daemon::TestEnv, extra: &str) -> String {
        remote_config(
            env,
            &format!(
                "url = \"{}\"\nca = \"{}\"\n",
                self.url(),
                self.ca_path().display()
            ),
            extra,
        )
    }

    /// Starts both servers with default options; panics (with the logs) on failure.
    pub fn start() -> NotaryServers {
        NotaryServers::start_with(ServerOptions::default())
    }

    /// Starts both servers; panics (with the logs) on failure.
    pub fn start_with(options: ServerOptions) -> NotaryServers {
        match NotaryServers::try_start(options) {
            Ok(s) => s,
            Err(e) => panic!("starting notary-server: {e}"),
        }
    }

    /// Starts both servers, or explains why not.
    pub fn try_start(options: ServerOptions) -> io::Result<NotaryServers> {
        let dir = tempfile::Builder::new().prefix("tufd-notary-").tempdir()?;
        let ca = TestCa::generate(dir.path(), "ca")?;
        let leaf = ca.issue_leaf(dir.path(), "server")?;
        let mut last_err = None;
        for attempt in 0..PORT_ATTEMPTS {
            match start_pair(dir.path(), &ca, &leaf, &options, attempt) {
                Ok(pair) => {
                    return Ok(NotaryServers {
                        server: pair.server,
                        signer: pair.signer,
                        url: format!("https://127.0.0.1:{}", pair.port),
                        port: pair.port,
                        ca,
                        leaf,
                        server_log: pair.server_log,
                        signer_log: pair.signer_log,
                        clients: AtomicUsize::new(0),
                        dir,
                    });
                }
                Err(StartError::PortTaken(e)) => last_err = Some(e),
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no attempt made")))
    }

    /// The server's base URL, `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate (PEM) that signed the server's certificate.
    pub fn ca_path(&self) -> &Path {
        &self.ca.cert
    }

    /// The test CA (certificate and key), e.g. to issue client certificates.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The servers' certificate and key (also valid as a client certificate).
    pub fn leaf(&self) -> &TestLeaf {
        &self.leaf
    }

    /// Process ids of notary-server and notary-signer (for tests of the harness itself).
    pub fn pids(&self) -> (u32, u32) {
        (self.server.id(), self.signer.id())
    }

    /// The temporary directory holding certificates, configs, logs and trust dirs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// notary-server's log so far (JSON lines), for failure messages.
    pub fn server_log(&self) -> String {
        fs::read_to_string(&self.server_log).unwrap_or_default()
    }

    /// notary-signer's log so far.
    pub fn signer_log(&self) -> String {
        fs::read_to_string(&self.signer_log).unwrap_or_default()
    }

    /// A `notary` client with a fresh, empty trust directory inside [`NotaryServers::dir`].
    pub fn cli(&self) -> NotaryCli {
        let n = self.clients.fetch_add(1, Ordering::Relaxed);
        let trust_dir = self.dir.path().join(format!("trust-{n}"));
        NotaryCli::new(&self.url, &self.ca.cert, trust_dir)
    }

    /// A `docker` command for these servers: `DOCKER_CONFIG` is `config`
    /// (set up once to trust the servers' CA where docker looks it up,
    /// `tls/HOST:PORT/ca.crt`) and `DOCKER_CONTENT_TRUST_SERVER` their URL.
    pub fn docker(&self, config: &Path) -> io::Result<Command> {
        let tls = config.join(format!("tls/127.0.0.1:{}", self.port()));
        let ca = tls.join("ca.crt");
        if !ca.exists() {
            fs::create_dir_all(&tls)?;
            fs::copy(self.ca_path(), &ca)?;
        }
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_CONFIG", config)
            .env("DOCKER_CONTENT_TRUST_SERVER", self.url());
        Ok(cmd)
    }
}

impl Drop for NotaryServers {
    fn drop(&mut self) {
        for child in [&mut self.server, &mut self.signer] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl std::fmt::Debug for NotaryServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotaryServers")
            .field("url", &self.url)
            .field("dir", &self.dir.path())
            .field("server_pid", &self.server.id())
            .field("signer_pid", &self.signer.id())
            .finish()
    }
}

struct Pair {
    server: Child,
    signer: Child,
    port: u16,
    server_log: PathBuf,
    signer_log: PathBuf,
}

enum StartError {
    PortTaken(io::Error),
    Other(io::Error),
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Other(e)
    }
}

/// Kills a half-started pair if start-up fails.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_pair(
    dir: &Path,
    ca: &TestCa,
    leaf: &TestLeaf,
    options: &ServerOptions,
    attempt: usize,
) -> Result<Pair, StartError> {
    let signer_port = crate::process::free_port()?;
    let server_port = crate::process::free_port()?;
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let signer_cfg = serde_json::json!({
        "server": {
            "grpc_addr": format!("127.0.0.1:{signer_port}"),
            "tls_cert_file": path(&leaf.cert),
            "tls_key_file": path(&leaf.key),
            "client_ca_file": path(&ca.cert),
        },
        "storage": { "backend": "memory" },
        "logging": { "level": "info" },
    });
    let server_cfg = serde_json::json!({
        "server": {
            "http_addr": format!("127.0.0.1:{server_port}"),
            "tls_cert_file": path(&leaf.cert),
            "tls_key_file": path(&leaf.key),
        },
        "trust_service": {
            "type": "remote",
            "hostname": "127.0.0.1",
            "port": signer_port.to_string(),
            "key_algorithm": options.key_algorithm.as_str(),
            "tls_ca_file": path(&ca.cert),
            "tls_client_cert": path(&leaf.cert),
            "tls_client_key": path(&leaf.key),
        },
        "storage": { "backend": "memory" },
        "logging": { "level": "info" },
    });
    let signer_json = dir.join("signer.json");
    let server_json = dir.join("server.json");
    fs::write(&signer_json, signer_cfg.to_string())?;
    fs::write(&server_json, server_cfg.to_string())?;
    let signer_log = dir.join(format!("signer-{attempt}.log"));
    let server_log = dir.join(format!("server-{attempt}.log"));

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut signer = Guard(Some(spawn_logged(
        "notary-signer",
        &signer_json,
        &signer_log,
    )?));
    // notary-server's gRPC client backs off for a second or more when its
    // first connection attempt fails, and its health check reports healthy
    // before it has talked to the signer: so the signer must listen first.
    let signer_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, signer_port));
    wait_until(
        deadline,
        &mut [("notary-signer", &mut signer, &signer_log)],
        || TcpStream::connect_timeout(&signer_addr, Duration::from_millis(200)).is_ok(),
    )?;
    let mut server = Guard(Some(spawn_logged(
        "notary-server",
        &server_json,
        &server_log,
    )?));
    let roots = Arc::new(crate::process::root_store(&ca.cert)?);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, server_port));
    wait_until(
        deadline,
        &mut [
            ("notary-signer", &mut signer, &signer_log),
            ("notary-server", &mut server, &server_log),
        ],
        || health_ok(addr, &roots),
    )?;
    match (server.0.take(), signer.0.take()) {
        (Some(server), Some(signer)) => Ok(Pair {
            server,
            signer,
            port: server_port,
            server_log,
            signer_log,
        }),
        _ => Err(StartError::Other(io::Error::other("child handle lost"))),
    }
}

/// Polls `ready` every 10 ms until it holds; fails when a child exits (a
/// taken port is reported as such) or the deadline passes.
fn wait_until(
    deadline: Instant,
    children: &mut [(&str, &mut Guard, &PathBuf)],
    mut ready: impl FnMut() -> bool,
) -> Result<(), StartError> {
    loop {
        if ready() {
            return Ok(());
        }
        for (name, guard, log) in children.iter_mut() {
            let exited = match guard.0.as_mut() {
                Some(c) => c.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                let text = fs::read_to_string(&**log).unwrap_or_default();
                let err = io::Error::other(format!("{name} exited ({status}):\n{text}"));
                return Err(if text.contains("address already in use") {
                    StartError::PortTaken(err)
                } else {
                    StartError::Other(err)
                });
            }
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = children
                .iter()
                .map(|(name, _, log)| {
                    format!(
                        "--- {name} log:\n{}",
                        fs::read_to_string(&**log).unwrap_or_default()
                    )
                })
                .collect();
            return Err(StartError::Other(io::Error::other(format!(
                "notary servers not ready after {STARTUP_TIMEOUT:?}\n{}",
                logs.join("\n")
            ))));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn_logged(program: &str, config: &Path, log: &Path) -> io::Result<Child> {
    let out = File::create(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(program);
    cmd.arg("-config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    crate::process::spawn_tied(cmd)
}

/// One `GET /_notary_server/health` over TLS (verifying the test CA).
fn health_ok(addr: SocketAddr, roots: &Arc<rustls::RootCertStore>) -> bool {
    fn probe(addr: SocketAddr, roots: &Arc<rustls::RootCertStore>) -> io::Result<bool> {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(Arc::clone(roots))
        .with_no_client_auth();
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        tcp.set_read_timeout(Some(Duration::from_secs(2)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(2)))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(
            b"GET /_notary_server/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )?;
        let mut head = [0u8; 12];
        tls.read_exact(&mut head)?;
        Ok(&head == b"HTTP/1.1 200")
    }
    probe(addr, roots).unwrap_or(false)
}

/// The real `notary` client, pointed at one server with its own trust directory.
///
/// Passphrases for every role come from `NOTARY_*_PASSPHRASE` ([`PASSPHRASE`]
/// unless overridden with [`NotaryCli::env`]); stdin is empty, so prompts
/// (e.g. `key rotate … root`) see end of input. `HOME` is the trust directory,
/// so no user configuration leaks in.
#[derive(Clone, Debug)]
pub struct NotaryCli {
    url: String,
    ca: PathBuf,
    trust_dir: PathBuf,
    env: Vec<(String, String)>,
}

impl NotaryCli {
    /// A client for `url` trusting `ca`, keeping keys and cache in `trust_dir`.
    pub fn new(url: &str, ca: &Path, trust_dir: PathBuf) -> NotaryCli {
        let env = [
            "NOTARY_ROOT_PASSPHRASE",
            "NOTARY_TARGETS_PASSPHRASE",
            "NOTARY_SNAPSHOT_PASSPHRASE",
            "NOTARY_DELEGATION_PASSPHRASE",
        ]
        .iter()
        .map(|k| (k.to_string(), PASSPHRASE.to_string()))
        .collect();
        NotaryCli {
            url: url.to_owned(),
            ca: ca.to_owned(),
            trust_dir,
            env,
        }
    }

    /// Sets (or overrides) an environment variable for every run.
    pub fn env(mut self, key: &str, value: &str) -> NotaryCli {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The trust directory (`-d`).
    pub fn trust_dir(&self) -> &Path {
        &self.trust_dir
    }

    /// Runs `notary -s URL --tlscacert CA -d TRUSTDIR <args>`.
    pub fn run<I, S>(&self, args: I) -> CliOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let output = self.command(&args).output();
        CliOutput::from_result(args, output)
    }

    /// The `notary -s URL --tlscacert CA -d TRUSTDIR <args>` command, not
    /// yet run (for timing it).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let _ = fs::create_dir_all(&self.trust_dir);
        let mut cmd = Command::new("notary");
        cmd.arg("-s")
            .arg(&self.url)
            .arg("--tlscacert")
            .arg(&self.ca)
            .arg("-d")
            .arg(&self.trust_dir)
            .args(args)
            .env("HOME", &self.trust_dir)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Like [`NotaryCli::run`], panicking with the output unless it exits 0.
    pub fn run_ok<I, S>(&self, args: I) -> CliOutput
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.run(args);
        assert!(out.success(), "{out}");
        out
    }
}

/// What a `notary` run printed and how it ended.
#[derive(Clone, Debug)]
pub struct CliOutput {
    /// The arguments after the fixed `-s/--tlscacert/-d` ones.
    pub args: Vec<std::ffi::OsString>,
    /// The exit status; `None` if the program could not be started.
    pub status: Option<ExitStatus>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded (or the spawn error).
    pub stderr: String,
}

impl CliOutput {
    fn from_result(args: Vec<std::ffi::OsString>, output: io::Result<Output>) -> CliOutput {
        match output {
            Ok(o) => CliOutput {
                args,
                status: Some(o.status),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            },
            Err(e) => CliOutput {
                args,
                status: None,
                stdout: String::new(),
                stderr: format!("cannot run notary: {e}"),
            },
        }
    }

    /// True when the client ran and exited 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

impl std::fmt::Display for CliOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "notary {:?}: {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args,
            self.status
                .map_or_else(|| "not started".to_owned(), |s| s.to_string()),
            self.stdout,
            self.stderr
        )
    }
}

//! The verifying registry mirror with real peers: a local docker-registry,
//! notary-server and notary-signer, tufd signing with tufctl, and `skopeo`
//! pulling through a `registries.conf` mirror that points at tufd (the
//! registry itself unreachable for skopeo, as a firewall would make it).
//! A tiny fake upstream serves content that does not hash to its digest.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use tufd_tests::daemon::{TestEnv, token_toml};
use tufd_tests::notary::NotaryServers;
use tufd_tests::process::free_port;
use tufd_tests::registry::TestRegistry;
use tufd_tests::softhsm::MODULE;

fn config(env: &TestEnv, servers: &NotaryServers, extra: &str) -> String {
    env.config_with(&format!(
        "{}[[remote]]\nprefix = \"\"\nurl = \"{}\"\nca = \"{}\"\n{extra}",
        token_toml(
            "dev",
            MODULE,
            tufd_tests::daemon::TOKEN_LABEL,
            "env:TUFD_PIN"
        ),
        servers.url(),
        servers.ca_path().display()
    ))
}

/// `skopeo copy docker://<registry>/<image> dir:<dest>` where registries.conf
/// sends `<registry>` to the mirror only (its own location is a closed port).
fn skopeo_copy(env: &TestEnv, registry: &str, mirror: &str, image: &str, dest: &Path) -> Output {
    let closed = free_port().unwrap();
    let conf = env.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nprefix = \"{registry}\"\nlocation = \"127.0.0.1:{closed}\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n"
        ),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(dest);
    Command::new("skopeo")
        .arg("--insecure-policy")
        .arg("--registries-conf")
        .arg(&conf)
        .args(["copy", "--src-no-creds"])
        .arg(format!("docker://{registry}/{image}"))
        .arg(format!("dir:{}", dest.display()))
        .env("HOME", env.path())
        .env("XDG_RUNTIME_DIR", env.path())
        .env("CONTAINERS_REGISTRIES_CONF", &conf)
        .output()
        .expect("skopeo (scripts/setup installs it)")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn skopeo_pulls_only_what_trust_allows() {
    let servers = NotaryServers::start();
    let registry = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let host = registry.host().to_owned();
    let mut pushed = std::collections::BTreeMap::new();
    for repo in ["enf/app", "pas/app"] {
        for tag in ["signed", "unsigned", "revoked", "moved"] {
            pushed.insert((repo, tag), rt.block_on(registry.push_image(repo, tag)));
        }
    }
    let env = TestEnv::new();
    let port = free_port().unwrap();
    let mirror = format!("127.0.0.1:{port}");
    let d = env.start_with(&config(
        &env,
        &servers,
        &format!(
            "[[verify]]\nprefix = \"{host}/enf/\"\nmode = \"enforced\"\n[[verify]]\nprefix = \"{host}/pas/\"\nmode = \"passive\"\n[mirror]\nlisten = \"{mirror}\"\nupstream = \"{host}\"\n"
        ),
    ));
    env.tufctl(&["key", "generate", "alice"]).ok();
    for repo in ["enf/app", "pas/app"] {
        let gun = format!("{host}/{repo}");
        env.tufctl(&["signer", "add", "alice", &gun, "--key", "alice.pub"])
            .ok();
        for tag in ["signed", "revoked", "moved"] {
            env.tufctl(&["sign", &format!("{gun}:{tag}")]).ok();
        }
        env.tufctl(&["revoke", &format!("{gun}:revoked")]).ok();
    }
    // After signing, the registry's `moved` tags point to other images.
    let moved_to: Vec<_> = ["enf/app", "pas/app"]
        .iter()
        .map(|r| rt.block_on(registry.push_image(r, "moved")))
        .collect();
    let dest = env.path().join("pulled");
    let manifest = || std::fs::read(dest.join("manifest.json")).unwrap();

    // Enforced: the signed tag copies, with the signed manifest.
    let out = skopeo_copy(&env, &host, &mirror, "enf/app:signed", &dest);
    assert!(out.status.success(), "{}\n{}", text(&out), d.log());
    assert_eq!(manifest(), pushed[&("enf/app", "signed")].bytes);
    // Unsigned and revoked: refused with the verifier's reasons.
    for (tag, reason) in [
        ("unsigned", "no trust data for this tag"),
        ("revoked", "no trust data for this tag"),
    ] {
        let out = skopeo_copy(&env, &host, &mirror, &format!("enf/app:{tag}"), &dest);
        assert!(!out.status.success(), "{tag}: {}", text(&out));
        let t = text(&out);
        assert!(t.contains("denied") && t.contains(reason), "{tag}: {t}");
        assert!(!dest.join("manifest.json").exists());
    }
    let log = d.log();
    assert!(
        log.contains("mirror refused a request") && log.contains("caller=127.0.0.1:"),
        "{log}"
    );
    // Each refusal is in the audit log too, with the client's address (the
    // record is written off the request's thread: wait for it briefly).
    let audit = env.path().join("state/audit.log");
    let denied = || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("\"phase\":\"denied\"")
                    && l.contains("\"operation\":\"mirror-pull\"")
                    && l.contains("\"address\":\"127.0.0.1:")
                    && l.contains("enf/app")
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while denied() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        denied() >= 2,
        "audit log: {}",
        std::fs::read_to_string(&audit).unwrap_or_default()
    );
    let verified = env.tufctl(&["audit", "verify"]);
    assert!(verified.status.success(), "{}", verified.stderr);
    // A tag moved in the registry after signing: still the signed content.
    let out = skopeo_copy(&env, &host, &mirror, "enf/app:moved", &dest);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(manifest(), pushed[&("enf/app", "moved")].bytes);
    assert_ne!(manifest(), moved_to[0].bytes);

    // Passive: unsigned and revoked copy as the registry has them, warned.
    for tag in ["unsigned", "revoked"] {
        let out = skopeo_copy(&env, &host, &mirror, &format!("pas/app:{tag}"), &dest);
        assert!(out.status.success(), "{tag}: {}", text(&out));
        assert_eq!(manifest(), pushed[&("pas/app", tag)].bytes);
    }
    assert!(
        d.log()
            .contains("mirror (passive): trust would refuse this tag"),
        "{}",
        d.log()
    );
    let out = skopeo_copy(&env, &host, &mirror, "pas/app:signed", &dest);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(manifest(), pushed[&("pas/app", "signed")].bytes);
}

/// A fake upstream answering every GET with `body` (and HEAD with its
/// headers), whatever was asked for.
fn fake_upstream(body: Vec<u8>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).starts_with("HEAD");
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if !head {
                let _ = s.write_all(&body);
            }
        }
    });
    port
}

/// A plain HTTP/1.1 GET; the body is an error when shorter than its
/// `Content-Length` (the connection was cut).
fn get(url: &str) -> (u16, Result<Vec<u8>, String>) {
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    let read = s.read_to_end(&mut all);
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]).to_lowercase();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = all[split + 4..].to_vec();
    let declared = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    match (read, declared) {
        (Err(e), _) => (status, Err(e.to_string())),
        (_, Some(n)) if n != body.len() => (status, Err(format!("{} of {n} bytes", body.len()))),
        _ => (status, Ok(body)),
    }
}

#[test]
fn content_that_does_not_hash_to_its_digest_is_refused() {
    use sha2::Digest;
    let servers = NotaryServers::start();
    let served = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#.repeat(2000);
    let fake = fake_upstream(served.clone());
    let env = TestEnv::new();
    let port = free_port().unwrap();
    let _d = env.start_with(&config(
        &env,
        &servers,
        &format!(
            "[mirror]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"localhost:{}\"\nupstreams = [\"127.0.0.1:{fake}\"]\n",
            free_port().unwrap()
        ),
    ));
    let base = format!("http://127.0.0.1:{port}");
    let (status, body) = get(&format!("{base}/v2/"));
    assert_eq!(status, 200, "{body:?}");

    let asked = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(b"something else"))
    );
    // A manifest by digest: refused.
    let (status, body) = get(&format!(
        "{base}/v2/team/app/manifests/{asked}?ns=127.0.0.1:{fake}"
    ));
    assert_eq!(status, 502);
    let body = String::from_utf8(body.unwrap()).unwrap();
    assert!(
        body.contains("MANIFEST_INVALID") && body.contains("hashes to"),
        "{body}"
    );
    // A blob: the stream is cut short, the client never gets a whole body.
    let (status, body) = get(&format!(
        "{base}/v2/team/app/blobs/{asked}?ns=127.0.0.1:{fake}"
    ));
    assert_eq!(status, 200);
    assert!(body.is_err(), "a wrong blob must not arrive whole");
    // The same blob asked for by its real digest streams through.
    let real = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&served)));
    let (status, body) = get(&format!(
        "{base}/v2/team/app/blobs/{real}?ns=127.0.0.1:{fake}"
    ));
    assert_eq!(status, 200);
    assert_eq!(body.unwrap(), served);
    // Hosts that are not configured upstreams are not reachable.
    let (status, body) = get(&format!(
        "{base}/v2/team/app/blobs/{real}?ns=127.0.0.1:{}",
        fake + 1
    ));
    assert_eq!(status, 403);
    assert!(String::from_utf8(body.unwrap()).unwrap().contains("DENIED"));
}

/// A raw `HEAD`: (status line, headers lower-cased, body bytes received).
fn head(addr: &str, path: &str) -> (String, String, usize) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]).to_lowercase();
    let status = head.lines().next().unwrap().to_owned();
    (status, head, all.len() - split - 4)
}

#[test]
fn upstream_with_token_auth_uses_tufds_credentials_and_disabled_proxies() {
    use tufd_tests::registry::{PASSWORD, RegistryAuth, RegistryOptions, USERNAME};
    let servers = NotaryServers::start();
    let registry = TestRegistry::start_with(RegistryOptions {
        auth: RegistryAuth::Token,
        ..RegistryOptions::default()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let signed = rt.block_on(registry.push_image("enf/app", "v1"));
    let open = rt.block_on(registry.push_image("dis/app", "v1"));
    let host = registry.host().to_owned();
    let env = TestEnv::new();
    let password = env.path().join("registry-password");
    std::fs::write(&password, PASSWORD).unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let port = free_port().unwrap();
    let mirror = format!("127.0.0.1:{port}");
    let d = env.start_with(&config(
        &env,
        &servers,
        &format!(
            "[[verify]]\nprefix = \"{host}/dis/\"\nmode = \"disabled\"\n[registry]\n[[registry.login]]\nhost = \"{host}\"\nusername = \"{USERNAME}\"\npassword = \"file:{}\"\n[mirror]\nlisten = \"{mirror}\"\nupstream = \"{host}\"\n",
            password.display()
        ),
    ));
    let gun = format!("{host}/enf/app");
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["signer", "add", "alice", &gun, "--key", "alice.pub"])
        .ok();
    env.tufctl(&["sign", &format!("{gun}:v1")]).ok();

    // skopeo has no credentials; the mirror pulls with tufd's.
    let dest = env.path().join("pulled");
    let out = skopeo_copy(&env, &host, &mirror, "enf/app:v1", &dest);
    assert!(out.status.success(), "{}\n{}", text(&out), d.log());
    assert_eq!(
        std::fs::read(dest.join("manifest.json")).unwrap(),
        signed.bytes
    );
    let out = skopeo_copy(&env, &host, &mirror, "dis/app:v1", &dest);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(dest.join("manifest.json")).unwrap(),
        open.bytes
    );
    assert!(
        d.log()
            .contains("verification disabled for this repository: proxied"),
        "{}",
        d.log()
    );
    assert!(
        registry
            .token_requests()
            .iter()
            .any(|r| r.scopes.iter().any(|s| s.contains("dis/app"))),
        "the mirror asked the token service for the repository"
    );

    // HEAD of a tag: the signed digest and length, no body.
    let (status, headers, body) = head(&mirror, "/v2/enf/app/manifests/v1");
    assert!(status.contains(" 200"), "{headers}");
    assert!(
        headers.contains(&format!(
            "docker-content-digest: {}",
            signed.digest_string()
        )),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("content-length: {}", signed.size())),
        "{headers}"
    );
    assert_eq!(body, 0);
    // Other methods are refused.
    let mut s = std::net::TcpStream::connect(&mirror).unwrap();
    write!(
        s,
        "DELETE /v2/enf/app/manifests/v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 405"), "{all}");
}

/// A private containerd (its own root, state and socket), killed on drop.
struct Containerd {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("containerd.sock");
        let config = dir.join("containerd.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\naddress = \"{1}\"\n[ttrpc]\naddress = \"{1}.ttrpc\"\n",
                dir.display(),
                socket.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child =
            tufd_tests::process::spawn_tied(cmd).expect("containerd (scripts/setup installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !socket.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "containerd did not start: {}",
                std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Containerd { child, socket }
    }

    /// `ctr content fetch` through `hosts.toml` in `hosts_dir`.
    fn fetch(&self, hosts_dir: &Path, image: &str) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args([
                "--namespace",
                "tufd-test",
                "content",
                "fetch",
                "--hosts-dir",
            ])
            .arg(hosts_dir)
            .arg(image)
            .output()
            .expect("ctr")
    }

    fn content(&self) -> String {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "tufd-test", "content", "ls", "-q"])
            .output()
            .expect("ctr");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn containerd_pulls_through_hosts_toml() {
    let servers = NotaryServers::start();
    let registry = TestRegistry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let signed = rt.block_on(registry.push_image("enf/app", "moved"));
    rt.block_on(registry.push_image("enf/app", "unsigned"));
    let host = registry.host().to_owned();
    let env = TestEnv::new();
    let port = free_port().unwrap();
    let mirror = format!("127.0.0.1:{port}");
    let d = env.start_with(&config(
        &env,
        &servers,
        &format!("[mirror]\nlisten = \"{mirror}\"\nupstream = \"{host}\"\n"),
    ));
    let gun = format!("{host}/enf/app");
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["signer", "add", "alice", &gun, "--key", "alice.pub"])
        .ok();
    env.tufctl(&["sign", &format!("{gun}:moved")]).ok();
    let moved_to = rt.block_on(registry.push_image("enf/app", "moved"));

    // containerd's registry host configuration: the mirror first, the
    // registry itself at a closed port (as a firewall would make it).
    let hosts = env.path().join("certs.d");
    std::fs::create_dir_all(hosts.join(&host)).unwrap();
    std::fs::write(
        hosts.join(&host).join("hosts.toml"),
        format!(
            "server = \"http://127.0.0.1:{}\"\n[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            free_port().unwrap()
        ),
    )
    .unwrap();
    let ctrd = Containerd::start(&env.path().join("containerd"));
    let out = ctrd.fetch(&hosts, &format!("{gun}:moved"));
    assert!(out.status.success(), "{}\n{}", text(&out), d.log());
    let content = ctrd.content();
    assert!(content.contains(&signed.digest_string()), "{content}");
    assert!(!content.contains(&moved_to.digest_string()), "{content}");
    // containerd names the upstream with ?ns=; the mirror answered for it.
    let out = ctrd.fetch(&hosts, &format!("{gun}:unsigned"));
    assert!(!out.status.success(), "{}", text(&out));
    let log = d.log();
    assert!(log.contains("mirror refused a request"), "{log}");
    assert!(
        log.contains("no trust data for this tag") || log.contains("does not exist"),
        "{log}"
    );
}

#[test]
fn a_stalling_upstream_is_bounded_in_time_and_requests() {
    // An upstream that accepts, reads the request and never answers; it
    // says when a request arrived so the second request is sent while the
    // first is certainly in flight.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stall = listener.local_addr().unwrap().port();
    let (arrived, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = arrived.send(());
            held.push(s);
        }
    });
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let port = free_port().unwrap();
    let d = env.start_with(&config(
        &env,
        &servers,
        &format!(
            "[mirror]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"127.0.0.1:{stall}\"\nmax_requests = 1\ntimeout_seconds = 1\n"
        ),
    ));
    let base = format!("http://127.0.0.1:{port}");
    let digest = format!("sha256:{}", "ab".repeat(32));
    let first = {
        let url = format!("{base}/v2/team/app/manifests/{digest}");
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            (get(&url), start.elapsed())
        })
    };
    wait.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the mirror asked the stalling upstream");
    let (status, body) = get(&format!("{base}/v2/team/app/blobs/{digest}"));
    assert_eq!(status, 429, "{body:?}");
    assert!(
        String::from_utf8(body.unwrap())
            .unwrap()
            .contains("TOOMANYREQUESTS")
    );
    let ((status, body), took) = first.join().unwrap();
    assert_eq!(status, 502, "{body:?}");
    assert!(
        String::from_utf8(body.unwrap())
            .unwrap()
            .contains("timeout_seconds"),
        "names the limit"
    );
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    assert!(d.log().contains("max_requests"), "{}", d.log());
}

/// A fake upstream for blob redirects: a TLS probe gets a plain-HTTP
/// answer (so the mirror falls back to http, as for a loopback registry);
/// `GET <path>` is answered by `answer(path)` as (status line, headers,
/// body).
fn routing_upstream(answer: fn(&str) -> (String, String, Vec<u8>)) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let n = s.read(&mut buf).unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, headers, body) = answer(&path);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            });
        }
    });
    port
}

/// A loopback service holding a secret: counts the connections it gets.
fn secret_service() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                SECRET.len()
            );
            let _ = s.write_all(SECRET);
        }
    });
    (port, hits)
}

const SECRET: &[u8] = b"the loopback service's secret, which must never leave the host";
static SECRET_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
static MIRROR_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

#[test]
fn blob_redirects_reach_only_the_upstream_itself_or_public_https_hosts() {
    use sha2::Digest;
    use std::sync::atomic::Ordering::SeqCst;
    let (secret, hits) = secret_service();
    SECRET_PORT.store(secret, SeqCst);
    let port = free_port().unwrap();
    MIRROR_PORT.store(port, SeqCst);
    // Every blob of repository `<target>/x` redirects to that target; the
    // digest asked for is the secret's, so a followed redirect would hand
    // the client a blob that checks out.
    let fake = routing_upstream(|path| {
        let s = SECRET_PORT.load(SeqCst);
        let m = MIRROR_PORT.load(SeqCst);
        let redirect = |to: String| {
            (
                "302 Found".to_owned(),
                format!("Location: {to}\r\n"),
                Vec::new(),
            )
        };
        match path.split('/').nth(2).unwrap_or_default() {
            "same" => redirect("/v2/storage/blob".into()),
            "http-loopback" => redirect(format!("http://127.0.0.1:{s}/secret")),
            "https-loopback" => redirect(format!("https://127.0.0.1:{s}/secret")),
            "https-localhost" => redirect(format!("https://localhost:{s}/secret")),
            "https-private" => redirect(format!("https://10.255.255.1:{s}/secret")),
            "mirror" => redirect(format!(
                "http://127.0.0.1:{m}/v2/same/x/blobs/sha256:{}",
                hex::encode(sha2::Sha256::digest(SECRET))
            )),
            "storage" => ("200 OK".into(), String::new(), SECRET.to_vec()),
            _ => ("404 Not Found".into(), String::new(), Vec::new()),
        }
    });
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let d = env.start_with(&config(
        &env,
        &servers,
        &format!("[mirror]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"127.0.0.1:{fake}\"\n"),
    ));
    let base = format!("http://127.0.0.1:{port}");
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(SECRET)));

    // A redirect to the (plain-http, loopback) upstream itself is followed.
    let (status, body) = get(&format!("{base}/v2/same/x/blobs/{digest}"));
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(body.unwrap(), SECRET);
    assert_eq!(hits.load(SeqCst), 0);

    for (target, names) in [
        ("http-loopback", "redirects to other hosts must use https"),
        ("https-loopback", "a loopback address"),
        ("https-localhost", "localhost resolves to"),
        ("https-private", "a private (RFC 1918) address"),
        ("mirror", "redirects to other hosts must use https"),
    ] {
        let (status, body) = get(&format!("{base}/v2/{target}/x/blobs/{digest}"));
        let body = String::from_utf8(body.unwrap()).unwrap();
        assert_eq!(status, 502, "{target}: {body}");
        assert!(
            body.contains("redirect refused") && body.contains(names),
            "{target}: {body}"
        );
        assert!(!body.contains("secret, which"), "{target}: {body}");
    }
    assert_eq!(
        hits.load(SeqCst),
        0,
        "the loopback service was never reached"
    );
    let log = d.log();
    assert!(log.contains("redirect refused"), "{log}");
}

/// GETs `path` until the mirror answers `/v2/` with 200, for up to `within`;
/// how long that took.
fn until_served(base: &str, within: std::time::Duration) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        let (status, body) = get(&format!("{base}/v2/"));
        if status == 200 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "the mirror still answers {status} {body:?} after {within:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_client_that_stops_reading_or_a_trickling_upstream_frees_its_slot() {
    use sha2::Digest;
    use std::time::{Duration, Instant};
    use tufd_tests::hostile_upstream::{HostileUpstream, answer_head};
    // 64 MiB: far more than the socket buffers between the mirror and a
    // client that does not read.
    let blob: std::sync::Arc<Vec<u8>> =
        std::sync::Arc::new((0..64u32 << 20).map(|i| (i % 251) as u8).collect());
    let big = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&*blob)));
    let served = blob.clone();
    let fast = HostileUpstream::start(move |mut c, _| {
        let _ = answer_head(&mut c, "", served.len());
        let _ = c.write_all(&served);
    });
    // One byte every 300 ms: each well inside the per-chunk deadline.
    let trickle = HostileUpstream::start(|mut c, _| {
        let _ = answer_head(&mut c, "", 1 << 20);
        for _ in 0..1 << 20 {
            if c.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let port = free_port().unwrap();
    let d = env.start_with(&config(
        &env,
        &servers,
        &format!(
            "[mirror]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{}\"\nupstreams = [\"{}\"]\nmax_requests = 1\ntimeout_seconds = 1\nmin_transfer_kib_per_second = 1\ntransfer_window_seconds = 2\n",
            fast.host(),
            trickle.host()
        ),
    ));
    let base = format!("http://127.0.0.1:{port}");
    until_served(&base, Duration::from_secs(10));

    // A client asks for the large blob and never reads the answer.
    let mut idle = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    write!(
        idle,
        "GET /v2/team/app/blobs/{big} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    fast.next_request(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the mirror asked upstream for the blob: {}", d.log()));
    let (status, _) = get(&format!("{base}/v2/"));
    assert_eq!(status, 429, "the stalled transfer holds the only slot");
    // The write deadline (1 s) frees it, though the client still holds
    // its socket open.
    let took = until_served(&base, Duration::from_secs(8));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        d.log().contains("mirror: blob stream aborted"),
        "{}",
        d.log()
    );
    drop(idle);

    // A trickling upstream is cut by the minimum rate, long before the
    // total deadline; the client sees a body cut short.
    let start = Instant::now();
    let (status, body) = get(&format!(
        "{base}/v2/team/app/blobs/{big}?ns={}",
        trickle.host()
    ));
    let took = start.elapsed();
    assert_eq!(status, 200);
    assert!(body.is_err(), "a cut blob must not look whole");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(
        d.log().contains("min_transfer_kib_per_second"),
        "{}",
        d.log()
    );
    until_served(&base, Duration::from_secs(3));
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

/// A raw GET on a fresh connection: the status line and headers
/// (lower-cased) and body, or the error that ended the connection.
fn raw_get(addr: &str, path: &str) -> Result<(String, Vec<u8>), String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(|e| e.to_string())?;
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no answer: {:?}", String::from_utf8_lossy(&all)))?;
    Ok((
        String::from_utf8_lossy(&all[..split]).to_lowercase(),
        all[split + 4..].to_vec(),
    ))
}

#[test]
fn a_manifest_is_served_as_what_its_bytes_say_or_refused() {
    use sha2::Digest;
    use tufd_tests::hostile_upstream::{HostileUpstream, answer_head};
    let oci = tufd_remote::MEDIA_TYPE_OCI_MANIFEST;
    let docker = tufd_remote::MEDIA_TYPE_DOCKER_MANIFEST;
    let manifest = |media_type: &str| {
        format!(r#"{{"schemaVersion":2,"mediaType":"{media_type}","layers":[]}}"#).into_bytes()
    };
    // (repository, Content-Type header line, body)
    let cases: Vec<(&str, String, Vec<u8>)> = vec![
        // A control character in mediaType, no Content-Type.
        ("ctl", String::new(), manifest(&format!("{oci}\\u0001x"))),
        // The registry calls it a Docker manifest; the bytes say OCI.
        ("mis", format!("Content-Type: {docker}\r\n"), manifest(oci)),
        // A generic Content-Type: served as what the bytes say.
        (
            "gen",
            "Content-Type: application/json\r\n".into(),
            manifest(oci),
        ),
    ];
    let digests: Vec<String> = cases
        .iter()
        .map(|(_, _, b)| format!("sha256:{}", hex::encode(sha2::Sha256::digest(b))))
        .collect();
    let served = cases.clone();
    let up = HostileUpstream::start(move |mut c, head| {
        let line = head.lines().next().unwrap_or_default();
        if let Some((_, ct, body)) = served
            .iter()
            .find(|(r, _, _)| line.contains(&format!("/team/{r}/")))
        {
            let _ = answer_head(&mut c, ct, body.len());
            let _ = c.write_all(body);
        }
    });
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let port = free_port().unwrap();
    let mirror = format!("127.0.0.1:{port}");
    let d = env.start_with(&config(
        &env,
        &servers,
        &format!(
            "[mirror]\nlisten = \"{mirror}\"\nupstream = \"{}\"\n",
            up.host()
        ),
    ));
    let get = |repo: &str, digest: &str| {
        raw_get(&mirror, &format!("/v2/team/{repo}/manifests/{digest}"))
            .unwrap_or_else(|e| panic!("{repo}: the connection broke: {e}\n{}", d.log()))
    };
    let (head, body) = get("ctl", &digests[0]);
    let body = String::from_utf8_lossy(&body);
    assert!(head.starts_with("http/1.1 502"), "{head}\n{body}");
    assert!(
        body.contains("MANIFEST_INVALID") && body.contains("is not a media type"),
        "{body}"
    );
    let (head, body) = get("mis", &digests[1]);
    let body = String::from_utf8_lossy(&body);
    assert!(head.starts_with("http/1.1 502"), "{head}\n{body}");
    assert!(
        body.contains("disagrees with the manifest's mediaType"),
        "{body}"
    );
    let (head, body) = get("gen", &digests[2]);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-type: {oci}")), "{head}");
    assert_eq!(body, cases[2].2);
    let log = d.log();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_flood_of_refusals_writes_a_bounded_audit() {
    use std::time::Duration;
    use tufd_tests::hostile_upstream::HostileUpstream;
    // An upstream that never answers: a blob request holds the only slot.
    let up = HostileUpstream::start(|c, _| {
        std::thread::sleep(Duration::from_secs(30));
        drop(c);
    });
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let port = free_port().unwrap();
    let host = up.host();
    let d = env.start_with(&config(
        &env,
        &servers,
        &format!(
            "[[verify]]\nprefix = \"{host}/enf/\"\nmode = \"enforced\"\n[mirror]\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{host}\"\nmax_requests = 1\ntimeout_seconds = 4\n"
        ),
    ));
    let base = format!("http://127.0.0.1:{port}");
    let audit = env.path().join("state/audit.log");
    let lines = || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"operation\":\"mirror-pull\""))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // Requests that are not pull API requests at all.
    for i in 0..600 {
        let path = match i % 3 {
            0 => format!("/other/{i}"),
            1 => format!("/v2/Team/app{i}/manifests/v1"),
            _ => format!("/v2/app/blobs/sha256:{i}"),
        };
        let (status, _) = get(&format!("{base}{path}"));
        assert!(status == 400 || status == 404, "{path}: {status}");
    }
    // Load shedding: a stalled blob holds the only slot.
    let digest = format!("sha256:{}", "ab".repeat(32));
    let held = {
        let url = format!("{base}/v2/team/app/blobs/{digest}");
        std::thread::spawn(move || get(&url))
    };
    up.next_request(Duration::from_secs(10))
        .expect("the mirror asked upstream");
    for _ in 0..300 {
        let (status, _) = get(&format!("{base}/v2/"));
        assert_eq!(status, 429);
    }
    let (status, _) = held.join().unwrap();
    assert_eq!(status, 502);
    // Policy refusals: each distinct one audited, its repeats not one by one.
    for _ in 0..100 {
        for tag in ["v1", "v2"] {
            let (status, body) = get(&format!("{base}/v2/enf/app/manifests/{tag}"));
            assert_eq!(status, 403, "{body:?}");
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lines().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let recorded = lines();
    assert_eq!(recorded.len(), 2, "{recorded:#?}");
    for tag in ["v1", "v2"] {
        assert!(
            recorded.iter().any(|l| l.contains("\"phase\":\"denied\"")
                && l.contains(&format!("/v2/enf/app/manifests/{tag}"))
                && l.contains("\"address\":\"127.0.0.1:")),
            "{recorded:#?}"
        );
    }
    // The daemon log is bounded too.
    let log = d.log();
    let logged = log.matches("mirror refused a request").count();
    assert!(logged <= 100, "{logged} refusals logged one by one");
    assert!(!log.contains("panicked"), "{log}");
    let verified = env.tufctl(&["audit", "verify"]);
    assert!(verified.status.success(), "{}", verified.stderr);
}

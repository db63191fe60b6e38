//! tufd-remote against the real notary-server 0.7 (started by the harness)
//! and against small hostile servers on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tufd_remote::{
    Auth, ClientIdentity, Error, ErrorCode, Gun, NotaryClient, RemoteConfig, RoleName,
    SecretString, ServerKeyRole, SizeLimits,
};
use tufd_tests::notary::{KeyAlgorithm, NotaryServers, ServerOptions, TestCa};

const GUN: &str = "127.0.0.1:5000/team/app";
const ODD_TARGET: &str = "a<b>&c";
const UNICODE_TARGET: &str = "ünïcødé-€-tag";

fn client_for(servers: &NotaryServers) -> NotaryClient {
    NotaryClient::new(&RemoteConfig::new(servers.url()).with_ca_file(servers.ca_path()))
        .expect("client")
}

fn gun(s: &str) -> Gun {
    Gun::new(s).expect("valid gun")
}

fn role(s: &str) -> RoleName {
    RoleName::new(s).expect("valid role")
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("metadata is JSON")
}

/// The sha256 a snapshot/timestamp `meta` entry lists for `name`.
fn meta_sha256(file: &serde_json::Value, name: &str) -> [u8; 32] {
    let b64 = file["signed"]["meta"][name]["hashes"]["sha256"]
        .as_str()
        .unwrap_or_else(|| panic!("no sha256 for {name} in {file}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    raw.try_into().expect("32 bytes")
}

/// Publishes `GUN` with the real notary client: two odd target names in
/// `targets`, a delegation `targets/releases` with one target.
fn populate(servers: &NotaryServers) {
    let cli = servers.cli();
    let dir = servers.dir();
    let payload = dir.join("payload.txt");
    std::fs::write(&payload, b"hello\n").expect("payload");
    cli.run_ok(["init", GUN, "-p"]);
    for name in [ODD_TARGET, UNICODE_TARGET] {
        cli.run_ok([
            "add".as_ref(),
            GUN.as_ref(),
            name.as_ref(),
            payload.as_os_str(),
        ]);
    }
    let ca = TestCa::generate(dir, "delegation-ca").expect("ca");
    let del = ca.issue_leaf(dir, "delegation").expect("leaf");
    cli.run_ok([
        "delegation".as_ref(),
        "add".as_ref(),
        GUN.as_ref(),
        "targets/releases".as_ref(),
        del.cert.as_os_str(),
        "--all-paths".as_ref(),
    ]);
    cli.run_ok(["publish", GUN]);
    cli.run_ok([
        "key".as_ref(),
        "import".as_ref(),
        del.key.as_os_str(),
        "--role".as_ref(),
        "targets/releases".as_ref(),
    ]);
    cli.run_ok([
        "add".as_ref(),
        GUN.as_ref(),
        "v1.0".as_ref(),
        payload.as_os_str(),
        "--roles".as_ref(),
        "targets/releases".as_ref(),
        "-p".as_ref(),
    ]);
    let list = cli.run_ok(["list", GUN]);
    assert!(list.stdout.contains(ODD_TARGET), "{list}");
    assert!(list.stdout.contains(UNICODE_TARGET), "{list}");
    assert!(list.stdout.contains("v1.0"), "{list}");
}

#[tokio::test]
async fn fetches_what_the_notary_client_published() {
    let servers = NotaryServers::start();
    populate(&servers);
    let client = client_for(&servers);
    let g = gun(GUN);

    client.health().await.expect("health");

    let root = client.get_role(&g, &RoleName::ROOT).await.expect("root");
    let timestamp = client
        .get_role(&g, &RoleName::TIMESTAMP)
        .await
        .expect("timestamp");
    let snapshot = client
        .get_role(&g, &RoleName::SNAPSHOT)
        .await
        .expect("snapshot");
    let targets = client
        .get_role(&g, &RoleName::TARGETS)
        .await
        .expect("targets");
    let releases = client
        .get_role(&g, &role("targets/releases"))
        .await
        .expect("targets/releases");
    assert_eq!(json(&root)["signed"]["_type"], "Root");
    assert_eq!(json(&timestamp)["signed"]["_type"], "Timestamp");
    assert_eq!(json(&releases)["signed"]["targets"]["v1.0"]["length"], 6);

    // The bytes arrive untouched: Go's HTML escaping inside the envelope, raw UTF-8.
    let targets_text = std::str::from_utf8(&targets).expect("utf8");
    assert!(
        targets_text.contains(r#""a\u003cb\u003e\u0026c""#),
        "{targets_text}"
    );
    assert!(targets_text.contains(UNICODE_TARGET), "{targets_text}");
    let parsed_targets = json(&targets);
    assert!(parsed_targets["signed"]["targets"][ODD_TARGET].is_object());

    // By checksum, with the hashes listed in timestamp and snapshot.
    let ts = json(&timestamp);
    let snap_by_hash = client
        .get_role_by_checksum(&g, &RoleName::SNAPSHOT, &meta_sha256(&ts, "snapshot"))
        .await
        .expect("snapshot by checksum");
    assert_eq!(snap_by_hash, snapshot);
    let snap = json(&snapshot);
    for (name, current) in [
        ("root", &root),
        ("targets", &targets),
        ("targets/releases", &releases),
    ] {
        let by_hash = client
            .get_role_by_checksum(&g, &role(name), &meta_sha256(&snap, name))
            .await
            .unwrap_or_else(|e| panic!("{name} by checksum: {e}"));
        assert_eq!(&by_hash, current, "{name}");
        assert_eq!(
            Sha256::digest(&by_hash).as_slice(),
            meta_sha256(&snap, name)
        );
    }

    // By version: every role's current version, and root v1.
    for (name, current) in [
        ("root", &root),
        ("targets", &targets),
        ("targets/releases", &releases),
        ("snapshot", &snapshot),
        ("timestamp", &timestamp),
    ] {
        let version = json(current)["signed"]["version"]
            .as_u64()
            .expect("version");
        let by_version = client
            .get_role_by_version(&g, &role(name), version)
            .await
            .unwrap_or_else(|e| panic!("{name} v{version}: {e}"));
        assert_eq!(&by_version, current, "{name} v{version}");
    }
    // targets went through several versions; the previous one is still served and differs.
    let v = json(&targets)["signed"]["version"]
        .as_u64()
        .expect("version");
    assert!(v >= 3, "targets version {v}");
    let previous = client
        .get_role_by_version(&g, &RoleName::TARGETS, v - 1)
        .await
        .expect("previous targets");
    assert_ne!(previous, targets);
    assert_eq!(json(&previous)["signed"]["version"].as_u64(), Some(v - 1));

    // The notary client's cache holds the same bytes.
    let cached = servers
        .dir()
        .join("trust-0/tuf")
        .join(GUN)
        .join("metadata/targets.json");
    if let Ok(cached) = std::fs::read(&cached) {
        assert_eq!(Bytes::from(cached), targets);
    }
}

#[tokio::test]
async fn missing_things_are_not_found() {
    let servers = NotaryServers::start();
    let cli = servers.cli();
    cli.run_ok(["init", "example.com/present", "-p"]);
    let client = client_for(&servers);
    let present = gun("example.com/present");

    let err = client
        .get_role(&gun("example.com/absent"), &RoleName::ROOT)
        .await
        .expect_err("unknown gun");
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.server_code(), Some(&ErrorCode::MetadataNotFound));
    assert!(
        err.to_string()
            .contains("/v2/example.com/absent/_trust/tuf/root.json"),
        "{err}"
    );

    for (what, result) in [
        (
            "delegation",
            client.get_role(&present, &role("targets/nope")).await,
        ),
        (
            "version",
            client
                .get_role_by_version(&present, &RoleName::ROOT, 99)
                .await,
        ),
        (
            "checksum",
            client
                .get_role_by_checksum(&present, &RoleName::ROOT, &[7u8; 32])
                .await,
        ),
    ] {
        let err = result.expect_err(what);
        assert!(err.is_not_found(), "{what}: {err}");
    }
}

#[tokio::test]
async fn publish_errors_are_decoded() {
    let servers = NotaryServers::start();
    let cli = servers.cli();
    let g = gun("localhost:5000/library/app");
    cli.run_ok(["init", g.as_str(), "-p"]);
    let client = client_for(&servers);
    let targets = client
        .get_role(&g, &RoleName::TARGETS)
        .await
        .expect("targets");
    let snapshot = client
        .get_role(&g, &RoleName::SNAPSHOT)
        .await
        .expect("snapshot");

    // Same bytes again: the stored version is not older → VERSION, a lost race.
    let err = client
        .publish(
            &g,
            &[
                (RoleName::TARGETS, targets.clone()),
                (RoleName::SNAPSHOT, snapshot.clone()),
            ],
        )
        .await
        .expect_err("republish");
    assert!(err.is_lost_race(), "{err}");
    assert_eq!(err.server_code(), Some(&ErrorCode::Version));
    assert!(matches!(err, Error::Server { status: 400, .. }), "{err}");

    // A part that is not JSON.
    let err = client
        .publish(&g, &[(RoleName::TARGETS, Bytes::from_static(b"not json"))])
        .await
        .expect_err("junk");
    assert_eq!(err.server_code(), Some(&ErrorCode::MalformedJson), "{err}");
    assert!(!err.is_lost_race());

    // A role name notary does not accept (delegation names are lower case).
    assert!(!role("targets/Releases").is_notary_compatible());
    let err = client
        .publish(&g, &[(role("targets/Releases"), targets.clone())])
        .await
        .expect_err("bad role");
    assert_eq!(err.server_code(), Some(&ErrorCode::InvalidRole), "{err}");
    assert_eq!(
        err.server_errors()[0].detail_message(),
        Some("targets/Releases"),
        "{err}"
    );

    // A root for another repository: INVALID_UPDATE with ErrBadRoot.
    let other = gun("localhost:5000/library/other");
    let root = client.get_role(&g, &RoleName::ROOT).await.expect("root");
    let err = client
        .publish(&other, &[(RoleName::ROOT, root)])
        .await
        .expect_err("foreign root");
    assert_eq!(err.server_code(), Some(&ErrorCode::InvalidUpdate), "{err}");
    assert_eq!(
        err.server_errors()[0].detail_name(),
        Some("ErrBadRoot"),
        "{err}"
    );
    assert!(!err.is_lost_race());

    // Client-side checks.
    assert!(matches!(
        client.publish(&g, &[]).await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        client
            .publish(
                &g,
                &[
                    (RoleName::TARGETS, targets.clone()),
                    (RoleName::TARGETS, targets)
                ]
            )
            .await,
        Err(Error::Config(_))
    ));
}

#[tokio::test]
async fn server_keys_and_delete() {
    let servers = NotaryServers::start();
    let client = client_for(&servers);
    let g = gun("registry.example.com:443/team/sub/app");

    // Before the repository exists the key can be fetched (the server makes one).
    let fresh = client
        .get_server_key(&g, ServerKeyRole::Timestamp)
        .await
        .expect("timestamp key");
    assert_eq!(fresh.keytype, "ecdsa");
    let spki = base64::engine::general_purpose::STANDARD
        .decode(&fresh.public)
        .expect("base64");
    assert_eq!(spki.len(), 91, "P-256 SPKI");
    assert!(json(&fresh.raw)["keyval"]["public"].is_string());

    // Once root is published, the key is stable and the one root lists.
    servers.cli().run_ok(["init", g.as_str(), "-p"]);
    let root = json(&client.get_role(&g, &RoleName::ROOT).await.expect("root"));
    let ts = client
        .get_server_key(&g, ServerKeyRole::Timestamp)
        .await
        .expect("timestamp key");
    let again = client
        .get_server_key(&g, ServerKeyRole::Timestamp)
        .await
        .expect("timestamp key again");
    assert_eq!(again.public, ts.public, "timestamp key is stable");
    let listed = root["signed"]["keys"]
        .as_object()
        .expect("keys")
        .values()
        .any(|k| k["keyval"]["public"] == ts.public.as_str());
    assert!(listed, "timestamp key not in root: {root}");

    let rotated = client
        .rotate_server_key(&g, ServerKeyRole::Timestamp)
        .await
        .expect("rotate");
    assert_eq!(rotated.keytype, "ecdsa");
    assert_ne!(rotated.public, ts.public);

    let snap = client
        .get_server_key(&g, ServerKeyRole::Snapshot)
        .await
        .expect("snapshot key");
    assert_eq!(snap.keytype, "ecdsa");

    // Delete the repository.
    client.delete(&g).await.expect("delete");
    let err = client
        .get_role(&g, &RoleName::ROOT)
        .await
        .expect_err("root after delete");
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn ed25519_server_keys() {
    let servers = NotaryServers::start_with(ServerOptions {
        key_algorithm: KeyAlgorithm::Ed25519,
    });
    let key = client_for(&servers)
        .get_server_key(&gun("example.com/ed"), ServerKeyRole::Timestamp)
        .await
        .expect("timestamp key");
    assert_eq!(key.keytype, "ed25519");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&key.public)
        .expect("base64");
    assert_eq!(raw.len(), 32);
}

#[tokio::test]
async fn tls_and_connection_failures_name_the_url() {
    let servers = NotaryServers::start();

    // A CA that did not sign the server's certificate.
    let other_ca = TestCa::generate(servers.dir(), "other-ca").expect("ca");
    let client = NotaryClient::new(&RemoteConfig::new(servers.url()).with_ca_file(&other_ca.cert))
        .expect("client");
    let err = client.health().await.expect_err("wrong CA");
    eprintln!("{err}");
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(servers.url()), "{text}");
    assert!(
        text.contains("UnknownIssuer") || text.contains("issuer"),
        "{text}"
    );

    // A client certificate is configured and presented (notary-server ignores it).
    let mut cfg = RemoteConfig::new(servers.url()).with_ca_file(servers.ca_path());
    cfg.client_identity = Some(ClientIdentity {
        cert_file: servers.leaf().cert.clone(),
        key_file: servers.leaf().key.clone(),
    });
    NotaryClient::new(&cfg)
        .expect("mTLS client")
        .health()
        .await
        .expect("health with client cert");

    // Unreadable CA file: a configuration error naming the file.
    let err =
        NotaryClient::new(&RemoteConfig::new(servers.url()).with_ca_file("/nonexistent/ca.pem"))
            .expect_err("missing CA");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");

    // The server is gone: a connection error naming the URL.
    let url = servers.url().to_owned();
    let good = client_for(&servers);
    drop(servers);
    let err = good.health().await.expect_err("server gone");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(err.is_transient());
}

// ---------------------------------------------------------------------------
// Hostile servers

/// What a hostile server does after reading a request.
#[derive(Clone)]
enum Behaviour {
    /// Writes these bytes and closes.
    Respond(Vec<u8>),
    /// Sends a chunked 200 that never ends.
    Endless,
    /// Reads the request and never answers.
    Hang,
    /// A 200 with Content-Length 1000, one byte per 100 ms.
    Drip,
}

struct Hostile {
    url: String,
    /// The last request head and body, as received.
    request: Arc<std::sync::Mutex<Vec<u8>>>,
    /// Bytes of body written by `Endless`, and whether it saw the client go.
    written: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

async fn hostile(behaviour: Behaviour) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let request = Arc::new(std::sync::Mutex::new(Vec::new()));
    let written = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    let (req2, written2, closed2) = (request.clone(), written.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let behaviour = behaviour.clone();
            let (request, written, closed) = (req2.clone(), written2.clone(), closed2.clone());
            tokio::spawn(async move {
                let received = read_request(&mut sock).await;
                if let Ok(mut r) = request.lock() {
                    *r = received;
                }
                match behaviour {
                    Behaviour::Respond(bytes) => {
                        let _ = sock.write_all(&bytes).await;
                        let _ = sock.shutdown().await;
                    }
                    Behaviour::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                    Behaviour::Drip => {
                        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
                        if sock.write_all(head).await.is_err() {
                            return;
                        }
                        for _ in 0..1000 {
                            if sock.write_all(b"x").await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    Behaviour::Endless => {
                        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                        if sock.write_all(head).await.is_err() {
                            return;
                        }
                        let chunk = vec![b'a'; 64 << 10];
                        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                        framed.extend_from_slice(&chunk);
                        framed.extend_from_slice(b"\r\n");
                        loop {
                            if sock.write_all(&framed).await.is_err() {
                                closed.store(true, Ordering::SeqCst);
                                return;
                            }
                            let total = written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                            if total > (1 << 30) {
                                return; // 1 GiB: the client clearly did not stop.
                            }
                        }
                    }
                }
            });
        }
    });
    Hostile {
        url,
        request,
        written,
        closed,
    }
}

/// Reads one request: the head, then a Content-Length body.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(sock: &mut S) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let Ok(n) = sock.read(&mut tmp).await else {
            return buf;
        };
        if n == 0 {
            return buf;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return buf;
            }
        }
    }
}

fn response(status: &str, body: &str) -> Behaviour {
    Behaviour::Respond(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn hostile_client(url: &str, limit: u64, timeout: Duration) -> NotaryClient {
    let mut cfg = RemoteConfig::new(url);
    cfg.limits = SizeLimits::uniform(limit);
    cfg.timeout = timeout;
    cfg.connect_timeout = Duration::from_secs(2);
    // http:// needs no CA, but give one so that system roots are not required.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::generate(dir.path(), "unused").expect("ca");
    cfg.ca_file = Some(ca.cert);
    NotaryClient::new(&cfg).expect("client")
}

#[tokio::test]
async fn endless_body_is_cut_off_while_streaming() {
    let server = hostile(Behaviour::Endless).await;
    let client = hostile_client(&server.url, 1 << 20, Duration::from_secs(20));
    let started = Instant::now();
    let err = client
        .get_role(&gun("x/y"), &RoleName::TARGETS)
        .await
        .expect_err("endless");
    assert!(
        matches!(err, Error::TooLarge { limit: 1048576, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&server.url), "{err}");
    // The client hung up: the server's writes fail soon after.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.closed.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(server.closed.load(Ordering::SeqCst), "client kept reading");
    let written = server.written.load(Ordering::SeqCst);
    assert!(
        written < 64 << 20,
        "server wrote {written} bytes before the client stopped"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn declared_oversize_is_rejected_before_reading() {
    let body = "x".repeat(4096);
    let server = hostile(response("200 OK", &body)).await;
    let client = hostile_client(&server.url, 1024, Duration::from_secs(5));
    let err = client
        .get_role(&gun("x/y"), &RoleName::TIMESTAMP)
        .await
        .expect_err("oversize");
    assert!(
        matches!(err, Error::TooLarge { limit: 1024, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn silent_server_times_out() {
    let server = hostile(Behaviour::Hang).await;
    let client = hostile_client(&server.url, 1 << 20, Duration::from_millis(500));
    let started = Instant::now();
    let err = client.health().await.expect_err("hang");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains(&server.url), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn dripping_body_times_out() {
    let server = hostile(Behaviour::Drip).await;
    let client = hostile_client(&server.url, 1 << 20, Duration::from_millis(700));
    let started = Instant::now();
    let err = client
        .get_role(&gun("x/y"), &RoleName::ROOT)
        .await
        .expect_err("drip");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn wrong_bytes_for_a_checksum_are_rejected() {
    let server = hostile(response("200 OK", "{\"signed\":{}}")).await;
    let client = hostile_client(&server.url, 1 << 20, Duration::from_secs(5));
    let wanted = [0x11u8; 32];
    let err = client
        .get_role_by_checksum(&gun("x/y"), &RoleName::SNAPSHOT, &wanted)
        .await
        .expect_err("mismatch");
    match &err {
        Error::ChecksumMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &hex::encode(wanted));
            assert_eq!(actual, &hex::encode(Sha256::digest(b"{\"signed\":{}}")));
        }
        other => panic!("{other:?}"),
    }
    let request = server.request.lock().map(|r| r.clone()).unwrap_or_default();
    let line = String::from_utf8_lossy(&request);
    assert!(
        line.starts_with(&format!(
            "GET /v2/x/y/_trust/tuf/snapshot.{}.json HTTP/1.1",
            hex::encode(wanted)
        )),
        "{line}"
    );
}

#[tokio::test]
async fn updating_500_is_a_lost_race() {
    let body = r#"{"errors":[{"code":"UPDATING","message":"An error has occurred while updating the TUF repository."}]}"#;
    let server = hostile(response("500 Internal Server Error", body)).await;
    let client = hostile_client(&server.url, 1 << 20, Duration::from_secs(5));
    let err = client
        .publish(
            &gun("x/y"),
            &[(RoleName::TARGETS, Bytes::from_static(b"{}"))],
        )
        .await
        .expect_err("500");
    assert!(err.is_lost_race(), "{err}");
    assert_eq!(err.server_code(), Some(&ErrorCode::Updating));
}

#[tokio::test]
async fn other_statuses() {
    let server = hostile(response("502 Bad Gateway", "<html>proxy down</html>")).await;
    let client = hostile_client(&server.url, 1 << 20, Duration::from_secs(5));
    let err = client.health().await.expect_err("502");
    assert!(
        matches!(&err, Error::UnexpectedStatus { status: 502, body, .. } if body.contains("proxy down")),
        "{err:?}"
    );
    assert!(err.is_transient());

    let server = hostile(Behaviour::Respond(
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"https://auth.example/token\",service=\"notary\"\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ))
    .await;
    let client = hostile_client(&server.url, 1 << 20, Duration::from_secs(5));
    let err = client.health().await.expect_err("401");
    eprintln!("{err}");
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("realm=\"https://auth.example/token\""),
        "{err}"
    );
}

#[tokio::test]
async fn publish_request_is_notarys_multipart_with_auth() {
    let server = hostile(response("200 OK", "")).await;
    let mut cfg = RemoteConfig::new(format!("{}/prefix/", server.url));
    cfg.auth = Some(Auth::Bearer(SecretString::from("tok3n")));
    let dir = tempfile::tempdir().expect("tempdir");
    cfg.ca_file = Some(TestCa::generate(dir.path(), "ca").expect("ca").cert);
    let client = NotaryClient::new(&cfg).expect("client");
    client
        .publish(
            &gun("localhost:5000/a/b"),
            &[
                (RoleName::ROOT, Bytes::from_static(b"{\"r\":1}")),
                (role("targets/releases"), Bytes::from_static(b"{\"t\":2}")),
            ],
        )
        .await
        .expect("publish");
    let request = server.request.lock().map(|r| r.clone()).unwrap_or_default();
    let text = String::from_utf8_lossy(&request).into_owned();
    assert!(
        text.starts_with("POST /prefix/v2/localhost:5000/a/b/_trust/tuf/ HTTP/1.1\r\n"),
        "{text}"
    );
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("authorization: bearer tok3n\r\n"), "{text}");
    let boundary = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-type: multipart/form-data; boundary="))
        .expect("multipart content type")
        .trim()
        .to_owned();
    let body = &text[text.find("\r\n\r\n").expect("head end") + 4..];
    assert_eq!(
        body,
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"root\"\r\nContent-Type: application/octet-stream\r\n\r\n{{\"r\":1}}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"targets/releases\"\r\nContent-Type: application/octet-stream\r\n\r\n{{\"t\":2}}\r\n--{boundary}--\r\n"
        )
    );
}

/// A TLS server (tokio-rustls) with a certificate from `ca` that requires a
/// client certificate issued by `ca`, and answers `200 {}` to one request
/// per connection.
async fn tls_server_requiring_client_certs(ca: &TestCa, dir: &std::path::Path) -> String {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let leaf = ca.issue_leaf(dir, "hostile-tls").expect("leaf");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&ca.cert).expect("ca pem"))
        .expect("ca");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let chain = vec![CertificateDer::from_pem_file(&leaf.cert).expect("cert pem")];
    let key = PrivateKeyDer::from_pem_file(&leaf.key).expect("key pem");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let _ = read_request(&mut tls).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    url
}

#[tokio::test]
async fn tls_server_checks_ca_and_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::generate(dir.path(), "server-ca").expect("ca");
    let url = tls_server_requiring_client_certs(&ca, dir.path()).await;
    let config = || {
        let mut c = RemoteConfig::new(url.as_str()).with_ca_file(&ca.cert);
        c.timeout = Duration::from_secs(5);
        c
    };

    // Wrong CA: the server's certificate is not trusted.
    let wrong = TestCa::generate(dir.path(), "wrong-ca").expect("ca");
    let client = NotaryClient::new(&config().with_ca_file(&wrong.cert)).expect("client");
    let err = client.health().await.expect_err("wrong CA");
    eprintln!("{err}");
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");

    // Right CA, no client certificate: the server refuses the handshake.
    let client = NotaryClient::new(&config()).expect("client");
    let err = client.health().await.expect_err("no client cert");
    eprintln!("{err}");
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");

    // With a client certificate from the CA: accepted.
    let id = ca.issue_leaf(dir.path(), "client").expect("client leaf");
    let mut cfg = config();
    cfg.client_identity = Some(ClientIdentity {
        cert_file: id.cert,
        key_file: id.key,
    });
    NotaryClient::new(&cfg)
        .expect("client")
        .health()
        .await
        .expect("mTLS health");
}

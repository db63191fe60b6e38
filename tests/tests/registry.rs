//! tufd-remote's registry client against the real docker-registry
//! (distribution 2.8, started by the harness) and against small hostile
//! servers on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tufd_remote::{
    ImageRef, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST, RegistryClient, RegistryConfig, RegistryCredentials, RegistryError,
};
use tufd_tests::notary::TestCa;
use tufd_tests::registry::{
    ImageSpec, PASSWORD, RegistryAuth, RegistryOptions, TOKEN_SERVICE, TestRegistry, USERNAME,
};

/// A configuration that trusts `ca`, or a throwaway CA (so that system
/// roots are not needed for plain-http registries).
fn config_for(ca: Option<&std::path::Path>) -> (RegistryConfig, Option<tempfile::TempDir>) {
    let mut cfg = RegistryConfig::new();
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.timeout = Duration::from_secs(10);
    match ca {
        Some(ca) => {
            cfg.ca_file = Some(ca.to_owned());
            (cfg, None)
        }
        None => {
            let dir = tempfile::tempdir().expect("tempdir");
            let unused = TestCa::generate(dir.path(), "unused").expect("ca");
            cfg.ca_file = Some(unused.cert);
            (cfg, Some(dir))
        }
    }
}

fn client_for(registry: &TestRegistry) -> RegistryClient {
    let (cfg, _dir) = config_for(registry.ca_path());
    RegistryClient::new(&cfg).expect("client")
}

fn image(registry: &TestRegistry, repository: &str, tag: &str) -> ImageRef {
    ImageRef::new(&format!("{}/{repository}", registry.host()), tag).expect("image ref")
}

#[tokio::test]
async fn resolves_a_pushed_tag() {
    let registry = TestRegistry::start();
    let pushed = registry.push_image("library/app", "v1").await;
    let docker = registry
        .push_image_with(
            "library/app",
            "docker-v2",
            &ImageSpec {
                docker_media_types: true,
                ..ImageSpec::default()
            },
        )
        .await;
    let client = client_for(&registry);

    let got = client
        .resolve(&image(&registry, "library/app", "v1"))
        .await
        .expect("resolve v1");
    assert_eq!(got.digest, <[u8; 32]>::from(Sha256::digest(&pushed.bytes)));
    assert_eq!(got.size, pushed.bytes.len() as u64);
    assert_eq!(got.media_type, MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(got.digest_string(), pushed.digest_string());

    let got = client
        .resolve(&image(&registry, "library/app", "docker-v2"))
        .await
        .expect("resolve docker-v2");
    assert_eq!(got.digest, docker.digest);
    assert_eq!(got.size, docker.size());
    assert_eq!(got.media_type, MEDIA_TYPE_DOCKER_MANIFEST);

    // "localhost" is loopback too, and `ImageRef::parse` takes REPO:TAG.
    let by_name =
        ImageRef::parse(&format!("localhost:{}/library/app:v1", registry.port())).expect("parse");
    let got = client
        .resolve(&by_name)
        .await
        .expect("resolve via localhost");
    assert_eq!(got.digest, pushed.digest);

    // Retagging moves the tag: the client sees the new manifest.
    let newer = registry.push_image("library/app", "v1").await;
    assert_ne!(newer.digest, pushed.digest);
    let got = client
        .resolve(&image(&registry, "library/app", "v1"))
        .await
        .expect("resolve moved v1");
    assert_eq!((got.digest, got.size), (newer.digest, newer.size()));
}

#[tokio::test]
async fn unknown_tag_and_repository_are_not_found() {
    let registry = TestRegistry::start();
    registry.push_image("library/app", "v1").await;
    let client = client_for(&registry);
    let host = registry.host();

    let err = client
        .resolve(&image(&registry, "library/app", "v2"))
        .await
        .expect_err("unknown tag");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.to_string(), format!("no tag v2 in {host}/library/app"));

    let err = client
        .resolve(&image(&registry, "library/nope", "v1"))
        .await
        .expect_err("unknown repository");
    assert!(
        matches!(err, RegistryError::RepositoryNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("no repository library/nope in {host} (looking for tag v1)")
    );

    // Deleted manifests are gone too.
    let gone = registry.push_image("library/app", "gone").await;
    registry
        .delete_manifest("library/app", &gone.digest_string())
        .await;
    let err = client
        .resolve(&image(&registry, "library/app", "gone"))
        .await
        .expect_err("deleted");
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn an_index_resolves_to_the_index_digest() {
    let registry = TestRegistry::start();
    let repo = "team/multi";
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let spec = ImageSpec {
            architecture: arch.into(),
            ..ImageSpec::default()
        };
        children.push(registry.push_image_with(repo, None, &spec).await);
    }
    let index = registry.push_index(repo, "v1", &children, false).await;
    let client = client_for(&registry);
    let got = client
        .resolve(&image(&registry, repo, "v1"))
        .await
        .expect("resolve index");
    assert_eq!(got.media_type, MEDIA_TYPE_OCI_INDEX);
    assert_eq!((got.digest, got.size), (index.digest, index.size()));
    assert!(children.iter().all(|c| c.digest != got.digest));

    // A Docker manifest list over schema 2 images, likewise.
    let mut docker_children = Vec::new();
    for arch in ["amd64", "s390x"] {
        let spec = ImageSpec {
            docker_media_types: true,
            architecture: arch.into(),
            ..ImageSpec::default()
        };
        docker_children.push(registry.push_image_with(repo, None, &spec).await);
    }
    let list = registry
        .push_index(repo, "list", &docker_children, true)
        .await;
    let got = client
        .resolve(&image(&registry, repo, "list"))
        .await
        .expect("resolve list");
    assert_eq!(got.media_type, MEDIA_TYPE_DOCKER_LIST);
    assert_eq!((got.digest, got.size), (list.digest, list.size()));
}

#[tokio::test]
async fn oversized_manifests_are_refused() {
    let registry = TestRegistry::start();
    let big = registry
        .push_image_with(
            "library/big",
            "v1",
            &ImageSpec {
                padding: 100 << 10,
                ..ImageSpec::default()
            },
        )
        .await;
    assert!(big.size() > 100 << 10);
    let (mut cfg, _dir) = config_for(None);
    cfg.max_manifest_size = 64 << 10;
    let client = RegistryClient::new(&cfg).expect("client");
    let err = client
        .resolve(&image(&registry, "library/big", "v1"))
        .await
        .expect_err("too large");
    assert!(
        matches!(err, RegistryError::TooLarge { limit, .. } if limit == 64 << 10),
        "{err:?}"
    );
    // At the default limit (4 MiB) it is fine.
    let got = client_for(&registry)
        .resolve(&image(&registry, "library/big", "v1"))
        .await
        .expect("resolve big");
    assert_eq!(got.size, big.size());

    // What docker-registry itself does with a manifest over 4 MiB.
    let huge = registry
        .image_manifest(
            "library/huge",
            Some("v1"),
            &ImageSpec {
                padding: 5 << 20,
                ..ImageSpec::default()
            },
        )
        .await;
    let outcome = registry
        .try_put_manifest("library/huge", "v1", MEDIA_TYPE_OCI_MANIFEST, huge)
        .await;
    eprintln!(
        "docker-registry and a 5 MiB manifest: {}",
        match &outcome {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.chars().take(300).collect(),
        }
    );
    if outcome.is_ok() {
        let err = client_for(&registry)
            .resolve(&image(&registry, "library/huge", "v1"))
            .await
            .expect_err("over 4 MiB");
        assert!(matches!(err, RegistryError::TooLarge { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn tls_registry_with_the_test_ca() {
    let registry = TestRegistry::start_with(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    });
    assert!(registry.url().starts_with("https://"));
    let pushed = registry.push_image("library/app", "v1").await;
    let got = client_for(&registry)
        .resolve(&image(&registry, "library/app", "v1"))
        .await
        .expect("resolve over TLS");
    assert_eq!((got.digest, got.size), (pushed.digest, pushed.size()));

    // Another CA: a TLS error naming the CA, and no fallback to plain http
    // even though the registry is on loopback.
    let (cfg, _dir) = config_for(None);
    let err = RegistryClient::new(&cfg)
        .expect("client")
        .resolve(&image(&registry, "library/app", "v1"))
        .await
        .expect_err("unknown CA");
    match &err {
        RegistryError::Tls { url, detail, .. } => {
            assert!(url.starts_with("https://"), "{err}");
            assert!(detail.contains("CA"), "{err}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let registry = TestRegistry::start_with(RegistryOptions {
        auth: RegistryAuth::Htpasswd,
        ..RegistryOptions::default()
    });
    let pushed = registry.push_image("library/app", "v1").await;
    let reference = image(&registry, "library/app", "v1");

    let err = client_for(&registry)
        .resolve(&reference)
        .await
        .expect_err("no credentials");
    assert!(
        matches!(&err, RegistryError::Unauthorized { status: 401, hint, .. } if hint.contains("configure credentials for")),
        "{err:?}"
    );
    eprintln!("htpasswd, no credentials: {err}");

    let (cfg, _dir) = config_for(None);
    let wrong = cfg.clone().with_credentials(
        registry.host(),
        RegistryCredentials::new(USERNAME, "wrong-password"),
    );
    let err = RegistryClient::new(&wrong)
        .expect("client")
        .resolve(&reference)
        .await
        .expect_err("wrong password");
    assert!(
        matches!(&err, RegistryError::Unauthorized { hint, .. } if hint.contains(USERNAME)),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong-password"), "{err}");

    let right = cfg.with_credentials(
        registry.host(),
        RegistryCredentials::new(USERNAME, PASSWORD),
    );
    let client = RegistryClient::new(&right).expect("client");
    let got = client.resolve(&reference).await.expect("resolve");
    assert_eq!((got.digest, got.size), (pushed.digest, pushed.size()));
    let err = client
        .resolve(&image(&registry, "library/app", "v9"))
        .await
        .expect_err("unknown tag behind auth");
    assert!(matches!(err, RegistryError::TagNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn bearer_token_auth() {
    let registry = TestRegistry::start_with(RegistryOptions {
        auth: RegistryAuth::Token,
        ..RegistryOptions::default()
    });
    let pushed = registry.push_image("library/app", "v1").await;
    let reference = image(&registry, "library/app", "v1");

    // No credentials: the token service refuses, the message says what to do.
    let err = client_for(&registry)
        .resolve(&reference)
        .await
        .expect_err("no credentials");
    assert!(
        matches!(&err, RegistryError::Unauthorized { hint, .. } if hint.contains("token service wants credentials")),
        "{err:?}"
    );
    eprintln!("token auth, no credentials: {err}");

    let (cfg, _dir) = config_for(registry.ca_path());
    let wrong = cfg.clone().with_credentials(
        registry.host(),
        RegistryCredentials::new(USERNAME, "wrong-password"),
    );
    let err = RegistryClient::new(&wrong)
        .expect("client")
        .resolve(&reference)
        .await
        .expect_err("wrong password");
    assert!(
        matches!(&err, RegistryError::Unauthorized { hint, .. } if hint.contains("rejected")),
        "{err:?}"
    );

    let right = cfg.with_credentials(
        registry.host(),
        RegistryCredentials::new(USERNAME, PASSWORD),
    );
    let got = RegistryClient::new(&right)
        .expect("client")
        .resolve(&reference)
        .await
        .expect("resolve with a token");
    assert_eq!((got.digest, got.size), (pushed.digest, pushed.size()));

    // Behind token auth, unknown tags and repositories are still told apart.
    let client = RegistryClient::new(&right).expect("client");
    let err = client
        .resolve(&image(&registry, "library/app", "v9"))
        .await
        .expect_err("unknown tag");
    assert!(matches!(err, RegistryError::TagNotFound { .. }), "{err:?}");
    let err = client
        .resolve(&image(&registry, "library/nope", "v1"))
        .await
        .expect_err("unknown repository");
    assert!(
        matches!(err, RegistryError::RepositoryNotFound { .. }),
        "{err:?}"
    );
    let requests = registry.token_requests();
    let pull_app: Vec<_> = requests
        .iter()
        .filter(|r| r.scopes == ["repository:library/app:pull"])
        .collect();
    assert!(!pull_app.is_empty(), "{requests:?}");
    for r in &pull_app {
        assert_eq!(r.service.as_deref(), Some(TOKEN_SERVICE));
    }
    let last = requests.last().expect("token requests");
    assert!(last.granted, "{requests:?}");
    assert_eq!(last.username.as_deref(), Some(USERNAME));

    // The pull token for library/app is reused: no new token request.
    let got = client
        .resolve(&reference)
        .await
        .expect("resolve with the cached token");
    assert_eq!(got.digest, pushed.digest);
    assert_eq!(registry.token_requests().len(), requests.len());
}

// ---- hostile servers ------------------------------------------------------

/// A server on loopback that answers every connection with `response`
/// (after reading the request head) and counts connections.
struct Hostile {
    host: String,
    connections: Arc<AtomicU64>,
    client_gone: Arc<AtomicBool>,
}

#[derive(Clone)]
enum Behaviour {
    Respond(Vec<u8>),
    /// Reads the request, then says nothing for 30 s.
    Hang,
    /// 200 with a chunked body that never ends.
    Endless,
}

async fn hostile(behaviour: Behaviour) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let connections = Arc::new(AtomicU64::new(0));
    let client_gone = Arc::new(AtomicBool::new(false));
    let (count, gone) = (connections.clone(), client_gone.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let behaviour = behaviour.clone();
            let gone = gone.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                    if buf.first() == Some(&0x16) {
                        // A TLS ClientHello: answer as a plain-http server does.
                        let _ = sock
                            .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                }
                match behaviour {
                    Behaviour::Respond(bytes) => {
                        let _ = sock.write_all(&bytes).await;
                        let _ = sock.shutdown().await;
                    }
                    Behaviour::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                    Behaviour::Endless => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {MEDIA_TYPE_OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\n\r\n"
                        );
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = vec![b' '; 64 << 10];
                        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                        framed.extend_from_slice(&chunk);
                        framed.extend_from_slice(b"\r\n");
                        for _ in 0..(1 << 14) {
                            if sock.write_all(&framed).await.is_err() {
                                gone.store(true, Ordering::SeqCst);
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Hostile {
        host,
        connections,
        client_gone,
    }
}

fn manifest_response(content_type: &str, digest_header: Option<&str>, body: &[u8]) -> Behaviour {
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(d) = digest_header {
        head.push_str(&format!("Docker-Content-Digest: {d}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    Behaviour::Respond(bytes)
}

const SOME_MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn hostile_client() -> (RegistryClient, tempfile::TempDir) {
    let (cfg, dir) = config_for(None);
    (
        RegistryClient::new(&cfg).expect("client"),
        dir.expect("dir"),
    )
}

#[tokio::test]
async fn digest_header_mismatch_is_rejected() {
    let lie = format!("sha256:{}", hex::encode(Sha256::digest(b"something else")));
    let server = hostile(manifest_response(
        MEDIA_TYPE_OCI_MANIFEST,
        Some(&lie),
        SOME_MANIFEST,
    ))
    .await;
    let (client, _dir) = hostile_client();
    let reference = ImageRef::new(&format!("{}/library/app", server.host), "v1").expect("ref");
    let err = client.resolve(&reference).await.expect_err("mismatch");
    match &err {
        RegistryError::DigestMismatch {
            header, computed, ..
        } => {
            assert_eq!(header, &lie);
            assert_eq!(
                computed,
                &format!("sha256:{}", hex::encode(Sha256::digest(SOME_MANIFEST)))
            );
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }

    // The same bytes with a truthful header (and with none) are fine.
    let truth = format!("sha256:{}", hex::encode(Sha256::digest(SOME_MANIFEST)));
    for header in [Some(truth.as_str()), None] {
        let server = hostile(manifest_response(
            MEDIA_TYPE_OCI_MANIFEST,
            header,
            SOME_MANIFEST,
        ))
        .await;
        let reference = ImageRef::new(&format!("{}/library/app", server.host), "v1").expect("ref");
        let got = client.resolve(&reference).await.expect("honest server");
        assert_eq!(got.size, SOME_MANIFEST.len() as u64);
    }
}

#[tokio::test]
async fn endless_manifest_is_cut_off_at_the_limit() {
    let server = hostile(Behaviour::Endless).await;
    let (client, _dir) = hostile_client();
    let reference = ImageRef::new(&format!("{}/library/app", server.host), "v1").expect("ref");
    let started = Instant::now();
    let err = client.resolve(&reference).await.expect_err("endless");
    assert!(
        matches!(err, RegistryError::TooLarge { limit, .. } if limit == 4 << 20),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The server notices the client hung up long before its 1 GiB.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.client_gone.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.client_gone.load(Ordering::SeqCst));
}

#[tokio::test]
async fn unsignable_or_inconsistent_manifests_are_refused() {
    let (client, _dir) = hostile_client();
    let schema1 =
        br#"{"schemaVersion":1,"name":"library/app","tag":"v1","fsLayers":[],"signatures":[]}"#;
    let cases: Vec<(&str, &[u8], &str)> = vec![
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            schema1,
            "schema 1",
        ),
        ("text/html", b"<html>not a manifest</html>", "not a JSON"),
        (
            MEDIA_TYPE_OCI_INDEX,
            SOME_MANIFEST,
            "disagrees with the manifest's mediaType",
        ),
    ];
    for (content_type, body, expected) in cases {
        let server = hostile(manifest_response(content_type, None, body)).await;
        let reference = ImageRef::new(&format!("{}/library/app", server.host), "v1").expect("ref");
        let err = client.resolve(&reference).await.expect_err(content_type);
        assert!(err.to_string().contains(expected), "{content_type}: {err}");
    }
}

#[tokio::test]
async fn token_realm_over_plain_http_to_a_remote_host_is_refused() {
    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
    let challenge = format!(
        "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"http://auth.example.com/token\",service=\"x\",scope=\"repository:library/app:pull\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let server = hostile(Behaviour::Respond(challenge.into_bytes())).await;
    let (cfg, _dir) = config_for(None);
    let cfg = cfg.with_credentials(
        server.host.clone(),
        RegistryCredentials::new(USERNAME, PASSWORD),
    );
    let client = RegistryClient::new(&cfg).expect("client");
    let reference = ImageRef::new(&format!("{}/library/app", server.host), "v1").expect("ref");
    let err = client.resolve(&reference).await.expect_err("http realm");
    assert!(
        matches!(&err, RegistryError::InsecureRefused { host, .. } if host == "auth.example.com"),
        "{err:?}"
    );
    // One connection for the https attempt, one for plain http: no more.
    assert!(server.connections.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn a_silent_registry_times_out() {
    let server = hostile(Behaviour::Hang).await;
    let (mut cfg, _dir) = config_for(None);
    cfg.timeout = Duration::from_secs(1);
    let client = RegistryClient::new(&cfg).expect("client");
    let reference = ImageRef::new(&format!("{}/library/app", server.host), "v1").expect("ref");
    let started = Instant::now();
    let err = client.resolve(&reference).await.expect_err("silence");
    assert!(
        matches!(
            err,
            RegistryError::Timeout {
                phase: "request",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_harness_kills_the_registry_on_drop() {
    let registry = TestRegistry::start();
    let pid = registry.pid();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists());
    let dir = registry.dir().to_owned();
    drop(registry);
    assert!(!proc_dir.exists(), "docker-registry {pid} still running");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

/// A registry on loopback whose tokens are good for one request only, so a
/// cached token is always refused on reuse.
#[tokio::test]
async fn a_refused_cached_token_is_replaced() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let issued = Arc::new(AtomicU64::new(0));
    let used = Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    let (issued2, used2, host2) = (issued.clone(), used.clone(), host.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (issued, used, host) = (issued2.clone(), used2.clone(), host2.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                    if buf.first() == Some(&0x16) {
                        let _ = sock
                            .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let bearer = head
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: Bearer "))
                    .or_else(|| {
                        head.lines()
                            .find_map(|l| l.strip_prefix("Authorization: Bearer "))
                    })
                    .map(|t| t.trim().to_owned());
                let response = if head.starts_with("GET /token") {
                    let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                    let body = format!(r#"{{"token":"tok-{n}","expires_in":300}}"#);
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .into_bytes()
                } else if bearer.as_ref().is_some_and(|t| {
                    used.lock()
                        .map(|mut u| u.insert(t.clone()))
                        .unwrap_or(false)
                }) {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {MEDIA_TYPE_OCI_MANIFEST}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        SOME_MANIFEST.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(SOME_MANIFEST);
                    r
                } else {
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"http://{host}/token\",service=\"once\",scope=\"repository:library/app:pull\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .into_bytes()
                };
                let _ = sock.write_all(&response).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    let (client, _dir) = hostile_client();
    let reference = ImageRef::new(&format!("{host}/library/app"), "v1").expect("ref");
    for round in 1..=3u64 {
        let got = client
            .resolve(&reference)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(got.size, SOME_MANIFEST.len() as u64);
        assert_eq!(issued.load(Ordering::SeqCst), round);
    }
}

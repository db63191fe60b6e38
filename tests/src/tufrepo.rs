//! Crafted Notary v1 repositories and a hostile notary-server that serves
//! them over HTTP on loopback.
//!
//! [`CraftedRepo`] signs every role with software P-256 keys (tests only)
//! through the `tufd-tuf` crate, so each role can be given any version,
//! expiry, key or content; [`HostileNotary`] serves files by path and can be
//! told to answer anything for any path (garbage, an endless body, a stall).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tufd_tuf::{
    DelegationRole, DigestSigner, Key, RoleName, RoleSigner, Root, SignError, Signed, Snapshot,
    TargetMeta, Targets, Timestamp, build_root_certificate, sign_role,
};

/// A software P-256 key standing in for a token key.
pub struct SoftKey(p256::ecdsa::SigningKey);

impl SoftKey {
    /// A random key.
    pub fn random() -> Self {
        let mut seed = [0u8; 32];
        loop {
            rand_bytes(&mut seed);
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&seed) {
                return SoftKey(k);
            }
        }
    }

    /// A key read from a PEM file (SEC1 `EC PRIVATE KEY` or PKCS#8), e.g.
    /// one openssl made.
    pub fn from_pem_file(path: &std::path::Path) -> Self {
        use p256::pkcs8::DecodePrivateKey;
        let text = std::fs::read_to_string(path).expect("key file");
        let key = p256::SecretKey::from_sec1_pem(&text)
            .or_else(|_| p256::SecretKey::from_pkcs8_pem(&text))
            .expect("P-256 private key");
        SoftKey(key.into())
    }

    /// Its public key as a TUF `ecdsa` key.
    pub fn public(&self) -> Key {
        Key::ecdsa(self.spki_der())
    }

    /// A self-signed root certificate key (`ecdsa-x509`) with CN = `cn`,
    /// valid from `not_before` for ten years.
    pub fn root_key(&self, cn: &str, not_before: OffsetDateTime) -> Key {
        let der = build_root_certificate(cn, self, not_before).expect("root certificate");
        Key::ecdsa_x509(&der)
    }
}

fn rand_bytes(buf: &mut [u8]) {
    let mut f = std::fs::File::open("/dev/urandom").expect("urandom");
    f.read_exact(buf).expect("random bytes");
}

impl DigestSigner for SoftKey {
    fn spki_der(&self) -> Vec<u8> {
        self.0
            .verifying_key()
            .to_public_key_der()
            .expect("spki")
            .into_vec()
    }
    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<[u8; 64], SignError> {
        let sig: p256::ecdsa::Signature = self.0.sign_prehash(digest).map_err(SignError::new)?;
        Ok(sig.to_bytes().into())
    }
}

/// One delegation of a crafted repository.
pub struct CraftedDelegation {
    /// Full role name, e.g. `targets/releases`.
    pub name: String,
    pub key: SoftKey,
    pub paths: Vec<String>,
    pub version: u64,
    pub expires: OffsetDateTime,
    pub targets: BTreeMap<String, TargetMeta>,
}

/// A repository whose every role the test controls.
pub struct CraftedRepo {
    pub gun: String,
    pub root_key: SoftKey,
    /// The root key object (certificate) in root.json.
    pub root_cert: Key,
    pub targets_key: SoftKey,
    pub snapshot_key: SoftKey,
    pub timestamp_key: SoftKey,
    pub root_version: u64,
    pub root_expires: OffsetDateTime,
    pub targets_version: u64,
    pub targets_expires: OffsetDateTime,
    pub snapshot_version: u64,
    pub snapshot_expires: OffsetDateTime,
    pub timestamp_version: u64,
    pub timestamp_expires: OffsetDateTime,
    /// Targets signed directly in targets.json.
    pub targets: BTreeMap<String, TargetMeta>,
    /// Delegations of targets, in order.
    pub delegations: Vec<CraftedDelegation>,
    /// Earlier root files by version (for rotations).
    pub old_roots: BTreeMap<u64, Vec<u8>>,
    /// After a rotation: the previous root key, listed in root.json and
    /// (when it signs the rotation) signing root.json too.
    pub previous_root: Option<(Key, Option<SoftKey>)>,
}

/// What [`CraftedRepo::sign`] produced: the exact bytes of every file.
#[derive(Clone)]
pub struct SignedFiles {
    pub root: Vec<u8>,
    pub targets: Vec<u8>,
    pub snapshot: Vec<u8>,
    pub timestamp: Vec<u8>,
    pub delegations: BTreeMap<String, Vec<u8>>,
}

/// A target entry for a manifest digest and size.
pub fn target(digest: [u8; 32], size: u64) -> TargetMeta {
    TargetMeta::sha256_only(digest, size)
}

impl CraftedRepo {
    /// A repository for `gun` with a targets/releases delegation (paths
    /// `[""]`) and fresh keys, every role at version 1, valid for a year.
    pub fn new(gun: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        let year = now + time::Duration::days(365);
        let root_key = SoftKey::random();
        let root_cert = root_key.root_key(gun, now - time::Duration::hours(1));
        CraftedRepo {
            gun: gun.to_owned(),
            root_key,
            root_cert,
            targets_key: SoftKey::random(),
            snapshot_key: SoftKey::random(),
            timestamp_key: SoftKey::random(),
            root_version: 1,
            root_expires: now + time::Duration::days(3650),
            targets_version: 1,
            targets_expires: year,
            snapshot_version: 1,
            snapshot_expires: year,
            timestamp_version: 1,
            timestamp_expires: year,
            targets: BTreeMap::new(),
            delegations: vec![CraftedDelegation {
                name: "targets/releases".into(),
                key: SoftKey::random(),
                paths: vec![String::new()],
                version: 1,
                expires: year,
                targets: BTreeMap::new(),
            }],
            old_roots: BTreeMap::new(),
            previous_root: None,
        }
    }

    /// The delegation named `name`.
    pub fn delegation(&mut self, name: &str) -> &mut CraftedDelegation {
        self.delegations
            .iter_mut()
            .find(|d| d.name == name)
            .expect("delegation")
    }

    /// Adds a delegation of targets with its own key.
    pub fn add_delegation(&mut self, name: &str, paths: &[&str]) {
        self.delegations.push(CraftedDelegation {
            name: name.into(),
            key: SoftKey::random(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            version: 1,
            expires: OffsetDateTime::now_utc() + time::Duration::days(365),
            targets: BTreeMap::new(),
        });
    }

    /// root.json's contents.
    pub fn root_body(&self) -> Root {
        let mut root = Root::new(self.root_expires);
        root.version = self.root_version;
        root.set_role_keys(&RoleName::Root, std::slice::from_ref(&self.root_cert))
            .unwrap();
        root.set_role_keys(&RoleName::Targets, &[self.targets_key.public()])
            .unwrap();
        root.set_role_keys(&RoleName::Snapshot, &[self.snapshot_key.public()])
            .unwrap();
        root.set_role_keys(&RoleName::Timestamp, &[self.timestamp_key.public()])
            .unwrap();
        root
    }

    /// targets.json's contents.
    pub fn targets_body(&self) -> Targets {
        let mut t = Targets::new(self.targets_expires);
        t.version = self.targets_version;
        t.targets = self.targets.clone();
        for d in &self.delegations {
            let k = d.key.public();
            t.delegations.keys.insert(k.id(), k.clone());
            t.delegations.roles.push(DelegationRole {
                keyids: vec![k.id()],
                name: d.name.clone(),
                paths: d.paths.clone(),
                threshold: 1,
            });
        }
        t
    }

    /// Signs every role as the repository stands.
    pub fn sign(&self) -> SignedFiles {
        let mut body = self.root_body();
        let mut signers = vec![RoleSigner::new(&self.root_cert, &self.root_key)];
        if let Some((cert, key)) = &self.previous_root {
            // As notary: the old root key stays listed in keys.
            body.keys.insert(cert.id(), cert.clone());
            if let Some(key) = key {
                signers.push(RoleSigner::new(cert, key));
            }
        }
        let root = sign_role("root", body, &signers).unwrap();
        let tk = self.targets_key.public();
        let targets = sign_role(
            "targets",
            self.targets_body(),
            &[RoleSigner::new(&tk, &self.targets_key)],
        )
        .unwrap();
        let mut delegations = BTreeMap::new();
        for d in &self.delegations {
            let mut t = Targets::new(d.expires);
            t.version = d.version;
            t.targets = d.targets.clone();
            let k = d.key.public();
            let s = sign_role(&d.name, t, &[RoleSigner::new(&k, &d.key)]).unwrap();
            delegations.insert(d.name.clone(), s.bytes().to_vec());
        }
        self.seal(root.bytes().to_vec(), targets.bytes().to_vec(), delegations)
    }

    /// Snapshot and timestamp (signed with the right keys) over whatever
    /// bytes are given as root, targets and delegations.
    pub fn seal(
        &self,
        root: Vec<u8>,
        targets: Vec<u8>,
        delegations: BTreeMap<String, Vec<u8>>,
    ) -> SignedFiles {
        let mut snapshot = Snapshot::new(self.snapshot_expires);
        snapshot.version = self.snapshot_version;
        snapshot
            .meta
            .insert("root".into(), tufd_tuf::FileMeta::of(&root));
        snapshot
            .meta
            .insert("targets".into(), tufd_tuf::FileMeta::of(&targets));
        for (name, bytes) in &delegations {
            snapshot
                .meta
                .insert(name.clone(), tufd_tuf::FileMeta::of(bytes));
        }
        let sk = self.snapshot_key.public();
        let snapshot = sign_role(
            "snapshot",
            snapshot,
            &[RoleSigner::new(&sk, &self.snapshot_key)],
        )
        .unwrap();
        let timestamp = self.timestamp_over(snapshot.bytes());
        SignedFiles {
            root,
            targets,
            snapshot: snapshot.bytes().to_vec(),
            timestamp,
            delegations,
        }
    }

    /// A snapshot (signed with the snapshot key) over exact metadata.
    pub fn snapshot_over(&self, meta: BTreeMap<String, tufd_tuf::FileMeta>) -> Vec<u8> {
        let mut snapshot = Snapshot::new(self.snapshot_expires);
        snapshot.version = self.snapshot_version;
        snapshot.meta = meta;
        let sk = self.snapshot_key.public();
        sign_role(
            "snapshot",
            snapshot,
            &[RoleSigner::new(&sk, &self.snapshot_key)],
        )
        .unwrap()
        .bytes()
        .to_vec()
    }

    /// Serves exact `files` for this repository (no re-signing).
    pub fn serve_files(&self, server: &HostileNotary, files: &SignedFiles) {
        server.serve(&self.gun, files, &self.old_roots);
    }

    /// A timestamp listing `snapshot` bytes.
    pub fn timestamp_over(&self, snapshot: &[u8]) -> Vec<u8> {
        let mut timestamp = Timestamp::new(self.timestamp_expires);
        timestamp.version = self.timestamp_version;
        timestamp
            .meta
            .insert("snapshot".into(), tufd_tuf::FileMeta::of(snapshot));
        let tk = self.timestamp_key.public();
        sign_role(
            "timestamp",
            timestamp,
            &[RoleSigner::new(&tk, &self.timestamp_key)],
        )
        .unwrap()
        .bytes()
        .to_vec()
    }

    /// Signs and serves the repository on `server`.
    pub fn publish(&self, server: &HostileNotary) -> SignedFiles {
        let files = self.sign();
        server.serve(&self.gun, &files, &self.old_roots);
        files
    }

    /// Rotates the root key: the new root (version + 1) is signed by the
    /// new key, and by the old one when `signed_by_old`. The old root stays
    /// served as `<version>.root.json`.
    pub fn rotate_root(&mut self, signed_by_old: bool) {
        self.old_roots.insert(self.root_version, self.sign().root);
        let old_key = std::mem::replace(&mut self.root_key, SoftKey::random());
        let old_cert = std::mem::replace(
            &mut self.root_cert,
            Key::ecdsa(Vec::new()), // replaced below
        );
        self.root_cert = self.root_key.root_key(
            &self.gun,
            OffsetDateTime::now_utc() - time::Duration::hours(1),
        );
        self.root_version += 1;
        self.previous_root = Some((old_cert, signed_by_old.then_some(old_key)));
    }
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What the hostile server answers for a path.
#[derive(Clone)]
pub enum Reply {
    /// 200 with these bytes.
    Bytes(Vec<u8>),
    /// A chunked 200 that never ends.
    Endless,
    /// Waits this long, then answers 200 with these bytes.
    Slow(Duration, Vec<u8>),
}

/// A notary-server stand-in on loopback (plain HTTP) that answers whatever
/// it is told to, per path; anything else is a notary-style 404.
pub struct HostileNotary {
    url: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    /// Paths requested, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl HostileNotary {
    /// Starts the server on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r2, q2) = (routes.clone(), requests.clone());
        std::thread::spawn(move || {
            for sock in listener.incoming().flatten() {
                let (routes, requests) = (r2.clone(), q2.clone());
                std::thread::spawn(move || handle(sock, &routes, &requests));
            }
        });
        HostileNotary {
            url,
            routes,
            requests,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers `reply` for `/v2/<gun>/_trust/tuf/<file>`.
    pub fn set(&self, gun: &str, file: &str, reply: Reply) {
        self.routes
            .lock()
            .unwrap()
            .insert(format!("/v2/{gun}/_trust/tuf/{file}"), reply);
    }

    /// Serves `files` as notary-server does: current files by name and by
    /// checksum, roots by version.
    pub fn serve(&self, gun: &str, files: &SignedFiles, old_roots: &BTreeMap<u64, Vec<u8>>) {
        let put = |name: &str, bytes: &[u8], checksummed: bool| {
            self.set(gun, &format!("{name}.json"), Reply::Bytes(bytes.to_vec()));
            if checksummed {
                self.set(
                    gun,
                    &format!("{name}.{}.json", sha_hex(bytes)),
                    Reply::Bytes(bytes.to_vec()),
                );
            }
        };
        put("root", &files.root, true);
        put("targets", &files.targets, true);
        put("snapshot", &files.snapshot, true);
        put("timestamp", &files.timestamp, false);
        for (name, bytes) in &files.delegations {
            put(name, bytes, true);
        }
        for (v, bytes) in old_roots {
            self.set(gun, &format!("{v}.root.json"), Reply::Bytes(bytes.clone()));
        }
        if let Ok(r) = Signed::<Root>::from_role_bytes("root", &files.root) {
            let v = r.signed().version;
            self.set(
                gun,
                &format!("{v}.root.json"),
                Reply::Bytes(files.root.clone()),
            );
        }
    }

    /// Forgets every file of `gun`.
    pub fn clear(&self, gun: &str) {
        let prefix = format!("/v2/{gun}/_trust/");
        self.routes
            .lock()
            .unwrap()
            .retain(|k, _| !k.starts_with(&prefix));
    }
}

fn handle(
    mut sock: TcpStream,
    routes: &Mutex<HashMap<String, Reply>>,
    requests: &Mutex<Vec<String>>,
) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    requests.lock().unwrap().push(path.clone());
    let reply = routes.lock().unwrap().get(&path).cloned();
    let ok = |sock: &mut TcpStream, body: &[u8]| {
        let _ = sock.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        let _ = sock.write_all(body);
    };
    match reply {
        Some(Reply::Bytes(b)) => ok(&mut sock, &b),
        Some(Reply::Slow(d, b)) => {
            std::thread::sleep(d);
            ok(&mut sock, &b);
        }
        Some(Reply::Endless) => {
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let chunk = vec![b'{'; 64 << 10];
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(&chunk);
            framed.extend_from_slice(b"\r\n");
            for _ in 0..(1 << 14) {
                if sock.write_all(&framed).is_err() {
                    return;
                }
            }
        }
        None => {
            let body = br#"{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.","detail":null}]}"#;
            let _ = sock.write_all(
                format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = sock.write_all(body);
        }
    }
}

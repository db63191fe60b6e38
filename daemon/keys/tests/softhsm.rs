//! The PKCS#11 store against a real SoftHSM2 token.

mod support;

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use support::*;
use tufd_keys::pin::PinSource;
use tufd_keys::{KeyError, KeyLabel, KeyOrigin, KeyStore, TokenStatus};

fn verify(spki: &[u8], digest: &[u8; 32], sig: &[u8; 64]) -> bool {
    let key = p256::PublicKey::from_public_key_der(spki).unwrap();
    let vk = p256::ecdsa::VerifyingKey::from(&key);
    let sig = p256::ecdsa::Signature::from_slice(sig).unwrap();
    vk.verify_prehash(digest, &sig).is_ok()
}

#[test]
fn generate_sign_list_delete() {
    let label = new_token("gen");
    let store = store(&label, env_pin(), 2);
    let rec = store
        .generate(&KeyLabel::new("alice", "").unwrap())
        .unwrap();
    assert_eq!(rec.origin, KeyOrigin::Generated);
    assert!(rec.sensitive && !rec.extractable);
    assert_eq!(rec.id, tufd_tuf::keyid::ecdsa_key_id(&rec.spki_der));

    let digest: [u8; 32] = Sha256::digest(b"hello").into();
    let sig = store.sign_digest(&rec.id, &digest).unwrap();
    assert!(verify(&rec.spki_der, &digest, &sig));

    // Same name again is refused, nothing is created.
    let again = store.generate(&KeyLabel::new("alice", "").unwrap());
    assert!(
        matches!(again, Err(KeyError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(store.list().unwrap(), vec![rec.clone()]);

    // A second store on the same token (a restarted daemon) finds the key.
    let fresh = support::store(&label, env_pin(), 1);
    assert_eq!(fresh.list().unwrap(), vec![rec.clone()]);

    let deleted = store.delete(&rec.id).unwrap();
    assert_eq!(deleted.id, rec.id);
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(
        store.sign_digest(&rec.id, &digest),
        Err(KeyError::KeyNotFound { .. })
    ));
}

#[test]
fn generated_private_key_is_not_readable() {
    let label = new_token("sens");
    let store = store(&label, env_pin(), 1);
    let rec = store.generate(&KeyLabel::new("bob", "").unwrap()).unwrap();

    let (ctx, slot) = token_slot(&label);
    let session = ctx.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&SecretString::from(PIN.to_owned())));
    let handles = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(hex::decode(&rec.id).unwrap()),
        ])
        .unwrap();
    assert_eq!(handles.len(), 1);
    let attrs = session
        .get_attribute_info(
            handles[0],
            &[AttributeType::Value, AttributeType::Sensitive],
        )
        .unwrap();
    assert!(
        matches!(attrs[0], cryptoki::object::AttributeInfo::Sensitive),
        "CKA_VALUE must be unreadable, got {:?}",
        attrs[0]
    );
}

#[test]
fn imported_key_signs_and_rejects_duplicates() {
    let label = new_token("imp");
    let store = store(&label, env_pin(), 1);
    let secret = p256::SecretKey::from_slice(&[42u8; 32]).unwrap();
    let name = KeyLabel::new("carol", "").unwrap();
    let rec = store.import(&name, &secret).unwrap();
    assert_eq!(rec.origin, KeyOrigin::Imported);
    assert!(rec.sensitive && !rec.extractable);

    let digest: [u8; 32] = Sha256::digest(b"x").into();
    let sig = store.sign_digest(&rec.id, &digest).unwrap();
    let vk = p256::ecdsa::VerifyingKey::from(&secret.public_key());
    vk.verify_prehash(&digest, &p256::ecdsa::Signature::from_slice(&sig).unwrap())
        .unwrap();

    let dup = store.import(&KeyLabel::new("other", "").unwrap(), &secret);
    assert!(
        matches!(dup, Err(KeyError::AlreadyExists { .. })),
        "{dup:?}"
    );
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn wrong_pin_is_reported_and_never_retried() {
    let label = new_token("pin");
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, "0000\n").unwrap();
    std::fs::set_permissions(
        &pin_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let store = store(&label, PinSource::File(pin_file.clone()), 1);
    let err = store.list().unwrap_err();
    assert!(matches!(err, KeyError::PinRejected { .. }), "{err}");
    assert!(
        err.to_string().contains("rejected the configured PIN"),
        "{err}"
    );
    assert!(matches!(store.status(), TokenStatus::PinRejected { .. }));
    // Same PIN: refused without asking the token again.
    assert!(matches!(store.list(), Err(KeyError::PinRejected { .. })));
    // A corrected PIN source is used.
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn unknown_label_and_missing_module() {
    let _ = new_token("other");
    let store = store("no-such-token", env_pin(), 1);
    let err = store.list().unwrap_err();
    assert!(matches!(err, KeyError::TokenNotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("no token with label 'no-such-token'"),
        "{err}"
    );

    let missing = tufd_keys::pkcs11::Pkcs11Store::new(
        tufd_keys::pkcs11::Pkcs11Config {
            name: "hsm".into(),
            module: "/nonexistent/libpkcs11.so".into(),
            selector: tufd_keys::pkcs11::TokenSelector::Label("x".into()),
            pin: env_pin(),
            max_sessions: 1,
        },
        modules(),
        tufd_tuf::keyid::ecdsa_key_id,
    );
    let err = missing.list().unwrap_err();
    assert!(matches!(err, KeyError::ModuleLoad { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/libpkcs11.so"),
        "{err}"
    );
}

#[test]
fn parallel_signers_share_a_bounded_pool() {
    let label = new_token("par");
    let store = std::sync::Arc::new(store(&label, env_pin(), 2));
    let rec = store.generate(&KeyLabel::new("ci", "").unwrap()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            let rec = rec.clone();
            std::thread::spawn(move || {
                for i in 0..50u32 {
                    let digest: [u8; 32] = Sha256::digest(format!("{t}-{i}")).into();
                    let sig = store.sign_digest(&rec.id, &digest).unwrap();
                    assert!(verify(&rec.spki_der, &digest, &sig));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn reads_the_key_file_docker_writes() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/docker");
    let text = std::fs::read_to_string(format!("{dir}/alice.key")).unwrap();
    let pass = SecretString::from("secretpass".to_owned());
    let file = tufd_keys::import::parse_key_file(&text, Some(&pass)).unwrap();
    assert_eq!(file.role.as_deref(), Some("alice"));
    let public = std::fs::read_to_string(format!("{dir}/alice.pub")).unwrap();
    let block = pem::parse(public).unwrap();
    let expected = p256::PublicKey::from_public_key_der(block.contents()).unwrap();
    assert_eq!(file.key.public_key(), expected);

    let wrong = SecretString::from("nope".to_owned());
    assert!(matches!(
        tufd_keys::import::parse_key_file(&text, Some(&wrong)),
        Err(tufd_keys::import::ImportError::WrongPassphrase)
    ));
    assert!(matches!(
        tufd_keys::import::parse_key_file(&text, None),
        Err(tufd_keys::import::ImportError::PassphraseRequired)
    ));
}

/// A token with 200 tufd keys (5 generated by the store, the rest
/// created in bulk) and other applications' objects: a store
/// opened afresh (a restarted daemon) indexes every key with its name,
/// ID and public key through the batched scan, skipping the rest; while
/// a slow scan runs, `status` answers at once and says "scanning".
#[test]
fn indexes_200_keys_and_reports_a_running_scan() {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::KeyType;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    const KEYS: usize = 200;
    let label = new_token("many");
    let store = store(&label, env_pin(), 1);
    let mut made = Vec::new();
    let names: Vec<KeyLabel> = (0..KEYS)
        .map(|i| KeyLabel::new(&format!("k{i}"), &format!("example.com/repo{}", i % 7)).unwrap())
        .collect();
    for name in &names[..5] {
        made.push(store.generate(name).unwrap());
    }
    made.extend(support::create_keys(&label, &names[5..]));
    // Objects that are not tufd keys: another application's EC pair, and
    // a tufd-labelled private key without its public half.
    {
        let (ctx, slot) = token_slot(&label);
        let session = ctx.open_rw_session(slot).unwrap();
        let _ = session.login(UserType::User, Some(&PIN.to_owned().into()));
        let params = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let pair = |label: &[u8], id: &[u8]| {
            session
                .generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &[
                        Attribute::Token(true),
                        Attribute::EcParams(params.clone()),
                        Attribute::Label(label.to_vec()),
                        Attribute::Id(id.to_vec()),
                    ],
                    &[
                        Attribute::Token(true),
                        Attribute::Private(true),
                        Attribute::Sign(true),
                        Attribute::KeyType(KeyType::EC),
                        Attribute::Label(label.to_vec()),
                        Attribute::Id(id.to_vec()),
                    ],
                )
                .unwrap()
        };
        pair(b"someone else's key", b"\x01\x02");
        let (public, _) = pair(b"tufd:orphan", b"\x03\x04");
        session.destroy_object(public).unwrap();
    }
    made.sort_by(|a, b| a.label.cmp(&b.label).then(a.id.cmp(&b.id)));

    // A restarted daemon's store, whose scan is held open until released.
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let entered_tx = std::sync::Mutex::new(entered_tx);
    let fresh = std::sync::Arc::new(support::store(&label, env_pin(), 1).with_scan_hook(
        std::sync::Arc::new(move || {
            let _ = entered_tx.lock().unwrap().send(());
            let _ = release_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(30));
        }),
    ));
    let scanner = {
        let fresh = fresh.clone();
        std::thread::spawn(move || fresh.list())
    };
    entered_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the scan starts");
    let asked = Instant::now();
    match fresh.status() {
        TokenStatus::Scanning {
            description,
            reason,
        } => {
            assert_eq!(description.label, label);
            assert!(reason.contains("being scanned"), "{reason}");
        }
        other => panic!("status during a scan: {other:?}"),
    }
    assert!(asked.elapsed() < Duration::from_secs(5));
    release_tx.send(()).unwrap();
    let listed = scanner.join().unwrap().unwrap();
    assert_eq!(listed.len(), KEYS);
    assert_eq!(listed, made, "names, IDs and public keys as generated");
    for k in &listed {
        assert_eq!(k.id, tufd_tuf::keyid::ecdsa_key_id(&k.spki_der));
    }
    match fresh.status() {
        TokenStatus::Ready { key_count, .. } => assert_eq!(key_count, KEYS),
        other => panic!("status after the scan: {other:?}"),
    }
    // The CKA_IDs written are the keys' IDs: each key signs from the index.
    let digest: [u8; 32] = Sha256::digest(b"many").into();
    for k in [&listed[0], &listed[KEYS / 2], &listed[KEYS - 1]] {
        let sig = fresh.sign_digest(&k.id, &digest).unwrap();
        assert!(verify(&k.spki_der, &digest, &sig));
    }
}

#[test]
fn sign_digests_returns_only_verified_signatures_in_order() {
    let label = new_token("batch");
    // One session: the batch signs on it while another thread verifies.
    let store = store(&label, env_pin(), 1);
    let a = store
        .generate(&KeyLabel::new("alice", "").unwrap())
        .unwrap();
    let b = store.generate(&KeyLabel::new("bob", "").unwrap()).unwrap();
    let digest = |i: usize| -> [u8; 32] { Sha256::digest(i.to_le_bytes()).into() };
    // More than one session checkout's worth (256), keys interleaved.
    let jobs: Vec<(&str, [u8; 32])> = (0..300)
        .map(|i| (if i % 3 == 0 { &b.id } else { &a.id }.as_str(), digest(i)))
        .collect();
    let sigs = store.sign_digests(&jobs).unwrap();
    assert_eq!(sigs.len(), jobs.len());
    for (i, ((id, d), sig)) in jobs.iter().zip(&sigs).enumerate() {
        let spki = if *id == a.id {
            &a.spki_der
        } else {
            &b.spki_der
        };
        assert!(verify(spki, d, sig), "signature {i} verifies");
        assert!(
            !verify(spki, &digest(i + 1), sig),
            "signature {i} is for its own digest"
        );
    }
    assert!(store.sign_digests(&[]).unwrap().is_empty());

    // A key whose signatures never verify (a faulty token) in the middle
    // of a batch: the whole call fails, naming it; nothing is returned.
    let faulty = create_faulty_key(&label, &KeyLabel::new("mallory", "").unwrap());
    let store = support::store(&label, env_pin(), 1);
    let mut jobs = jobs;
    jobs[150].0 = &faulty.id;
    match store.sign_digests(&jobs) {
        Err(KeyError::BadSignature { key_id, .. }) => assert_eq!(key_id, faulty.id),
        other => panic!("expected BadSignature, got {other:?}"),
    }
    assert!(matches!(
        store.sign_digest(&faulty.id, &digest(0)),
        Err(KeyError::BadSignature { .. })
    ));
    // The session went back to the pool: the good keys still sign.
    jobs[150].0 = &a.id;
    assert_eq!(store.sign_digests(&jobs[140..160]).unwrap().len(), 20);
}

#[test]
fn signing_recovers_a_lost_login() {
    let label = new_token("relog");
    let store = store(&label, env_pin(), 1);
    let key = store
        .generate(&KeyLabel::new("alice", "").unwrap())
        .unwrap();
    let jobs: Vec<(&str, [u8; 32])> = (0..40u8).map(|i| (key.id.as_str(), [i; 32])).collect();
    store.sign_digests(&jobs).unwrap();
    // The pooled session loses its login (SoftHSM2 then calls the key
    // handle invalid): the batch logs in again on a new session and still
    // returns every signature, each verified.
    logout(&label);
    let sigs = store.sign_digests(&jobs).unwrap();
    for ((_, d), sig) in jobs.iter().zip(&sigs) {
        assert!(verify(&key.spki_der, d, sig));
    }
    // The same for a single signature.
    logout(&label);
    let sig = store.sign_digest(&key.id, &[7u8; 32]).unwrap();
    assert!(verify(&key.spki_der, &[7u8; 32], &sig));
}

#[test]
fn keys_are_listed_from_the_index_only_while_it_is_current() {
    let label = new_token("held");
    let store = store(&label, PinSource::Prompt, 1)
        .with_pin_cache(Some(std::time::Duration::from_millis(400)));
    // Locked, nothing indexed: no answer without the token.
    assert_eq!(store.list_held(), None);
    store.unlock(SecretString::from(PIN)).unwrap();
    let a = store
        .generate(&KeyLabel::new("alice", "").unwrap())
        .unwrap();
    store.generate(&KeyLabel::new("bob", "").unwrap()).unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(store.list_held(), Some(listed));
    // A deleted key is gone from the answer too.
    store.delete(&a.id).unwrap();
    let after = store.list().unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(store.list_held(), Some(after));
    // The unlocked PIN runs out: the index no longer answers (the token
    // is logged out by the next call that reaches it, which then fails).
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(store.list_held(), None);
    assert!(store.list().is_err());
    assert_eq!(store.list_held(), None);
}

/// Whether token `label` reports a wrong PIN since its last login
/// (`CKF_USER_PIN_COUNT_LOW`) or fewer (`CKF_USER_PIN_FINAL_TRY`, locked).
fn pin_tries_spent(label: &str) -> bool {
    let (ctx, slot) = token_slot(label);
    let info = ctx.get_token_info(slot).unwrap();
    info.user_pin_count_low() || info.user_pin_final_try() || info.user_pin_locked()
}

#[test]
fn a_wrong_unlock_pin_racing_a_login_is_refused_and_never_presented() {
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    let label = new_token("race");
    // The unlock request stops after its session is open, before it takes
    // the PIN gate; an operation logs in with the configured PIN then.
    let (paused_tx, paused_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (paused_tx, go_rx) = (Mutex::new(paused_tx), Mutex::new(go_rx));
    let store = Arc::new(
        store(&label, env_pin(), 1).with_unlock_hook(Arc::new(move || {
            let _ = paused_tx.lock().unwrap().send(());
            let _ = go_rx.lock().unwrap().recv();
        })),
    );
    assert!(!pin_tries_spent(&label));
    let (unlocked, key) = std::thread::scope(|scope| {
        let unlock = scope.spawn(|| store.unlock(SecretString::from("999999")));
        paused_rx.recv().unwrap();
        let key = store
            .generate(&KeyLabel::new("alice", "").unwrap())
            .unwrap();
        go_tx.send(()).unwrap();
        (unlock.join().unwrap(), key)
    });
    // Later unlocks run through the hook.
    drop(go_tx);
    // The token was logged in by then: the wrong PIN is refused as for any
    // ready token (what the daemon audits), not taken as accepted.
    eprintln!("unlock: {unlocked:?}");
    assert!(!pin_tries_spent(&label), "no wrong PIN reached the token");
    // The login is lost: the store logs in again with the configured PIN,
    // not with the refused unlock PIN, and no try is spent.
    logout(&label);
    eprintln!(
        "relogin: {:?} spent={}",
        store.sign_digest(&key.id, &[9u8; 32]),
        pin_tries_spent(&label)
    );
    let sig = store.sign_digest(&key.id, &[9u8; 32]).unwrap();
    assert!(verify(&key.spki_der, &[9u8; 32], &sig));
    assert!(
        !pin_tries_spent(&label),
        "the refused unlock PIN was presented on re-login"
    );
    // The same wrong PIN again is still refused, and the right one only
    // extends the cache.
    assert!(matches!(
        store.unlock(SecretString::from("999999")),
        Err(KeyError::AlreadyUnlocked { .. })
    ));
    store.unlock(SecretString::from(PIN)).unwrap();
    assert!(!pin_tries_spent(&label));
}

/// The token loses its login (another program logs out) while the pool
/// holds several idle sessions, all of which lose it with it: the next
/// operations all succeed, sequential or concurrent, on one login each
/// time, and no PIN try is spent.
#[test]
fn a_lost_login_is_recovered_for_the_whole_pool_with_one_login() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    const SESSIONS: usize = 4;
    let label = new_token("pool");
    let key = create_keys(&label, &[KeyLabel::new("alice", "").unwrap()]).remove(0);
    // The first scan waits until every signer has its own session: each
    // takes one from the pool, then waits for the scan.
    let held = AtomicBool::new(false);
    let store = Arc::new(
        store_on(SPY, &label, env_pin(), SESSIONS).with_scan_hook(Arc::new(move || {
            if held.swap(true, Ordering::SeqCst) {
                return;
            }
            let start = Instant::now();
            while spied_calls("C_OpenSession") < SESSIONS
                && start.elapsed() < Duration::from_secs(30)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        })),
    );
    let sign_in_parallel = |round: u32| {
        std::thread::scope(|scope| {
            let signers: Vec<_> = (0..SESSIONS)
                .map(|t| {
                    let (store, key) = (&store, &key);
                    scope.spawn(move || {
                        for i in 0..5u32 {
                            let digest: [u8; 32] =
                                Sha256::digest(format!("{round}-{t}-{i}")).into();
                            let sig = store.sign_digest(&key.id, &digest);
                            let sig = sig.unwrap_or_else(|e| panic!("signer {t}, {i}: {e}"));
                            assert!(verify(&key.spki_der, &digest, &sig));
                        }
                    })
                })
                .collect();
            for s in signers {
                s.join().unwrap();
            }
        })
    };
    sign_in_parallel(0);
    assert_eq!(
        spied_calls("C_OpenSession"),
        SESSIONS,
        "one session a signer"
    );
    assert_eq!(spied_calls("C_Login"), 1);
    assert!(!pin_tries_spent(&label));

    // Every pooled session is logged out: one after another, operations
    // sign on them (each retry on another idle session), and the first
    // one's login serves all.
    logout(&label);
    for i in 0..2 * SESSIONS as u8 {
        let sig = store.sign_digest(&key.id, &[i; 32]);
        let sig = sig.unwrap_or_else(|e| panic!("signature {i} after the logout: {e}"));
        assert!(verify(&key.spki_der, &[i; 32], &sig));
    }
    assert_eq!(spied_calls("C_Login"), 2, "one login restored the pool");
    assert!(!pin_tries_spent(&label));

    // The same with every session's operation failing at once.
    logout(&label);
    sign_in_parallel(1);
    assert_eq!(
        spied_calls("C_Login"),
        3,
        "one login for the concurrent recovery"
    );
    assert!(!pin_tries_spent(&label));
}

/// Generates an EC P-256 pair on `session` as another program would
/// (pkcs11-tool), labelled `label` with `CKA_ID` `id`; `private_extra`
/// is added to the private key's template.
fn foreign_pair(
    session: &cryptoki::session::Session,
    label: &[u8],
    id: &[u8],
    private_extra: &[Attribute],
) -> (
    cryptoki::object::ObjectHandle,
    cryptoki::object::ObjectHandle,
) {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::KeyType;
    let params = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
        Attribute::KeyType(KeyType::EC),
        Attribute::Label(label.to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    private.extend_from_slice(private_extra);
    session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::EcParams(params),
                Attribute::Label(label.to_vec()),
                Attribute::Id(id.to_vec()),
            ],
            &private,
        )
        .unwrap()
}

fn ck_id(session: &cryptoki::session::Session, handle: cryptoki::object::ObjectHandle) -> Vec<u8> {
    match &session
        .get_attributes(handle, &[AttributeType::Id])
        .unwrap()[..]
    {
        [Attribute::Id(id)] => id.clone(),
        other => panic!("CKA_ID: {other:?}"),
    }
}

#[test]
fn a_name_another_program_took_is_refused_and_its_key_left_unchanged() {
    let label = new_token("foreign");
    let store = store(&label, env_pin(), 1);
    // The daemon has scanned the token already (its index is current).
    let alice = store
        .generate(&KeyLabel::new("alice", "").unwrap())
        .unwrap();
    assert_eq!(store.list().unwrap(), vec![alice.clone()]);
    // Another program adds a key under tufd's label for "bob", with a
    // CKA_ID of its own.
    let session = support::login_session(&label);
    let foreign_id = b"pkcs11-tool id".to_vec();
    let (public, private) = foreign_pair(
        &session,
        b"tufd:bob:",
        &foreign_id,
        &[Attribute::Sensitive(true), Attribute::Extractable(false)],
    );
    // The name is taken on the token: generate and import refuse it.
    let bob = KeyLabel::new("bob", "").unwrap();
    let again = store.generate(&bob);
    assert!(
        matches!(&again, Err(KeyError::AlreadyExists { what, .. }) if what.contains("bob")),
        "{again:?}"
    );
    let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let imported = store.import(&bob, &secret);
    assert!(
        matches!(imported, Err(KeyError::AlreadyExists { .. })),
        "{imported:?}"
    );
    // The scans listed it and did not touch its objects.
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().any(|k| k.label == bob));
    let fresh = support::store(&label, env_pin(), 1);
    assert_eq!(fresh.list().unwrap(), listed);
    assert_eq!(ck_id(&session, private), foreign_id);
    assert_eq!(ck_id(&session, public), foreign_id);
}

#[test]
fn an_unprotected_key_labelled_for_tufd_is_never_used() {
    let label = new_token("unsafe");
    let session = support::login_session(&label);
    // Extractable (and not sensitive), under tufd's label for "eve".
    let (_, private) = foreign_pair(
        &session,
        b"tufd:eve:",
        b"\x05\x06",
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    let store = store(&label, env_pin(), 1);
    assert!(store.list().unwrap().is_empty());
    let eve = KeyLabel::new("eve", "").unwrap();
    // Its name stays taken: no second key of that name.
    let again = store.generate(&eve);
    assert!(
        matches!(&again, Err(KeyError::AlreadyExists { what, .. }) if what.contains("does not use")),
        "{again:?}"
    );
    // Its computed ID signs nothing.
    let public = match &session
        .get_attributes(private, &[AttributeType::Id])
        .unwrap()[..]
    {
        [Attribute::Id(id)] => id.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(public, b"\x05\x06".to_vec(), "its CKA_ID is left as it was");
    assert!(store.list().unwrap().is_empty());
}

/// A PIN file holding the right PIN (rewritten by the test).
fn pin_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    std::fs::set_permissions(
        &pin_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    (dir, pin_file)
}

/// Adds a key that wants the PIN for every signature
/// (`CKA_ALWAYS_AUTHENTICATE`), labelled for tufd as `name`.
fn always_authenticate_key(label: &str, name: &str) {
    let session = support::login_session(label);
    foreign_pair(
        &session,
        format!("tufd:{name}:").as_bytes(),
        name.as_bytes(),
        &[
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::AlwaysAuthenticate(true),
        ],
    );
}

#[test]
fn an_always_authenticate_key_signs_and_an_error_mid_signature_frees_the_session() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let label = new_token("always");
    always_authenticate_key(&label, "carol");
    let fail = std::sync::Arc::new(AtomicBool::new(false));
    let hook_fail = fail.clone();
    let store = store(&label, env_pin(), 1).with_sign_hook(std::sync::Arc::new(move || {
        if hook_fail.swap(false, Ordering::SeqCst) {
            return Err(KeyError::Device {
                token: "test".into(),
                operation: "signing",
                detail: "forced by the test".into(),
                source: None,
            });
        }
        Ok(())
    }));
    let keys = store.list().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    let digest: [u8; 32] = Sha256::digest(b"always").into();
    let sig = store.sign_digest(&key.id, &digest).unwrap();
    assert!(verify(&key.spki_der, &digest, &sig));
    // An error after C_SignInit and the login, with the only session: the
    // next signature is made all the same (a new session).
    fail.store(true, Ordering::SeqCst);
    let err = store.sign_digest(&key.id, &digest).unwrap_err();
    assert!(err.to_string().contains("forced by the test"), "{err}");
    for i in 0..3u8 {
        let d = [i; 32];
        let sig = store.sign_digest(&key.id, &d).unwrap();
        assert!(verify(&key.spki_der, &d, &sig));
    }
    // A batch too.
    let jobs: Vec<(&str, [u8; 32])> = (0..5u8).map(|i| (key.id.as_str(), [i; 32])).collect();
    store.sign_digests(&jobs).unwrap();
}

#[test]
fn a_rejected_context_pin_leaves_the_token_usable_once_the_pin_is_fixed() {
    let label = new_token("alwaysbad");
    always_authenticate_key(&label, "dave");
    let (_dir, pin_file) = pin_file();
    let store = store(&label, PinSource::File(pin_file.clone()), 1);
    let key = store.list().unwrap().remove(0);
    let digest: [u8; 32] = Sha256::digest(b"dave").into();
    store.sign_digest(&key.id, &digest).unwrap();
    // The PIN source changes to a wrong PIN while the token is logged in:
    // the context-specific login rejects it after C_SignInit.
    std::fs::write(&pin_file, "0000\n").unwrap();
    let err = store.sign_digest(&key.id, &digest).unwrap_err();
    assert!(matches!(err, KeyError::PinRejected { .. }), "{err}");
    // Corrected: the next signature works on the single session.
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let sig = store.sign_digest(&key.id, &digest).unwrap();
    assert!(verify(&key.spki_der, &digest, &sig));
}

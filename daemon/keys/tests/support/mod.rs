//! A SoftHSM2 token directory for this test process.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` and its token directory once, at
//! `C_Initialize`: tokens created later are not seen by this process. So a
//! test process uses one token directory whose tokens (one per test, named
//! in [`TOKENS`]) all exist before the module is loaded.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use tufd_keys::pin::PinSource;
use tufd_keys::pkcs11::{Modules, Pkcs11Config, Pkcs11Store, TokenSelector};

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const PIN: &str = "1234";
/// OpenSC's PKCS#11 spy (Debian `opensc`), wrapping [`MODULE`]: a store
/// whose module is the spy has every call logged in [`spy_log`].
pub const SPY: &str = "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so";

struct Dir {
    _tmp: tempfile::TempDir,
    conf: PathBuf,
}

fn dir() -> &'static Dir {
    static DIR: OnceLock<Dir> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("temp dir");
        let tokens = tmp.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = tmp.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        for name in TOKENS {
            init_token(&conf, &label_for(name));
        }
        // SAFETY: set once, before any thread loads the module.
        unsafe {
            std::env::set_var("SOFTHSM2_CONF", &conf);
            std::env::set_var("TUFD_KEYS_TEST_PIN", PIN);
            std::env::set_var("PKCS11SPY", MODULE);
            std::env::set_var("PKCS11SPY_OUTPUT", tmp.path().join("spy.log"));
        }
        Dir { _tmp: tmp, conf }
    })
}

pub fn conf() -> &'static Path {
    &dir().conf
}

/// The log of every call made through [`SPY`] in this test process.
pub fn spy_log() -> PathBuf {
    dir()._tmp.path().join("spy.log")
}

/// How many calls to PKCS#11 function `function` (such as "C_Login") went
/// through [`SPY`] so far.
pub fn spied_calls(function: &str) -> usize {
    let header = format!(" {function}");
    std::fs::read_to_string(spy_log())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with(&header))
        .count()
}

/// The tokens a test process may use, one per test.
pub const TOKENS: &[&str] = &[
    "gen",
    "sens",
    "imp",
    "pin",
    "other",
    "par",
    "bench",
    "many",
    "batch",
    "relog",
    "held",
    "race",
    "pool",
    "foreign",
    "unsafe",
    "always",
    "alwaysbad",
];

fn label_for(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn init_token(conf: &Path, label: &str) {
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            PIN,
            "--so-pin",
            "5678",
        ])
        .output()
        .expect("softhsm2-util is installed (scripts/setup)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The label of this process's token `name` (one of [`TOKENS`]).
pub fn new_token(name: &str) -> String {
    assert!(TOKENS.contains(&name), "add {name:?} to TOKENS");
    dir();
    label_for(name)
}

pub fn modules() -> Arc<Modules> {
    static M: OnceLock<Arc<Modules>> = OnceLock::new();
    dir();
    M.get_or_init(|| Arc::new(Modules::new())).clone()
}

pub fn store(label: &str, pin: PinSource, sessions: usize) -> Pkcs11Store {
    store_on(MODULE, label, pin, sessions)
}

/// A store on token `label` through PKCS#11 library `module` ([`MODULE`],
/// or [`SPY`] to count its calls).
pub fn store_on(module: &str, label: &str, pin: PinSource, sessions: usize) -> Pkcs11Store {
    dir();
    Pkcs11Store::new(
        Pkcs11Config {
            name: "test".into(),
            module: module.into(),
            selector: TokenSelector::Label(label.into()),
            pin,
            max_sessions: sessions,
        },
        modules(),
        tufd_tuf::keyid::ecdsa_key_id,
    )
}

pub fn env_pin() -> PinSource {
    dir();
    PinSource::Env("TUFD_KEYS_TEST_PIN".into())
}

/// Creates tufd keys `names` on token `label` in bulk with cryptoki (as
/// imported keys, with the IDs tufd writes), and returns their records
/// as a store named "test" lists them.
pub fn create_keys(label: &str, names: &[tufd_keys::KeyLabel]) -> Vec<tufd_keys::KeyRecord> {
    let session = login_session(label);
    names
        .iter()
        .map(|name| {
            let secret = seeded_key(&format!("{label}-{name}"));
            create_pair(&session, name, &secret, &secret.public_key())
        })
        .collect()
}

/// Creates a tufd key `name` on token `label` whose public half belongs to
/// another private key: every signature it makes fails verification, as a
/// faulty token's would. Returns the record a store lists for it.
pub fn create_faulty_key(label: &str, name: &tufd_keys::KeyLabel) -> tufd_keys::KeyRecord {
    let session = login_session(label);
    let secret = seeded_key(&format!("{label}-{name}-private"));
    let other = seeded_key(&format!("{label}-{name}-public"));
    create_pair(&session, name, &secret, &other.public_key())
}

fn seeded_key(seed: &str) -> p256::SecretKey {
    use sha2::{Digest, Sha256};
    let seed: [u8; 32] = Sha256::digest(seed).into();
    p256::SecretKey::from_slice(&seed).expect("a valid scalar")
}

/// Logs this process out of token `label` (every session of the process
/// loses its login, as when another program logs out).
pub fn logout(label: &str) {
    login_session(label).logout().unwrap();
}

/// The loaded module and the slot of token `label`.
pub fn token_slot(label: &str) -> (cryptoki::context::Pkcs11, cryptoki::slot::Slot) {
    let ctx = modules().get(MODULE.as_ref()).unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == label)
        .unwrap();
    (ctx, slot)
}

/// A logged-in read-write session on token `label`.
pub fn login_session(label: &str) -> cryptoki::session::Session {
    use cryptoki::session::UserType;
    let (ctx, slot) = token_slot(label);
    let session = ctx.open_rw_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&PIN.to_owned().into()));
    session
}

/// Creates the objects of tufd key `name`: the private half holds
/// `secret`, the public half `public` (normally `secret`'s public key),
/// with the ID tufd derives from `public`.
pub fn create_pair(
    session: &cryptoki::session::Session,
    name: &tufd_keys::KeyLabel,
    secret: &p256::SecretKey,
    public: &p256::PublicKey,
) -> tufd_keys::KeyRecord {
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    use p256::pkcs8::EncodePublicKey;
    const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let spki = public.to_public_key_der().unwrap().as_bytes().to_vec();
    let id = tufd_tuf::keyid::ecdsa_key_id(&spki);
    let token_label = name.to_token_label().into_bytes();
    let point = public.to_sec1_bytes();
    let mut ec_point = vec![0x04, point.len() as u8];
    ec_point.extend_from_slice(&point);
    let common = |class| {
        vec![
            Attribute::Class(class),
            Attribute::Token(true),
            Attribute::KeyType(KeyType::EC),
            Attribute::Label(token_label.clone()),
            Attribute::Id(hex::decode(&id).unwrap()),
            Attribute::EcParams(P256_PARAMS.to_vec()),
        ]
    };
    let mut public_t = common(ObjectClass::PUBLIC_KEY);
    public_t.extend([Attribute::Verify(true), Attribute::EcPoint(ec_point)]);
    let mut private_t = common(ObjectClass::PRIVATE_KEY);
    private_t.extend([
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Value(secret.to_bytes().to_vec()),
    ]);
    session.create_object(&public_t).unwrap();
    session.create_object(&private_t).unwrap();
    tufd_keys::KeyRecord {
        id,
        label: name.clone(),
        token: "test".into(),
        spki_der: spki,
        origin: tufd_keys::KeyOrigin::Imported,
        sensitive: true,
        extractable: false,
    }
}

//! Signatures per second on the virtual PIV card (tests/src/vcard.rs): a
//! direct `yubikey` crate call (`piv::sign_data`), tufd's `YubiKeyStore`
//! (device lock, key index, DER to raw, p256 verification of every
//! signature) and tufd's `Pkcs11Store` through Yubico's ykcs11, for a slot
//! with PIN once (9a) and slot 9c (the card wants the PIN before each
//! signature, as a YubiKey's default 9c policy does). Prints the
//! per-signature overhead of the store over the direct call, and the
//! store's own software work per signature measured without the device.
//!
//! Run with `cargo bench -p tufd-keys --bench yubikey` (root, pcscd,
//! vsmartcard-vpcd, ykcs11, and the card runner: tests/piv-card built or
//! `TUFD_PIV_CARD_BIN`). `TUFD_BENCH_SECONDS` sets the time per variant
//! (default 3), spread over 5 interleaved rounds; medians are printed. The
//! card is software behind vpcd's TCP socket, so absolute figures say little
//! about a real YubiKey (tens of ms per signature); the overhead tufd adds
//! is what this measures.

#[allow(dead_code, clippy::all)]
#[path = "../../../tests/src/vcard.rs"]
mod vcard;

use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tufd_keys::pin::PinSource;
use tufd_keys::pkcs11::{Modules, Pkcs11Config, Pkcs11Store, TokenSelector};
use tufd_keys::yubikey::{KeyTouchPolicy, YubiKeyConfig, YubiKeyStore};
use tufd_keys::{KeyLabel, KeyStore};
use yubikey::piv::{self, AlgorithmId, SlotId};

const PIN: &str = "123456";
const YKCS11: &str = "/usr/lib/x86_64-linux-gnu/libykcs11.so";

/// Runs `op` for `secs`; returns (signatures/s, ms/signature).
fn measure(secs: Duration, mut op: impl FnMut()) -> (f64, f64) {
    // Warm up (connection, PIN, index).
    op();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < secs {
        op();
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    (n as f64 / elapsed, elapsed * 1000.0 / n as f64)
}

fn key_id(ids: &[tufd_keys::KeyRecord], name: &str) -> String {
    ids.iter()
        .find(|k| k.label.name() == name)
        .unwrap_or_else(|| panic!("no key {name}"))
        .id
        .clone()
}

fn main() {
    let secs = Duration::from_secs_f64(
        std::env::var("TUFD_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );
    if std::env::var_os("TUFD_PIV_CARD_BIN").is_none() {
        let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/piv-card/target/release/piv-card");
        // SAFETY: single-threaded here.
        unsafe { std::env::set_var("TUFD_PIV_CARD_BIN", built) };
    }
    let card = match vcard::VirtualCard::start() {
        Ok(card) => card,
        Err(e) => {
            eprintln!("yubikey bench skipped: the virtual card does not start: {e}");
            return;
        }
    };
    card.use_in_this_process().expect("bind the card");
    // SAFETY: single-threaded here, before any PC/SC call.
    unsafe { std::env::set_var("TUFD_BENCH_YK_PIN", PIN) };
    let serial = 0x0052_f743u32;
    let pin = PinSource::Env("TUFD_BENCH_YK_PIN".into());
    let id_scheme: tufd_keys::IdScheme = |spki| hex::encode(Sha256::digest(spki));

    let mut config = YubiKeyConfig::new("bench", serial, pin.clone());
    config.slots = tufd_keys::yubikey::SlotChoice::Configured(
        [0x9a, 0x9c]
            .into_iter()
            .filter_map(tufd_keys::yubikey::KeySlot::from_reference)
            .collect(),
    );
    config.touch_policy = KeyTouchPolicy::Never;
    let store = YubiKeyStore::new(config, id_scheme);
    let once = store
        .generate(&KeyLabel::new("once", "").unwrap())
        .expect("generate in 9a");
    let each = store
        .generate(&KeyLabel::new("each", "").unwrap())
        .expect("generate in 9c");
    let digest: [u8; 32] = Sha256::digest(b"tufd yubikey bench").into();

    let ykcs11 = Pkcs11Store::new(
        Pkcs11Config {
            name: "ykcs11".into(),
            module: YKCS11.into(),
            selector: TokenSelector::Serial(serial.to_string()),
            pin,
            max_sessions: 1,
        },
        Arc::new(Modules::new()),
        id_scheme,
    );
    let listed = ykcs11.list().expect("keys through ykcs11");
    let (p11_once, p11_each) = (key_id(&listed, "once"), key_id(&listed, "each"));

    // Direct crate calls on a second connection to the same card, kept
    // open for the whole run (dropping it would reset the card).
    let mut yk = yubikey::YubiKey::open().expect("open the card");

    // Rounds, each measuring every variant in turn, so that load from
    // other processes on the machine spreads over all of them; medians.
    let rounds = 5;
    let slice = secs / rounds;
    let mut ms: Vec<Vec<f64>> = vec![Vec::new(); 6];
    for _ in 0..rounds {
        yk.verify_pin(PIN.as_bytes()).expect("PIN");
        ms[0].push(
            measure(slice, || {
                piv::sign_data(
                    &mut yk,
                    &digest,
                    AlgorithmId::EccP256,
                    SlotId::Authentication,
                )
                .expect("direct sign 9a");
            })
            .1,
        );
        ms[1].push(
            measure(slice, || {
                store.sign_digest(&once.id, &digest).expect("store sign 9a");
            })
            .1,
        );
        ms[2].push(
            measure(slice, || {
                ykcs11
                    .sign_digest(&p11_once, &digest)
                    .expect("ykcs11 sign 9a");
            })
            .1,
        );
        ms[3].push(
            measure(slice, || {
                yk.verify_pin(PIN.as_bytes()).expect("PIN");
                piv::sign_data(&mut yk, &digest, AlgorithmId::EccP256, SlotId::Signature)
                    .expect("direct sign 9c");
            })
            .1,
        );
        ms[4].push(
            measure(slice, || {
                store.sign_digest(&each.id, &digest).expect("store sign 9c");
            })
            .1,
        );
        ms[5].push(
            measure(slice, || {
                ykcs11
                    .sign_digest(&p11_each, &digest)
                    .expect("ykcs11 sign 9c");
            })
            .1,
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let m: Vec<f64> = ms.iter_mut().map(median).collect();

    println!(
        "virtual PIV card, {rounds} rounds of {:.2} s per variant, 1 worker, medians",
        slice.as_secs_f64()
    );
    println!("{:<44} {:>10} {:>12}", "", "sig/s", "ms/sig");
    let names = [
        "yubikey crate, sign_data, 9a (PIN once)",
        "YubiKeyStore::sign_digest, 9a",
        "Pkcs11Store via ykcs11, 9a",
        "yubikey crate, verify_pin + sign_data, 9c",
        "YubiKeyStore::sign_digest, 9c",
        "Pkcs11Store via ykcs11 (context login), 9c",
    ];
    for (name, ms) in names.iter().zip(&m) {
        println!("{name:<44} {:>10.1} {ms:>12.2}", 1000.0 / ms);
    }
    println!(
        "tufd overhead per signature over the direct crate call: 9a {:+.2} ms ({:+.0}%), 9c {:+.2} ms ({:+.0}%)",
        m[1] - m[0],
        (m[1] / m[0] - 1.0) * 100.0,
        m[4] - m[3],
        (m[4] / m[3] - 1.0) * 100.0,
    );
    // The store's own work per signature, without the device: DER to raw
    // and the p256 verification of the result.
    let der = piv::sign_data(
        &mut yk,
        &digest,
        AlgorithmId::EccP256,
        SlotId::Authentication,
    )
    .expect("one more signature");
    let verifying =
        <p256::ecdsa::VerifyingKey as p256::pkcs8::DecodePublicKey>::from_public_key_der(
            &once.spki_der,
        )
        .expect("public key");
    let n = 2000;
    let start = Instant::now();
    for _ in 0..n {
        let sig = p256::ecdsa::Signature::from_der(&der).expect("DER");
        p256::ecdsa::signature::hazmat::PrehashVerifier::verify_prehash(&verifying, &digest, &sig)
            .expect("verifies");
    }
    println!(
        "store's software work per signature (DER to raw, p256 verify): {:.3} ms",
        start.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
    );
    drop(yk);
    drop(store);
    drop(card);
}

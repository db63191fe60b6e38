//! Tests against a real YubiKey, for what the virtual test card cannot do:
//! attestation, touch, PIN and touch policies, P-256 import.
//!
//! They run when `TUFD_TEST_YUBIKEY_SERIAL` names a connected YubiKey (PIN
//! in `TUFD_TEST_YUBIKEY_PIN`, default 123456; management key PIN-protected,
//! or the factory default, which the first test replaces by a PIN-protected
//! random key). They use only the retired slots 92–95 and delete their keys.
//! Without the variable they print that they were skipped and pass.
//!
//! ```text
//! TUFD_TEST_YUBIKEY_SERIAL=12345678 cargo test -p tufd-keys real_device -- --nocapture --test-threads 1
//! ```

use super::*;
use crate::KeyStore;
use sha2::{Digest, Sha256};
use std::sync::Mutex;

/// One test at a time on the device.
static DEVICE: Mutex<()> = Mutex::new(());

fn store(slot: u8, pin: KeyPinPolicy, touch: KeyTouchPolicy) -> Option<YubiKeyStore> {
    let Some(serial) = std::env::var("TUFD_TEST_YUBIKEY_SERIAL")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        eprintln!(
            "skipped: set TUFD_TEST_YUBIKEY_SERIAL to the serial of a YubiKey to run this test on it"
        );
        return None;
    };
    if std::env::var_os("TUFD_TEST_YUBIKEY_PIN").is_none() {
        // SAFETY: test-only, set before any thread reads it.
        unsafe { std::env::set_var("TUFD_TEST_YUBIKEY_PIN", "123456") };
    }
    let mut config = YubiKeyConfig::new(
        "real",
        serial,
        PinSource::Env("TUFD_TEST_YUBIKEY_PIN".into()),
    );
    config.slots = SlotChoice::Configured(vec![KeySlot::from_reference(slot).expect("a key slot")]);
    config.pin_policy = pin;
    config.touch_policy = touch;
    Some(YubiKeyStore::new(config, |spki| {
        hex::encode(Sha256::digest(spki))
    }))
}

fn label(what: &str) -> KeyLabel {
    KeyLabel::new(
        &format!("tufd-test-{what}-{:08x}", rand::random::<u32>()),
        "",
    )
    .unwrap()
}

fn sign(store: &YubiKeyStore, id: &str) -> Result<(), KeyError> {
    let digest: [u8; 32] = Sha256::digest(b"tufd real YubiKey test").into();
    store.sign_digest(id, &digest).map(|_| ())
}

#[test]
fn real_yubikey_generates_attests_and_reports_policies() {
    let _one = DEVICE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(store) = store(0x95, KeyPinPolicy::Once, KeyTouchPolicy::Never) else {
        return;
    };
    store.set_up().expect("set up the management key");
    let key = store.generate(&label("attest")).expect("generate in 95");
    assert_eq!(store.slot_of(&key.id).unwrap(), "95");
    assert!(!store.needs_touch(&key.id));
    sign(&store, &key.id).expect("sign");
    let attestation = store.attestation(&key.id).expect("attestation verifies");
    assert_eq!(attestation.serial, Some(store.config().serial));
    assert_eq!(attestation.pin_policy, Some(KeyPinPolicy::Once));
    assert_eq!(attestation.touch_policy, Some(KeyTouchPolicy::Never));
    // The same through the KeyStore trait (what `tufctl key list
    // --attestation` shows).
    match KeyStore::attest(&store, &key.id).expect("attest") {
        crate::Attestation::Verified(a) => assert_eq!(a.serial, Some(store.config().serial)),
        other => panic!("a real YubiKey attests a generated key: {other:?}"),
    }
    // The device's own metadata agrees with what tufd recorded.
    let listed = store.list().unwrap();
    assert!(listed.iter().any(|k| k.id == key.id));
    store.delete(&key.id).expect("delete");
    assert!(store.list().unwrap().iter().all(|k| k.id != key.id));
}

#[test]
fn real_yubikey_pin_always_presents_the_pin_each_time() {
    let _one = DEVICE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(store) = store(0x94, KeyPinPolicy::Always, KeyTouchPolicy::Never) else {
        return;
    };
    let key = store
        .generate(&label("pin-always"))
        .expect("generate in 94");
    for _ in 0..3 {
        sign(&store, &key.id).expect("sign with PIN policy always");
    }
    let attestation = store.attestation(&key.id).expect("attestation");
    assert_eq!(attestation.pin_policy, Some(KeyPinPolicy::Always));
    store.delete(&key.id).expect("delete");
}

#[test]
fn real_yubikey_imports_a_p256_key() {
    let _one = DEVICE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(store) = store(0x93, KeyPinPolicy::Once, KeyTouchPolicy::Never) else {
        return;
    };
    let secret = SecretKey::from_slice(&rand::random::<[u8; 32]>()).expect("scalar");
    let key = store
        .import(&label("import"), &secret)
        .expect("import into 93");
    assert_eq!(key.origin, KeyOrigin::Imported);
    sign(&store, &key.id).expect("sign with the imported key");
    // An imported key cannot be attested (the device did not make it).
    let attested = store.attestation(&key.id);
    assert!(attested.is_err(), "{attested:?}");
    store.delete(&key.id).expect("delete");
}

#[test]
fn real_yubikey_touch_policy_is_reported_and_a_missing_touch_is_clear() {
    let _one = DEVICE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(store) = store(0x92, KeyPinPolicy::Once, KeyTouchPolicy::Always) else {
        return;
    };
    eprintln!("touch the YubiKey to certify the new key (slot 92)");
    let key = store.generate(&label("touch")).expect("generate in 92");
    assert!(store.needs_touch(&key.id), "touch policy always");
    eprintln!("touch the YubiKey to sign (or do not, to see the timeout error)");
    match sign(&store, &key.id) {
        Ok(()) => {}
        Err(e) => assert!(e.to_string().contains("was not touched in time"), "{e}"),
    }
    let attestation = store.attestation(&key.id).expect("attestation");
    assert_eq!(attestation.touch_policy, Some(KeyTouchPolicy::Always));
    store.delete(&key.id).expect("delete");
}

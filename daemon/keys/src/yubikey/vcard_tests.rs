//! The store in-process against the virtual PIV card (tests/src/vcard.rs,
//! included by path so tufd-keys does not depend on the test crate):
//! what the daemon tests cannot see from outside — set-up reporting,
//! retired slots, `needs_touch`, the attestation refusal, a full slot list.
//!
//! libpcsclite binds a process to one pcscd at its first call, so every
//! test of this binary that touches PC/SC goes through [`card`] first. The
//! card needs root and the runner binary (`TUFD_PIV_CARD_BIN`, or
//! tests/piv-card built); without them these tests say so and pass, and
//! the end-to-end tests (tests/tests/yubikey.rs) fail loudly instead.

use super::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256};
use std::sync::{Mutex, OnceLock};

#[allow(dead_code, clippy::all)]
#[path = "../../../../tests/src/vcard.rs"]
mod vcard;

/// The card serial piv-authenticator reports.
const SERIAL: u32 = 0x0052_f743;

/// One test at a time on the card.
static CARD_USE: Mutex<()> = Mutex::new(());

/// The card this test process is bound to, started on first use; `None`
/// (with a message) where it cannot run. With `TUFD_REQUIRE_VCARD` set (the
/// project's test command sets it), a card that cannot run fails the test
/// instead of skipping it.
pub(super) fn card() -> Option<&'static vcard::VirtualCard> {
    static CARD: OnceLock<Option<vcard::VirtualCard>> = OnceLock::new();
    CARD.get_or_init(|| {
        let card = start_card();
        if card.is_none() && std::env::var_os("TUFD_REQUIRE_VCARD").is_some() {
            panic!("TUFD_REQUIRE_VCARD is set, but the virtual card cannot run here");
        }
        card
    })
    .as_ref()
}

fn start_card() -> Option<vcard::VirtualCard> {
    {
        if std::env::var_os("TUFD_TEST_YUBIKEY_SERIAL").is_some() {
            eprintln!("skipped: TUFD_TEST_YUBIKEY_SERIAL selects a real YubiKey for this process");
            return None;
        }
        if std::env::var_os("TUFD_PIV_CARD_BIN").is_none() {
            let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/piv-card/target/release/piv-card");
            if !built.is_file() {
                eprintln!(
                    "skipped: no virtual card runner (build tests/piv-card or set TUFD_PIV_CARD_BIN)"
                );
                return None;
            }
            // SAFETY: test-only, before any thread reads it.
            unsafe { std::env::set_var("TUFD_PIV_CARD_BIN", built) };
        }
        match vcard::VirtualCard::start() {
            Ok(card) => match card.use_in_this_process() {
                Ok(()) => Some(card),
                Err(e) => panic!("cannot bind the virtual card: {e}"),
            },
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                eprintln!("skipped: {e}");
                None
            }
            Err(e) => panic!("the virtual card does not start: {e}"),
        }
    }
}

/// What the first set-up on this process's card found (the card is fresh,
/// so the factory-default management key was replaced); every test sets up
/// through this first, whatever order the tests run in.
fn first_set_up() -> SetUp {
    static FIRST: OnceLock<SetUp> = OnceLock::new();
    *FIRST.get_or_init(|| store(|_| {}).set_up().expect("set up the card"))
}

fn store(config: impl FnOnce(&mut YubiKeyConfig)) -> YubiKeyStore {
    // SAFETY: test-only; every test sets the same value.
    unsafe { std::env::set_var("TUFD_VCARD_UNIT_PIN", "123456") };
    let mut c = YubiKeyConfig::new(
        "vcard",
        SERIAL,
        PinSource::Env("TUFD_VCARD_UNIT_PIN".into()),
    );
    config(&mut c);
    YubiKeyStore::new(c, |spki| hex::encode(Sha256::digest(spki)))
}

#[test]
fn store_on_the_virtual_card() {
    let Some(_card) = card() else { return };
    let _one = CARD_USE.lock().unwrap_or_else(|p| p.into_inner());

    // Set-up replaces the factory default once; a second store (another
    // daemon) finds the PIN-protected key.
    let yk = store(|c| {
        c.slots = SlotChoice::Configured(
            [0x95, 0x82]
                .into_iter()
                .filter_map(KeySlot::from_reference)
                .collect(),
        )
    });
    assert_eq!(first_set_up(), SetUp::ReplacedDefaultManagementKey);
    assert_eq!(yk.set_up().unwrap(), SetUp::AlreadySetUp);
    let again = store(|_| {});
    assert_eq!(again.set_up().unwrap(), SetUp::AlreadySetUp);

    // Retired slots, in the configured order.
    let a = yk
        .generate(&KeyLabel::new("a", "example.com/app").unwrap())
        .unwrap();
    let b = yk.generate(&KeyLabel::new("b", "").unwrap()).unwrap();
    assert_eq!(yk.slot_of(&a.id).unwrap(), "95");
    assert_eq!(yk.slot_of(&b.id).unwrap(), "82");
    // Touch policy always (the default) is reported from the index...
    assert!(yk.needs_touch(&a.id));
    // ...and from the certificate, by a store that never saw the key made.
    let fresh = store(|c| c.touch_policy = KeyTouchPolicy::Never);
    assert!(fresh.needs_touch(&b.id));
    let mut listed = fresh.list().unwrap();
    listed.sort_by(|x, y| x.label.cmp(&y.label));
    assert_eq!(listed, vec![a.clone(), b.clone()]);

    // Both slots used: the next generation says so.
    let full = yk.generate(&KeyLabel::new("c", "").unwrap()).unwrap_err();
    assert!(
        full.to_string().contains("no free slot among 95, 82"),
        "{full}"
    );

    // Signatures verify (checked inside sign_digest against the key).
    let digest: [u8; 32] = Sha256::digest(b"vcard unit").into();
    let sig = yk.sign_digest(&a.id, &digest).unwrap();
    let key =
        <p256::ecdsa::VerifyingKey as DecodePublicKey>::from_public_key_der(&a.spki_der).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
    key.verify_prehash(&digest, &sig).unwrap();

    // The card cannot attest: a plain sentence, not a crash.
    let e = yk.attestation(&a.id).unwrap_err().to_string();
    assert!(e.contains("cannot attest the key in slot 95"), "{e}");
    // ... and the same sentence as the trait's answer, not an error.
    match KeyStore::attest(&yk, &a.id).unwrap() {
        crate::Attestation::Unavailable { reason } => {
            assert!(
                reason.contains("cannot attest the key in slot 95"),
                "{reason}"
            )
        }
        other => panic!("the virtual card cannot attest: {other:?}"),
    }

    // Delete frees the slot; an unknown ID is KeyNotFound.
    yk.delete(&b.id).unwrap();
    assert!(matches!(
        yk.delete(&b.id),
        Err(KeyError::KeyNotFound { .. })
    ));
    let c = yk.generate(&KeyLabel::new("c", "").unwrap()).unwrap();
    assert_eq!(yk.slot_of(&c.id).unwrap(), "82");
    assert_ne!(c.id, b.id, "the old key was overwritten, a new one made");
    yk.delete(&a.id).unwrap();
    yk.delete(&c.id).unwrap();
    assert!(yk.list().unwrap().is_empty());
}

#[test]
fn absent_serial_is_not_found_with_what_was_seen() {
    // Bind to the card first when it runs, so this PC/SC call goes there.
    let Some(_card) = card() else {
        return; // no PC/SC service to ask without the card (message printed)
    };
    let _one = CARD_USE.lock().unwrap_or_else(|p| p.into_inner());
    let yk = store(|c| c.serial = 4_000_000_001);
    match yk.status() {
        TokenStatus::Unavailable { reason } => {
            assert!(reason.contains("4000000001"), "{reason}");
            assert!(reason.contains(&format!("serial {SERIAL}")), "{reason}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(!yk.needs_touch("00"));
}

/// The card's PIV slots as `slot_of` names them.
const STANDARD_SLOTS: [&str; 4] = ["9a", "9c", "9d", "9e"];

#[test]
fn deleted_slots_are_reused_and_unknown_slots_are_never_guessed() {
    let Some(_card) = card() else { return };
    let _one = CARD_USE.lock().unwrap_or_else(|p| p.into_inner());
    let digest: [u8; 32] = Sha256::digest(b"vcard reuse").into();

    // The card has no GET METADATA. A slot the administrator listed is
    // used; deleting its key leaves tufd's "free slot" marker.
    let listed = store(|c| {
        c.slots = SlotChoice::Configured(vec![KeySlot::from_reference(0x93).unwrap()]);
        c.touch_policy = KeyTouchPolicy::Never;
    });
    first_set_up();
    let k = listed
        .generate(&KeyLabel::new("listed", "").unwrap())
        .unwrap();
    assert_eq!(listed.slot_of(&k.id).unwrap(), "93");
    listed.delete(&k.id).unwrap();

    // With the default slots, only slots tufd freed are used (the card
    // cannot tell whether 9c & co. hold another application's key), and a
    // freed slot is used again after every delete: 30 rounds on a card of
    // 24 slots never run out.
    let defaults = store(|c| c.touch_policy = KeyTouchPolicy::Never);
    let mut first = None;
    for round in 0..30 {
        let key = defaults
            .generate(&KeyLabel::new(&format!("round{round}"), "").unwrap())
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let slot = defaults.slot_of(&key.id).unwrap();
        assert!(!STANDARD_SLOTS.contains(&slot.as_str()), "{slot}");
        assert_eq!(
            first.get_or_insert(slot.clone()),
            &slot,
            "the same freed slot"
        );
        defaults.sign_digest(&key.id, &digest).unwrap();
        defaults.delete(&key.id).unwrap();
    }

    // Filling every freed slot ends with a message naming `slots`, never
    // with a key in a slot the card cannot vouch for.
    let mut made = Vec::new();
    let err = loop {
        match defaults.generate(&KeyLabel::new(&format!("fill{}", made.len()), "").unwrap()) {
            Ok(key) => {
                let slot = defaults.slot_of(&key.id).unwrap();
                assert!(!STANDARD_SLOTS.contains(&slot.as_str()), "{slot}");
                made.push(key);
                assert!(made.len() <= 20, "only freed slots are used");
            }
            Err(e) => break e.to_string(),
        }
    };
    assert!(
        made.iter()
            .any(|k| defaults.slot_of(&k.id).unwrap() == "93")
    );
    assert!(
        err.contains("cannot tell whether slots 9c, 9e, 9d, 9a") && err.contains("`slots = ["),
        "{err}"
    );
    for key in made {
        defaults.delete(&key.id).unwrap();
    }
}

/// Another program (ykman, scdaemon) leaves another application selected
/// on the shared connection: tufd selects PIV again and signs.
#[test]
fn signs_after_another_program_selected_another_application() {
    let Some(_card) = card() else { return };
    let _one = CARD_USE.lock().unwrap_or_else(|p| p.into_inner());
    let yk = store(|c| {
        c.slots = SlotChoice::Configured(vec![KeySlot::from_reference(0x91).unwrap()]);
        c.touch_policy = KeyTouchPolicy::Never;
    });
    first_set_up();
    let key = yk
        .generate(&KeyLabel::new("reselect", "").unwrap())
        .unwrap();
    let digest: [u8; 32] = Sha256::digest(b"vcard reselect").into();
    yk.sign_digest(&key.id, &digest).unwrap();

    let select_oath = || {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).expect("PC/SC context");
        let reader = std::ffi::CString::new(vcard::READER_NAME).unwrap();
        let other = ctx
            .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .expect("connect to the card");
        let mut buf = [0u8; 258];
        // SELECT OATH (A0 00 00 05 27 21 01), as ykman oath does.
        let select = [
            0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01,
        ];
        let answer = other.transmit(&select, &mut buf).expect("transmit");
        assert_eq!(&answer[answer.len() - 2..], [0x90, 0x00]);
        // PIV is no longer selected: GET VERSION-like PIV commands fail.
        let sign_probe = [0x00, 0x87, 0x11, 0x91, 0x00];
        let answer = other.transmit(&sign_probe, &mut buf).expect("transmit");
        assert_eq!(&answer[answer.len() - 2..], [0x6D, 0x00]);
        other
            .disconnect(pcsc::Disposition::LeaveCard)
            .map_err(|(_, e)| e)
            .expect("leave the card as it is");
    };
    select_oath();
    let sig = yk
        .sign_digest(&key.id, &digest)
        .expect("signs after re-selecting PIV");
    assert_eq!(sig.len(), 64);
    // And again, for key management (delete needs the management key).
    select_oath();
    yk.delete(&key.id).expect("deletes after re-selecting PIV");
}

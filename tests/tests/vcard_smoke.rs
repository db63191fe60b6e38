//! Smoke tests of the virtual PIV card (`tufd_tests::vcard`): the `yubikey`
//! crate in-process, and ykcs11 through `pkcs11-tool` in a subprocess.
//!
//! Needs root, pcscd, vsmartcard-vpcd, ykcs11, yubico-piv-tool and opensc
//! (see `tufd_tests::vcard`). Run with
//! `cargo test -p tufd-tests --test vcard_smoke`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;
use std::time::Duration;

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};
use tufd_tests::vcard::{DEFAULT_PIN, READER_NAME, VirtualCard};
use x509_cert::der::{Decode, Encode};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use yubikey::certificate::Certificate;
use yubikey::piv::{self, AlgorithmId, SlotId};
use yubikey::reader::Context;
use yubikey::{MgmKey, PinPolicy, TouchPolicy, YubiKey};

/// Opens the card in `READER_NAME` through the `yubikey` crate.
fn open_card() -> YubiKey {
    let mut context = Context::open().expect("PC/SC context");
    let readers = context.iter().expect("list readers");
    let names: Vec<String> = readers.map(|r| r.name().into_owned()).collect();
    let mut readers = context.iter().expect("list readers");
    let reader = readers
        .find(|r| r.name() == READER_NAME)
        .unwrap_or_else(|| panic!("no reader {READER_NAME:?} among {names:?}"));
    reader.open().expect("open the virtual YubiKey")
}

/// The `yubikey` crate against the card: open, PIN, management key, P-256
/// key generation in 9c, a signature checked with `p256`, a certificate
/// written and read back, and a wrong PIN.
#[test]
fn yubikey_crate_generates_signs_and_stores_a_certificate() {
    let card = VirtualCard::start().expect("start the virtual card");
    card.use_in_this_process()
        .expect("bind this process to the card");

    let mut yk = open_card();
    assert_eq!(yk.version().major, 5, "the card claims to be a YubiKey 5");
    yk.verify_pin(DEFAULT_PIN).expect("verify PIN");
    let mgm = MgmKey::get_default(&yk).expect("default management key");
    yk.authenticate(&mgm)
        .expect("authenticate with the default 3DES management key");

    let spki = piv::generate(
        &mut yk,
        SlotId::Signature,
        AlgorithmId::EccP256,
        PinPolicy::Default,
        TouchPolicy::Default,
    )
    .expect("generate P-256 in 9c");
    let public_der = spki.to_der().expect("encode SPKI");
    let verifying_key =
        VerifyingKey::from_public_key_der(&public_der).expect("P-256 public key from the card");

    // Slot 9c wants the PIN right before each signature.
    let digest = Sha256::digest(b"tufd virtual card smoke test");
    yk.verify_pin(DEFAULT_PIN)
        .expect("verify PIN before signing");
    let der_sig = piv::sign_data(&mut yk, &digest, AlgorithmId::EccP256, SlotId::Signature)
        .expect("sign a SHA-256 digest");
    let signature = Signature::from_der(&der_sig).expect("DER ECDSA signature");
    verifying_key
        .verify_prehash(&digest, &signature)
        .expect("the card's signature verifies with p256");

    // A self-signed certificate made on the card, written to 9c, read back.
    yk.verify_pin(DEFAULT_PIN)
        .expect("verify PIN before certifying");
    let cert = Certificate::generate_self_signed::<_, p256::NistP256>(
        &mut yk,
        SlotId::Signature,
        SerialNumber::from(42u32),
        Validity::from_now(Duration::from_secs(3600)).expect("validity"),
        Name::from_str("CN=tufd virtual card").expect("subject"),
        spki.clone(),
        |_| Ok(()),
    )
    .expect("self-signed certificate on the card");
    let read = Certificate::read(&mut yk, SlotId::Signature).expect("read the certificate");
    assert_eq!(
        read.cert.to_der().expect("encode"),
        cert.cert.to_der().expect("encode"),
        "the certificate read back is the one written"
    );
    assert_eq!(
        read.cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .expect("encode"),
        public_der,
        "the certificate holds the generated key"
    );

    // The card signed the certificate (ecdsa-with-SHA256) with the slot key.
    let tbs = read.cert.tbs_certificate().to_der().expect("encode TBS");
    let cert_sig = Signature::from_der(read.cert.signature().raw_bytes()).expect("DER signature");
    p256::ecdsa::signature::Verifier::verify(&verifying_key, &tbs, &cert_sig)
        .expect("the self-signed certificate verifies");
    let keys = yk.piv_keys().expect("list keys by certificate");
    assert!(
        keys.iter().any(|k| k.slot() == SlotId::Signature),
        "piv_keys lists slot 9c"
    );

    // A wrong PIN costs a try; the right one restores the counter.
    match yk.verify_pin(b"654321") {
        Err(yubikey::Error::WrongPin { tries }) => assert_eq!(tries, 2),
        other => panic!("wrong PIN: expected WrongPin {{ tries: 2 }}, got {other:?}"),
    }
    yk.verify_pin(DEFAULT_PIN)
        .expect("verify PIN after a wrong one");
    match yk.verify_pin(b"654321") {
        Err(yubikey::Error::WrongPin { tries }) => assert_eq!(tries, 2),
        other => panic!("wrong PIN again: expected WrongPin {{ tries: 2 }}, got {other:?}"),
    }

    // Like a YubiKey, the card forgets PIN and management key authentication
    // when it is reset (the crate resets it on drop); its storage stays.
    // Reopened the crate's default way: the reader's empty slot 1 is skipped.
    drop(yk);
    let mut yk = YubiKey::open().expect("YubiKey::open finds the virtual card");
    assert!(
        piv::generate(
            &mut yk,
            SlotId::Authentication,
            AlgorithmId::EccP256,
            PinPolicy::Default,
            TouchPolicy::Default,
        )
        .is_err(),
        "key generation needs the management key again after a reset"
    );
    let read = Certificate::read(&mut yk, SlotId::Signature).expect("read after reset");
    assert_eq!(read.subject(), cert.subject());
    drop(yk);
    drop(card);
}

/// Runs a PC/SC tool against `card`, failing the test with its output and
/// the card's logs if it fails.
fn run(card: &VirtualCard, program: &str, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    card.configure(&mut command).args(args);
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{}{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        card.logs()
    );
    output
}

/// ykcs11, from `dpkg -L ykcs11`.
fn ykcs11() -> PathBuf {
    let listed = Command::new("dpkg")
        .args(["-L", "ykcs11"])
        .output()
        .expect("dpkg -L ykcs11");
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(PathBuf::from)
        .find(|p| p.file_name().is_some_and(|n| n == "libykcs11.so"))
        .unwrap_or_else(|| PathBuf::from("/usr/lib/x86_64-linux-gnu/libykcs11.so"))
}

/// An X.509 certificate (PEM) for the P-256 public key `public_pem`, issued
/// by a throwaway software key.
fn issue_certificate(public_pem: &str) -> String {
    use x509_cert::builder::profile::BuilderProfile;
    use x509_cert::builder::{Builder, CertificateBuilder};
    use x509_cert::der::EncodePem;
    use x509_cert::spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

    struct Issued {
        subject: Name,
        issuer: Name,
    }
    impl BuilderProfile for Issued {
        fn get_issuer(&self, _subject: &Name) -> Name {
            self.issuer.clone()
        }
        fn get_subject(&self) -> Name {
            self.subject.clone()
        }
        fn build_extensions(
            &self,
            _spk: SubjectPublicKeyInfoRef<'_>,
            _issuer_spk: SubjectPublicKeyInfoRef<'_>,
            _tbs: &x509_cert::TbsCertificate,
        ) -> x509_cert::builder::Result<Vec<x509_cert::ext::Extension>> {
            Ok(Vec::new())
        }
    }

    let key = VerifyingKey::from_public_key_pem(public_pem).expect("public key PEM");
    let spki = SubjectPublicKeyInfoOwned::from_key(&key).expect("SPKI");
    let issuer_key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("issuer key");
    let profile = Issued {
        subject: Name::from_str("CN=tufd ykcs11 smoke").expect("subject"),
        issuer: Name::from_str("CN=tufd test issuer").expect("issuer"),
    };
    let builder = CertificateBuilder::new(
        profile,
        SerialNumber::from(7u32),
        Validity::from_now(Duration::from_secs(3600)).expect("validity"),
        spki,
    )
    .expect("certificate builder");
    let cert = builder
        .build::<_, p256::ecdsa::DerSignature>(&issuer_key)
        .expect("issue certificate");
    cert.to_pem(x509_cert::der::pem::LineEnding::LF)
        .expect("certificate PEM")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// ykcs11 (in `pkcs11-tool`) against the card: a key made in 9c with
/// yubico-piv-tool is listed, and signs (9c needs a context-specific login,
/// which pkcs11-tool performs).
#[test]
fn ykcs11_lists_and_signs_with_a_9c_key() {
    let card = VirtualCard::start().expect("start the virtual card");
    let dir = tempfile::tempdir().expect("tempdir");
    let public_pem = dir.path().join("9c.pub.pem");
    let cert_pem = dir.path().join("9c.cert.pem");
    let digest_file = dir.path().join("digest.bin");
    let sig_file = dir.path().join("sig.bin");

    run(
        &card,
        "yubico-piv-tool",
        &[
            "-a",
            "generate",
            "-s",
            "9c",
            "-A",
            "ECCP256",
            "-o",
            path_str(&public_pem),
        ],
    );
    // ykcs11 shows a slot's key through its certificate. yubico-piv-tool
    // 2.2.0 cannot self-sign with OpenSSL 3 ("Failed signing certificate",
    // before any APDU), so the certificate for the card's key is issued here
    // by a throwaway software key.
    let public_pem_text = std::fs::read_to_string(&public_pem).expect("read public key");
    let cert = issue_certificate(&public_pem_text);
    std::fs::write(&cert_pem, cert).expect("write certificate");
    run(
        &card,
        "yubico-piv-tool",
        &[
            "-a",
            "import-certificate",
            "-s",
            "9c",
            "-i",
            path_str(&cert_pem),
        ],
    );

    let module = ykcs11();
    let module = path_str(&module);
    let listed = run(
        &card,
        "pkcs11-tool",
        &[
            "--module",
            module,
            "--login",
            "--pin",
            "123456",
            "--list-objects",
            "--type",
            "privkey",
        ],
    );
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("Private Key Object; EC") && listed.contains("ID:         02"),
        "ykcs11 lists the 9c key (ID 02):\n{listed}"
    );

    let digest = Sha256::digest(b"tufd ykcs11 smoke test");
    std::fs::write(&digest_file, digest).expect("write digest");
    run(
        &card,
        "pkcs11-tool",
        &[
            "--module",
            module,
            "--login",
            "--pin",
            "123456",
            "--sign",
            "--id",
            "02",
            "--mechanism",
            "ECDSA",
            "--input-file",
            path_str(&digest_file),
            "--output-file",
            path_str(&sig_file),
        ],
    );
    let raw_sig = std::fs::read(&sig_file).expect("read signature");
    let signature = Signature::from_slice(&raw_sig).expect("raw r||s ECDSA signature");
    let verifying_key =
        VerifyingKey::from_public_key_pem(&public_pem_text).expect("public key PEM");
    verifying_key
        .verify_prehash(&digest, &signature)
        .expect("the ykcs11 signature verifies with p256");
    // The certificate parses as X.509 and holds the same key.
    let cert_der = pem::parse(std::fs::read(&cert_pem).expect("read cert")).expect("cert PEM");
    let cert = x509_cert::Certificate::from_der(cert_der.contents()).expect("X.509");
    assert_eq!(
        cert.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .expect("encode"),
        verifying_key
            .to_public_key_der()
            .expect("encode")
            .as_bytes()
    );
}

/// With a state directory the card keeps keys, certificates and PIN retry
/// counters across restarts (driven with yubico-piv-tool in subprocesses).
#[test]
fn state_dir_keeps_the_card_across_restarts() {
    let state = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let public_pem = dir.path().join("9a.pub.pem");
    let cert_pem = dir.path().join("9a.cert.pem");

    let card = VirtualCard::builder()
        .state_dir(state.path())
        .start()
        .expect("start the virtual card");
    run(
        &card,
        "yubico-piv-tool",
        &[
            "-a",
            "generate",
            "-s",
            "9a",
            "-A",
            "ECCP256",
            "-o",
            path_str(&public_pem),
        ],
    );
    let cert = issue_certificate(&std::fs::read_to_string(&public_pem).expect("public key"));
    std::fs::write(&cert_pem, &cert).expect("write certificate");
    run(
        &card,
        "yubico-piv-tool",
        &[
            "-a",
            "import-certificate",
            "-s",
            "9a",
            "-i",
            path_str(&cert_pem),
        ],
    );
    let mut wrong_pin = Command::new("yubico-piv-tool");
    card.configure(&mut wrong_pin)
        .args(["-a", "verify-pin", "-P", "000000"]);
    let status = wrong_pin.output().expect("run yubico-piv-tool").status;
    assert!(!status.success(), "a wrong PIN is refused");
    drop(card);

    let card = VirtualCard::builder()
        .state_dir(state.path())
        .start()
        .expect("restart the virtual card");
    let read = run(
        &card,
        "yubico-piv-tool",
        &["-a", "read-certificate", "-s", "9a"],
    );
    assert_eq!(
        String::from_utf8_lossy(&read.stdout).trim(),
        cert.trim(),
        "the certificate survives the restart"
    );
    let status = run(&card, "yubico-piv-tool", &["-a", "status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("PIN tries left:\t2"),
        "the PIN retry counter survives the restart:\n{status}"
    );
}

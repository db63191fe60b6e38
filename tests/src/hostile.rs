//! What a hostile member of the socket's group sends: crafted key files,
//! and measurements of the daemon (memory, `tufctl status` latency) while
//! it is under attack.

use crate::daemon::TestEnv;
use std::time::{Duration, Instant};

/// An `ENCRYPTED PRIVATE KEY` PEM file whose KDF is `kdf`. The ciphertext
/// is junk: a daemon that runs the KDF before refusing it would pay its
/// full cost first.
pub fn encrypted_key_file(kdf: pkcs8::pkcs5::pbes2::Kdf) -> String {
    use der::Encode;
    use pkcs8::pkcs5::pbes2::{EncryptionScheme, Parameters};
    let info = pkcs8::EncryptedPrivateKeyInfoRef {
        encryption_algorithm: Parameters {
            kdf,
            encryption: EncryptionScheme::Aes256Cbc { iv: [1; 16] },
        }
        .into(),
        encrypted_data: der::asn1::OctetStringRef::new(&[0u8; 160]).expect("octet string"),
    };
    let der = info.to_der().expect("DER");
    pem::encode(&pem::Pem::new("ENCRYPTED PRIVATE KEY", der))
}

/// A key file asking for scrypt with cost `n`, block size `r`, parallelism `p`.
pub fn scrypt_key_file(n: u64, r: u16, p: u16) -> String {
    encrypted_key_file(
        pkcs8::pkcs5::pbes2::ScryptParams {
            salt: [2u8; 16].as_slice().try_into().expect("salt"),
            cost_parameter: n,
            block_size: r,
            parallelization: p,
            key_length: Some(32),
        }
        .into(),
    )
}

/// A key file asking for PBKDF2-HMAC-SHA1 with `iterations` (the PRF
/// docker and notary use).
pub fn pbkdf2_key_file(iterations: u32) -> String {
    let mut params =
        pkcs8::pkcs5::pbes2::Pbkdf2Params::hmac_sha256(1, &[3u8; 16]).expect("PBKDF2 params");
    params.prf = pkcs8::pkcs5::pbes2::Pbkdf2Prf::HmacWithSha1;
    params.iteration_count = iterations;
    encrypted_key_file(params.into())
}

/// A process's peak and current resident memory in KiB (`VmHWM`, `VmRSS`).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Runs `tufctl status` `rounds` times and returns the slowest answer;
/// panics if one fails.
pub fn status_latency(env: &TestEnv, rounds: usize) -> Duration {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let out = env.tufctl(&["status"]);
            assert!(out.status.success(), "tufctl status failed: {out:?}");
            start.elapsed()
        })
        .max()
        .unwrap_or_default()
}

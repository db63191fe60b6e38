//! Signatures per second on SoftHSM2: raw `cryptoki` against tufd's key
//! layer (the session pool, the key index lookup and an OpenSSL
//! verification of every signature), with 1 and 2 workers: single
//! `sign_digest` calls on one session per worker and on one session, and
//! `sign_digests` batches on one session (the session signs the next digest
//! while another thread verifies the previous signature). Run with
//! `cargo bench -p tufd-keys --bench sign`.
//!
//! Set `TUFD_BENCH_SECONDS` to change the time per measurement (default 1),
//! `TUFD_BENCH_ROUNDS` the measurements per figure (default 3, the median
//! is shown) and `TUFD_BENCH_BATCH` the digests per `sign_digests` call
//! (default 64).

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tufd_keys::pkcs11::Pkcs11Store;
use tufd_keys::{KeyLabel, KeyStore};

#[path = "../tests/support/mod.rs"]
mod support;
use support::{MODULE, PIN};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `work` on `workers` threads for `secs`, returns operations/second.
fn measure<F>(workers: usize, secs: Duration, work: F) -> f64
where
    F: Fn(usize, &AtomicBool, &AtomicU64) + Sync,
{
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..workers {
            let (stop, count, work) = (&stop, &count, &work);
            s.spawn(move || work(w, stop, count));
        }
        std::thread::sleep(secs);
        stop.store(true, Ordering::Relaxed);
    });
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// A worker of the key layer: single `sign_digest` calls on `store`, or
/// `sign_digests` calls of `batch` digests (`batched`).
fn layer<'a>(
    store: &'a Pkcs11Store,
    key_id: &'a str,
    batch: usize,
    batched: bool,
) -> impl Fn(usize, &AtomicBool, &AtomicU64) + Sync + 'a {
    move |w, stop, count| {
        let jobs: Vec<(&str, [u8; 32])> = (0..batch)
            .map(|i| {
                let mut digest = [0u8; 32];
                digest[0] = w as u8;
                digest[1..9].copy_from_slice(&(i as u64).to_le_bytes());
                (key_id, digest)
            })
            .collect();
        while !stop.load(Ordering::Relaxed) {
            if batched {
                let sigs = store.sign_digests(&jobs).unwrap();
                count.fetch_add(sigs.len() as u64, Ordering::Relaxed);
            } else {
                store.sign_digest(key_id, &jobs[0].1).unwrap();
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let secs = Duration::from_secs_f64(
        std::env::var("TUFD_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1.0),
    );
    // The keys crate's test support: a SoftHSM2 token directory for this
    // process, with the token "bench" initialized before the module loads.
    let label = support::new_token("bench");
    let store = support::store(&label, support::env_pin(), 2);
    let key = store
        .generate(&KeyLabel::new("bench", "").unwrap())
        .unwrap();

    // Raw cryptoki on the same module and key: one session per worker.
    let ctx: Pkcs11 = support::modules().get(MODULE.as_ref()).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim() == label)
        .unwrap();
    let raw = |_: usize, stop: &AtomicBool, count: &AtomicU64| {
        let session = ctx.open_rw_session(slot).unwrap();
        let _ = session.login(UserType::User, Some(&AuthPin::from(PIN.to_owned())));
        let handle = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(hex::decode(&key.id).unwrap()),
            ])
            .unwrap()[0];
        let digest = [7u8; 32];
        while !stop.load(Ordering::Relaxed) {
            session.sign(&Mechanism::Ecdsa, handle, &digest).unwrap();
            count.fetch_add(1, Ordering::Relaxed);
        }
    };
    // The key layer limited to one session: the raw rate of one session
    // is the bound (issue 13: at least half of it).
    let store1 = support::store(&label, support::env_pin(), 1);
    let batch = std::env::var("TUFD_BENCH_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64usize)
        .max(1);
    let rounds = std::env::var("TUFD_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    // The key signs often in a daemon that signs at these rates: make it
    // hot first (its verification table is built at its 1024th signature,
    // in the background).
    let warm: Vec<(&str, [u8; 32])> = (0..2048u32)
        .map(|i| (key.id.as_str(), [i as u8; 32]))
        .collect();
    store.sign_digests(&warm).unwrap();
    store1.sign_digests(&warm).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    type Work<'a> = Box<dyn Fn(usize, &AtomicBool, &AtomicU64) + Sync + 'a>;
    let rows: Vec<(String, Work<'_>)> = vec![
        ("raw cryptoki (C_Sign only)".into(), Box::new(raw)),
        (
            "tufd sign_digest, one session per worker".into(),
            Box::new(layer(&store, &key.id, batch, false)),
        ),
        (
            "tufd sign_digest, one session".into(),
            Box::new(layer(&store1, &key.id, batch, false)),
        ),
        (
            format!("tufd sign_digests x{batch}, one session"),
            Box::new(layer(&store1, &key.id, batch, true)),
        ),
    ];
    // Each figure is the median of `rounds` measurements taken in turn
    // with all the others, so that a change in the machine's load (other
    // processes) reaches every row alike.
    let mut samples = vec![[Vec::new(), Vec::new()]; rows.len()];
    for _ in 0..rounds {
        for (i, (_, work)) in rows.iter().enumerate() {
            for (w, out) in samples[i].iter_mut().enumerate() {
                out.push(measure(w + 1, secs, &**work));
            }
        }
    }
    let fig: Vec<[f64; 2]> = samples
        .iter_mut()
        .map(|[a, b]| [median(a), median(b)])
        .collect();
    println!(
        "SoftHSM2 ECDSA P-256 signatures per second ({secs:?} per measurement, median of {rounds} rounds, {} cores, hot key)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let row = |name: &str, a: f64, b: f64| println!("{name:<48} {a:>10.0} {b:>10.0}");
    let pct = |name: &str, a: f64, b: f64| println!("{name:<48} {a:>9.0}% {b:>9.0}%");
    println!("{:<48} {:>10} {:>10}", "", "1 worker", "2 workers");
    for ((name, _), [a, b]) in rows.iter().zip(&fig) {
        row(name, *a, *b);
    }
    let [raw1, raw2] = fig[0];
    let [l1, l2] = fig[1];
    let [s1, s2] = fig[2];
    let [b1, b2] = fig[3];
    pct(
        "sign_digest on one session / raw one session",
        100.0 * s1 / raw1,
        100.0 * s2 / raw1,
    );
    pct(
        "sign_digests on one session / raw one session",
        100.0 * b1 / raw1,
        100.0 * b2 / raw1,
    );
    pct(
        "sign_digest per worker / raw per worker",
        100.0 * l1 / raw1,
        100.0 * l2 / raw2,
    );
    // The verification every key-layer signature gets, alone.
    let sig = store.sign_digest(&key.id, &[7u8; 32]).unwrap();
    let verify = |_: usize, stop: &AtomicBool, count: &AtomicU64| {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        use p256::pkcs8::DecodePublicKey;
        let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&key.spki_der).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        while !stop.load(Ordering::Relaxed) {
            vk.verify_prehash(&[7u8; 32], &sig).unwrap();
            count.fetch_add(1, Ordering::Relaxed);
        }
    };
    let p1 = measure(1, secs, verify);
    let p2 = measure(2, secs, verify);
    row("p256 verify_prehash alone (before)", p1, p2);
    // What the key layer runs for a key until it is hot (then it uses the
    // key's table, src/verify/table.rs): OpenSSL's ECDSA_do_verify.
    let verify_ossl = |_: usize, stop: &AtomicBool, count: &AtomicU64| {
        use openssl::bn::{BigNum, BigNumContext};
        use openssl::ec::{EcGroup, EcKey, EcPoint};
        use p256::pkcs8::DecodePublicKey;
        let pk = p256::PublicKey::from_public_key_der(&key.spki_der).unwrap();
        let group = EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let point = EcPoint::from_bytes(&group, &pk.to_sec1_bytes(), &mut ctx).unwrap();
        let ec = EcKey::from_public_key(&group, &point).unwrap();
        while !stop.load(Ordering::Relaxed) {
            let r = BigNum::from_slice(&sig[..32]).unwrap();
            let s = BigNum::from_slice(&sig[32..]).unwrap();
            let es = openssl::ecdsa::EcdsaSig::from_private_components(r, s).unwrap();
            assert!(es.verify(&[7u8; 32], &ec).unwrap());
            count.fetch_add(1, Ordering::Relaxed);
        }
    };
    let v1 = measure(1, secs, verify_ossl);
    let v2 = measure(2, secs, verify_ossl);
    row("OpenSSL ECDSA_do_verify alone (cold keys)", v1, v2);
    let per_sig_us = |rate: f64| 1e6 / rate;
    println!(
        "per signature, 1 worker: raw {:.1} µs, sign_digest {:.1} µs, sign_digests {:.1} µs",
        per_sig_us(raw1),
        per_sig_us(s1),
        per_sig_us(b1),
    );
}

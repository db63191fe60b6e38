//! Signing: `C_Sign`, or the context-specific login a key with
//! `CKA_ALWAYS_AUTHENTICATE` wants; every signature verified before it
//! is returned. A single signature is verified after its session went back
//! to the pool; a batch is a pipeline (this thread signs, another
//! verifies).

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

impl Pkcs11Store {
    /// Signs with a key that wants the PIN for each signature
    /// (`CKA_ALWAYS_AUTHENTICATE`, ykcs11's slot 9c keys): the gate's PIN
    /// and the token's tries checked as for `C_Login`, then `C_SignInit`,
    /// `C_Login(CKU_CONTEXT_SPECIFIC)` and single-part `C_Sign` (cryptoki's
    /// `sign` would call `C_SignInit` again; `CKM_ECDSA` has no
    /// `C_SignUpdate`). Any error once `C_SignInit` succeeded may leave the
    /// operation active: it is [`OpError::Spoiled`], and the session is
    /// closed instead of going back to the pool.
    pub(super) fn sign_context_specific(
        &self,
        session: &Session,
        entry: &Entry,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, OpError> {
        let conn = self.connect()?;
        let sign = self
            .modules
            .single_part_sign(&self.config.module)
            .map_err(|detail| KeyError::ModuleLoad {
                token: self.name_owned(),
                module: self.config.module.display().to_string(),
                detail,
            })?;
        let mut attempt = self.gate.login()?;
        let device = format!("token {}", conn.description.label);
        match self.tries_left(&conn) {
            None => return Err(attempt.blocked().into()),
            Some(tries) => attempt.check_tries(tries, &device)?,
        }
        session.sign_init(&Mechanism::Ecdsa, entry.private)?;
        let started = || -> Result<Vec<u8>, OpError> {
            match session.login(UserType::ContextSpecific, Some(attempt.pin())) {
                Ok(()) => attempt.accepted(),
                Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                    return Err(match self.tries_left(&conn) {
                        None => attempt.blocked(),
                        Some(tries) => attempt.rejected(tries),
                    }
                    .into());
                }
                Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                    return Err(attempt.blocked().into());
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(hook) = &self.sign_hook {
                hook()?;
            }
            Ok(sign.sign(session, digest)?)
        };
        started().map_err(|e| OpError::Spoiled(Box::new(e)))
    }

    /// Signs `digest` with `entry`'s key on `session` (raw `r || s`, not
    /// yet verified).
    fn sign_raw(
        &self,
        session: &Session,
        entry: &Entry,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, OpError> {
        if entry.always_authenticate {
            self.sign_context_specific(session, entry, digest)
        } else {
            session
                .sign(&Mechanism::Ecdsa, entry.private, digest)
                .map_err(|e| match e {
                    // C_SignInit succeeded: a token that does not end the
                    // operation on a failed C_Sign (as PKCS#11 says it
                    // must) would refuse the session's next C_SignInit.
                    CkError::Pkcs11(_, cryptoki::context::Function::Sign) => {
                        OpError::Spoiled(Box::new(e.into()))
                    }
                    e => e.into(),
                })
        }
    }

    fn bad_signature(&self, id: &str) -> KeyError {
        KeyError::BadSignature {
            token: self.name_owned(),
            key_id: id.to_owned(),
        }
    }

    /// [`KeyStore::sign_digest`]: signs, then verifies the signature.
    pub(super) fn sign_with(&self, id: &str, digest: &[u8; 32]) -> Result<[u8; 64], KeyError> {
        let (raw, entry) = self.run("signing", |s, session| {
            let entry = s.entry(session, id)?;
            let raw = s.sign_raw(session, &entry, digest)?;
            Ok((raw, entry))
        })?;
        // Verified after the session went back to the pool: another
        // caller's signature is made on it meanwhile.
        if !entry.verifier.verify(digest, &raw) {
            return Err(self.bad_signature(id));
        }
        let mut out = [0u8; 64];
        out.copy_from_slice(&raw);
        Ok(out)
    }

    /// [`KeyStore::sign_digests`]: a pipeline. This thread signs on one
    /// session while a second thread verifies the signatures already made;
    /// the signatures are returned only once all of them verified.
    pub(super) fn sign_many(&self, jobs: &[(&str, [u8; 32])]) -> Result<Vec<[u8; 64]>, KeyError> {
        if jobs.len() < 2 {
            return jobs.iter().map(|(id, d)| self.sign_with(id, d)).collect();
        }
        let (tx, rx) = mpsc::sync_channel::<Made>(PIPELINE_DEPTH);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let checker = std::thread::Builder::new()
                .name("tufd-verify".into())
                .spawn_scoped(scope, || verify_all(jobs, rx, &stop));
            let Ok(checker) = checker else {
                // No thread to be had: sign and verify one after another.
                return jobs.iter().map(|(id, d)| self.sign_with(id, d)).collect();
            };
            let signed = self.sign_all(jobs, tx, &stop);
            let checked = checker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            signed?;
            checked.map_err(|bad| match bad {
                Some(i) => self.bad_signature(jobs[i].0),
                None => KeyError::Device {
                    token: self.name_owned(),
                    operation: "signing",
                    detail: "the signing stopped before every digest was signed".into(),
                    source: None,
                },
            })
        })
    }

    /// The signing half of [`Pkcs11Store::sign_many`]: sends each
    /// signature to the verifier, and gives the session back to the pool
    /// after at most [`CHUNK`] signatures (a caller waiting for it may take
    /// it then; the pool does not promise it). Stops early when the
    /// verifier found a bad signature.
    fn sign_all(
        &self,
        jobs: &[(&str, [u8; 32])],
        tx: mpsc::SyncSender<Made>,
        stop: &AtomicBool,
    ) -> Result<(), KeyError> {
        let mut next = 0;
        while next < jobs.len() && !stop.load(Ordering::Relaxed) {
            let end = (next + CHUNK).min(jobs.len());
            self.run("signing", |s, session| {
                let mut last: Option<Arc<Entry>> = None;
                while next < end && !stop.load(Ordering::Relaxed) {
                    let (id, digest) = &jobs[next];
                    let entry = match last.take() {
                        Some(e) if e.record.id == *id => e,
                        _ => s.entry(session, id)?,
                    };
                    let raw = s.sign_raw(session, &entry, digest)?;
                    if tx.send((next, Arc::clone(&entry), raw)).is_err() {
                        // The verifier stopped: it found a bad signature.
                        return Ok(());
                    }
                    last = Some(entry);
                    next += 1;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// Signatures made on one session checkout at most.
const CHUNK: usize = 256;

/// Signatures waiting for the verifier at most.
const PIPELINE_DEPTH: usize = 64;

/// A signature on its way to the verifier: the job's index, its key and
/// the raw `r || s`.
type Made = (usize, Arc<Entry>, Vec<u8>);

/// The verifying half of [`Pkcs11Store::sign_many`]: every job's signature
/// in order, or the index of the first that does not verify (`Some`), or
/// `None` when the signer stopped before sending them all (its error is
/// the one reported).
fn verify_all(
    jobs: &[(&str, [u8; 32])],
    rx: mpsc::Receiver<Made>,
    stop: &AtomicBool,
) -> Result<Vec<[u8; 64]>, Option<usize>> {
    let mut out = vec![[0u8; 64]; jobs.len()];
    let mut verified = 0;
    for (i, entry, raw) in rx {
        if !entry.verifier.verify(&jobs[i].1, &raw) {
            stop.store(true, Ordering::Relaxed);
            return Err(Some(i));
        }
        out[i].copy_from_slice(&raw);
        verified += 1;
    }
    if verified == jobs.len() {
        Ok(out)
    } else {
        Err(None)
    }
}

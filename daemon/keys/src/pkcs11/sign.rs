//! Signing: `C_Sign`, or the context-specific login a key with
//! `CKA_ALWAYS_AUTHENTICATE` wants; every signature verified before it
//! is returned.

use super::*;

impl Pkcs11Store {
    /// Signs with a key that wants the PIN for each signature
    /// (`CKA_ALWAYS_AUTHENTICATE`, ykcs11's slot 9c keys): `C_SignInit`,
    /// `C_Login(CKU_CONTEXT_SPECIFIC)`, then the data. Single-part
    /// `C_Sign` would call `C_SignInit` again, so the data goes through
    /// `C_SignUpdate`/`C_SignFinal`.
    pub(super) fn sign_context_specific(
        &self,
        session: &Session,
        entry: &Entry,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, OpError> {
        let attempt = self.gate.login()?;
        session.sign_init(&Mechanism::Ecdsa, entry.private)?;
        match session.login(UserType::ContextSpecific, Some(attempt.pin())) {
            Ok(()) => attempt.accepted(),
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                return Err(attempt.rejected(TriesLeft::Unknown).into());
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => return Err(attempt.blocked().into()),
            Err(e) => return Err(e.into()),
        }
        session.sign_update(digest)?;
        Ok(session.sign_final()?)
    }

    /// [`KeyStore::sign_digest`]: signs, then verifies the signature.
    pub(super) fn sign_with(&self, id: &str, digest: &[u8; 32]) -> Result<[u8; 64], KeyError> {
        let (raw, verifying) = self.run("signing", |s, session| {
            let entry = s.entry(session, id)?;
            let raw = if entry.always_authenticate {
                s.sign_context_specific(session, &entry, digest)?
            } else {
                session.sign(&Mechanism::Ecdsa, entry.private, digest)?
            };
            Ok((raw, entry.verifying))
        })?;
        let bad = || KeyError::BadSignature {
            token: self.name_owned(),
            key_id: id.to_owned(),
        };
        let sig = p256::ecdsa::Signature::from_slice(&raw).map_err(|_| bad())?;
        verifying.verify_prehash(digest, &sig).map_err(|_| bad())?;
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        Ok(out)
    }
}

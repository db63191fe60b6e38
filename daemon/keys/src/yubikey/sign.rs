//! Signing in a slot: the PIN again when the key's policy wants it, the
//! touch the device waits for, and a verified signature.

use super::*;

impl YubiKeyStore {
    /// Signs `digest` in the key's slot (DER signature).
    ///
    /// A key that waits for a touch gets the PIN right before the
    /// signature, so that "security status not satisfied" (6982, the
    /// crate's `AuthenticationError`), which a YubiKey answers when nobody
    /// touched it in time, can mean nothing else. Any other unexpected
    /// answer (`GenericError`) goes to [`Self::run`], which selects PIV
    /// again and repeats the signature once.
    pub(super) fn sign_once(
        &self,
        dev: &mut Device,
        entry: &Entry,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, OpError> {
        self.ensure_pin(dev)?;
        let touch = entry.touch_policy.needs_touch();
        let each_time = entry.pin_policy.before_each_signature(entry.slot.id())
            || dev.pin_each_time.contains(&entry.slot)
            || touch;
        if each_time {
            self.reverify_pin(dev)?;
        }
        let first = piv::sign_data(
            &mut Self::conn(dev)?.yk,
            digest,
            AlgorithmId::EccP256,
            entry.slot.id(),
        );
        let result = match first {
            Err(yubikey::Error::AuthenticationError) if touch => {
                return Err(self.not_touched(&entry.record.label).into());
            }
            Err(yubikey::Error::AuthenticationError) => {
                // The device wants the PIN (again): the slot's policy wants
                // it before every signature (devices that ignore the
                // configured policy), or another program dropped it.
                if !each_time {
                    tracing::info!(token = %self.config.name, slot = %entry.slot,
                        "the YubiKey wants the PIN before signatures with this slot");
                    dev.pin_each_time.insert(entry.slot);
                }
                self.reverify_pin(dev)?;
                piv::sign_data(
                    &mut Self::conn(dev)?.yk,
                    digest,
                    AlgorithmId::EccP256,
                    entry.slot.id(),
                )
            }
            other => other,
        };
        Ok(result?.to_vec())
    }

    /// The error for a key (`what`) that waited for a touch in vain: the
    /// device answered 6982 although the PIN was verified right before.
    pub(super) fn not_touched(&self, what: &dyn std::fmt::Display) -> KeyError {
        KeyError::Device {
            token: self.name_owned(),
            operation: "signing",
            source: None,
            detail: format!(
                "{} was not touched in time (it waits about 15 seconds for a touch of key {what}); touch its contact when it blinks, then retry",
                self.serial_text(),
            ),
        }
    }

    /// [`KeyStore::sign_digest`]: signs in the key's slot, then verifies.
    pub(super) fn sign_with(&self, id: &str, digest: &[u8; 32]) -> Result<[u8; 64], KeyError> {
        let (der, entry) = self.run("signing", |s, dev| {
            let entry = s.entry(dev, id)?;
            let der = s.sign_once(dev, &entry, digest)?;
            Ok((der, entry))
        })?;
        let bad = || KeyError::BadSignature {
            token: self.name_owned(),
            key_id: id.to_owned(),
        };
        // The device answers in DER; the verifier takes `r || s`.
        let raw = p256::ecdsa::Signature::from_der(&der)
            .map_err(|_| bad())?
            .to_bytes();
        if !entry.verifier.verify(digest, &raw) {
            return Err(bad());
        }
        let mut out = [0u8; 64];
        out.copy_from_slice(&raw);
        Ok(out)
    }
}

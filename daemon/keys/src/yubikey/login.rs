//! The PIV PIN: presented through the token's [`PinGate`] after the
//! device's tries were read, again before each signature of a key with
//! PIN policy "always", and from unlock requests.

use super::*;

impl YubiKeyStore {
    /// Forgets a PIN given with `tufctl token unlock` once its time is up.
    /// For `pin = "prompt"` the card is reset too, so it forgets the
    /// verified PIN and the token is locked again.
    pub(super) fn expire_unlock(&self, dev: &mut Device) {
        if self.gate.expire()
            && let Some(conn) = dev.conn.take()
        {
            if let Err((_, e)) = conn.yk.disconnect(pcsc::Disposition::ResetCard) {
                tracing::debug!(error = %e, "resetting the card after the PIN expired failed");
            }
            dev.index = None;
        }
    }

    /// Refuses a PIN no PIV device accepts (more than 8 characters).
    pub(super) fn check_pin_length(&self, attempt: &Attempt<'_>) -> Result<(), KeyError> {
        if attempt.pin().expose_secret().len() > 8 {
            return Err(KeyError::PinSource {
                token: self.name_owned(),
                detail: format!(
                    "the PIN from {} is longer than 8 characters, which a PIV PIN cannot be",
                    self.config.pin
                ),
            });
        }
        Ok(())
    }

    /// Verifies the PIN the gate hands out: asks the device for the tries
    /// left first (this re-selects the PIV application, dropping PIN and
    /// management-key authentication); the gate refuses the last try and
    /// any PIN the device rejected.
    pub(super) fn verify_pin(&self, dev: &mut Device) -> Result<(), OpError> {
        let attempt = self.gate.login()?;
        self.check_pin_length(&attempt)?;
        self.present_pin(dev, attempt)
    }

    /// Presents the attempt's PIN (see [`Self::verify_pin`]) and tells the
    /// gate the outcome.
    pub(super) fn present_pin(
        &self,
        dev: &mut Device,
        mut attempt: Attempt<'_>,
    ) -> Result<(), OpError> {
        let device = self.serial_text();
        let conn = Self::conn(dev)?;
        conn.pin_verified = false;
        conn.admin = false;
        // 0 is also what the crate reports when the device still counts
        // the PIN as verified: the VERIFY below tells a blocked PIN.
        let tries = match conn.yk.get_pin_retries()? {
            0 => TriesLeft::Unknown,
            n => TriesLeft::Exactly(n),
        };
        attempt.check_tries(tries, &device)?;
        let factory = attempt.pin().expose_secret() == FACTORY_PIN;
        match conn.yk.verify_pin(attempt.pin().expose_secret().as_bytes()) {
            Ok(()) => {
                conn.pin_verified = true;
                attempt.accepted();
                tracing::info!(token = %self.config.name, "PIN verified");
                if factory {
                    tracing::warn!(token = %self.config.name, serial = self.config.serial,
                        "the YubiKey still has the factory-default PIN: change it (`ykman piv access change-pin`) and the PUK (`ykman piv access change-puk`)");
                }
                Ok(())
            }
            Err(yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked) => {
                Err(attempt.blocked().into())
            }
            Err(yubikey::Error::WrongPin { tries }) => {
                Err(attempt.rejected(TriesLeft::Exactly(tries)).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Verifies the PIN unless this connection already did.
    pub(super) fn ensure_pin(&self, dev: &mut Device) -> Result<(), OpError> {
        if Self::conn(dev)?.pin_verified {
            return Ok(());
        }
        self.verify_pin(dev)
    }

    /// Presents the PIN again right before an operation that needs it (PIN
    /// policy "always"), without re-selecting the application, so the
    /// management-key authentication stays. Only a PIN the device accepted
    /// before is presented this way; otherwise a full
    /// [`Self::verify_pin`] runs.
    pub(super) fn reverify_pin(&self, dev: &mut Device) -> Result<(), OpError> {
        let attempt = self.gate.login()?;
        if !attempt.previously_accepted() || !Self::conn(dev)?.pin_verified {
            drop(attempt);
            return self.verify_pin(dev);
        }
        let conn = Self::conn(dev)?;
        match conn.yk.verify_pin(attempt.pin().expose_secret().as_bytes()) {
            Ok(()) => {
                attempt.accepted();
                Ok(())
            }
            Err(yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked) => {
                conn.pin_verified = false;
                Err(attempt.blocked().into())
            }
            Err(yubikey::Error::WrongPin { tries }) => {
                // Changed by someone else since it was accepted.
                conn.pin_verified = false;
                Err(attempt.rejected(TriesLeft::Exactly(tries)).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`KeyStore::unlock`]: the gate decides whether the PIN reaches the device.
    pub(super) fn unlock_token(&self, pin: secrecy::SecretString) -> Result<(), KeyError> {
        crate::gate::check_length(&self.config.name, &pin, 8)?;
        let extended = self.run("unlocking the token", |s, dev| {
            // Verified on this connection: the gate never lets this PIN
            // reach the device (a wrong one would drop the verification).
            // Read with the device held: no verification comes between.
            let ready = Self::conn(dev)?.pin_verified;
            match s.gate.unlock(pin.clone(), || Ok(ready))? {
                UnlockStart::Extended => Ok(true),
                UnlockStart::Present(attempt) => s.present_pin(dev, attempt).map(|()| false),
            }
        })?;
        if extended {
            tracing::info!(token = %self.config.name,
                "unlock with the PIN the device accepted: cache time extended");
            return Ok(());
        }
        tracing::info!(token = %self.config.name, serial = self.config.serial,
            cache_seconds = self.config.pin_cache.map_or(0, |d| d.as_secs()),
            "token unlocked with a PIN given over the socket (0: until the daemon stops)");
        Ok(())
    }
}

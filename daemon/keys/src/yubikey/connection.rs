//! The connection to the device: found by serial among the PC/SC readers,
//! one command at a time behind the device mutex, reconnected once when
//! another program reset the card.

use super::*;

/// The open device and what it has verified on this connection.
pub(super) struct Conn {
    pub(super) yk: YubiKey,
    /// The PIN is verified on this connection (as far as tufd knows).
    pub(super) pin_verified: bool,
    /// Authenticated with the management key.
    pub(super) admin: bool,
}

/// A failure inside an operation: a device error (which may call for a
/// reconnect) or a final key-layer error.
pub(super) enum OpError {
    Yk(yubikey::Error),
    Key(KeyError),
}

impl From<yubikey::Error> for OpError {
    fn from(e: yubikey::Error) -> Self {
        OpError::Yk(e)
    }
}

impl From<KeyError> for OpError {
    fn from(e: KeyError) -> Self {
        OpError::Key(e)
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Yk(e) => e.fmt(f),
            OpError::Key(e) => e.fmt(f),
        }
    }
}

/// What to do about a device error in the middle of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recovery {
    /// The connection is gone (card reset by another program, removed,
    /// pcscd restarted): connect again by serial and repeat once.
    Reconnect,
    /// The device gave a status word the PIV driver does not expect (the
    /// `yubikey` crate's `GenericError`), as a YubiKey does when another
    /// program (ykman, scdaemon, an OATH client) left its own application
    /// selected on the shared connection: connect again, which selects
    /// PIV, verify the PIN again and repeat once.
    Reselect,
    /// The device's answer stands.
    Fail,
}

/// The [`Recovery`] for device error `e`.
pub(super) fn recovery(e: &yubikey::Error) -> Recovery {
    if connection_lost(e) {
        Recovery::Reconnect
    } else if matches!(e, yubikey::Error::GenericError) {
        Recovery::Reselect
    } else {
        Recovery::Fail
    }
}

/// Whether a device error means the connection is gone (the card was reset
/// by another program, removed, or pcscd restarted): reconnect and retry.
pub(super) fn connection_lost(e: &yubikey::Error) -> bool {
    use pcsc::Error as P;
    match e {
        yubikey::Error::PcscError { inner: None } => true,
        yubikey::Error::PcscError { inner: Some(p) } => matches!(
            p,
            P::ResetCard
                | P::ProtoMismatch
                | P::RemovedCard
                | P::NoSmartcard
                | P::InvalidHandle
                | P::ReaderUnavailable
                | P::UnknownReader
                | P::UnpoweredCard
                | P::UnresponsiveCard
                | P::NotTransacted
                | P::CommError
                | P::NoService
                | P::ServiceStopped
                | P::InvalidValue
        ),
        _ => false,
    }
}

impl YubiKeyStore {
    pub(super) fn lock(&self) -> MutexGuard<'_, Device> {
        self.device.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds the device among the PC/SC readers by serial.
    pub(super) fn connect(&self) -> Result<Conn, KeyError> {
        let pcsc_error = |e: yubikey::Error| KeyError::Device {
            token: self.name_owned(),
            operation: "listing PC/SC readers",
            detail: format!("{e}; is pcscd running (systemctl status pcscd.socket)?"),
            source: Some(e.into()),
        };
        let mut context = yubikey::reader::Context::open().map_err(pcsc_error)?;
        let readers = context.iter().map_err(pcsc_error)?;
        let mut seen = Vec::new();
        for reader in readers {
            let Ok(yk) = reader.open() else {
                continue;
            };
            if yk.serial().0 == self.config.serial {
                tracing::info!(token = %self.config.name, serial = self.config.serial,
                    reader = %yk.name(), version = %yk.version(), "YubiKey found");
                return Ok(Conn {
                    yk,
                    pin_verified: false,
                    admin: false,
                });
            }
            seen.push(format!("serial {} in '{}'", yk.serial(), yk.name()));
            // Not ours: leave it as it was.
            let _ = yk.disconnect(pcsc::Disposition::LeaveCard);
        }
        Err(KeyError::TokenNotFound {
            token: self.name_owned(),
            selector: format!("YubiKey serial {}", self.config.serial),
            seen: if seen.is_empty() {
                "no YubiKey".into()
            } else {
                seen.join(", ")
            },
        })
    }

    /// Forgets the connection without resetting the card (another program
    /// may be using it).
    pub(super) fn disconnect(dev: &mut Device) {
        if let Some(conn) = dev.conn.take()
            && let Err((yk, e)) = conn.yk.disconnect(pcsc::Disposition::LeaveCard)
        {
            tracing::debug!(error = %e, "disconnect after a lost connection failed");
            drop(yk);
        }
        dev.index = None;
    }

    /// Runs `op` with the device to itself, connecting again (which selects
    /// PIV) and repeating it once when the connection was lost (card reset
    /// by another program, device replugged) or the device answered
    /// unexpectedly (another application selected); see [`recovery`].
    pub(super) fn run<T>(
        &self,
        operation: &'static str,
        mut op: impl FnMut(&Self, &mut Device) -> Result<T, OpError>,
    ) -> Result<T, KeyError> {
        let mut dev = self.lock();
        self.expire_unlock(&mut dev);
        let mut retried = false;
        dev.reselected = false;
        loop {
            if dev.conn.is_none() {
                dev.conn = Some(self.connect()?);
                dev.index = None;
            }
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(self, &mut dev)));
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(panic) => {
                    // The `yubikey` crate indexes device answers without
                    // checking them in places: a malformed answer must not
                    // take the daemon's worker down.
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Self::disconnect(&mut dev);
                    return Err(KeyError::Device {
                        token: self.name_owned(),
                        operation,
                        source: None,
                        detail: format!(
                            "the device gave an answer the PIV driver cannot handle ({what}); {} was disconnected",
                            self.serial_text()
                        ),
                    });
                }
            };
            let e = match outcome {
                Ok(v) => {
                    dev.reselected = false;
                    return Ok(v);
                }
                Err(OpError::Key(e)) => {
                    dev.reselected = false;
                    return Err(e);
                }
                Err(OpError::Yk(e)) => e,
            };
            let recovery = recovery(&e);
            if recovery == Recovery::Fail || retried {
                if recovery != Recovery::Fail {
                    Self::disconnect(&mut dev);
                }
                dev.reselected = false;
                return Err(self.device_error(operation, e));
            }
            retried = true;
            Self::disconnect(&mut dev);
            if recovery == Recovery::Reselect {
                dev.reselected = true;
                tracing::warn!(token = %self.config.name, operation, error = %e,
                    "unexpected answer from the YubiKey (another program left another application selected?); selecting PIV again");
            } else {
                tracing::warn!(token = %self.config.name, operation, error = %e,
                    "YubiKey connection lost (reset by another program?); reconnecting");
            }
        }
    }

    pub(super) fn conn(dev: &mut Device) -> Result<&mut Conn, OpError> {
        dev.conn
            .as_mut()
            .ok_or(OpError::Yk(yubikey::Error::PcscError { inner: None }))
    }
}

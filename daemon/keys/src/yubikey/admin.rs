//! The PIV management key: authenticating with it, and the set-up that
//! replaces a factory-default key.

use super::*;

impl YubiKeyStore {
    /// Authenticates with the management key, replacing the factory default
    /// first if the device still has it (set-up). Returns whether it did.
    pub(super) fn ensure_admin(&self, dev: &mut Device) -> Result<SetUp, OpError> {
        self.ensure_pin(dev)?;
        let reselected = dev.reselected;
        let conn = Self::conn(dev)?;
        if conn.admin {
            return Ok(SetUp::AlreadySetUp);
        }
        let configured: Option<Zeroizing<Vec<u8>>> = match &self.config.management_key {
            ManagementKeySource::PinProtected => match mgm::read_protected(&mut conn.yk) {
                // With PIV freshly selected, the device's refusal means it
                // holds no readable protected key.
                Err(yubikey::Error::GenericError) if reselected => None,
                other => other?,
            },
            ManagementKeySource::Configured(source) => {
                let text = source.read().map_err(|detail| KeyError::Device {
                    token: self.name_owned(),
                    operation: "reading the management key",
                    source: None,
                    detail: format!("{detail} (management_key {source})"),
                })?;
                Some(
                    mgm::parse_hex(text.expose_secret()).map_err(|detail| KeyError::Device {
                        token: self.name_owned(),
                        operation: "reading the management key",
                        source: None,
                        detail: format!("{detail} (management_key {source})"),
                    })?,
                )
            }
        };
        if let Some(bytes) = &configured {
            for key in mgm::candidates(&mut conn.yk, bytes) {
                match conn.yk.authenticate(&key) {
                    Ok(()) => {
                        conn.admin = true;
                        return Ok(SetUp::AlreadySetUp);
                    }
                    Err(yubikey::Error::AuthenticationError) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // Not the configured key: is it still the factory default?
        let default = MgmKey::get_default(&conn.yk)?;
        match conn.yk.authenticate(&default) {
            Ok(()) => {}
            Err(yubikey::Error::AuthenticationError) => {
                let detail = match (&self.config.management_key, &configured) {
                    (ManagementKeySource::PinProtected, Some(_)) => format!(
                        "the PIN-protected management key stored on {} does not authenticate; set a new one with `ykman piv access change-management-key --generate --protect`",
                        self.serial_text()
                    ),
                    (ManagementKeySource::PinProtected, None) => format!(
                        "{} has no PIN-protected management key and not the factory default; protect it with `ykman piv access change-management-key --generate --protect`, or configure management_key = \"env:…\" or \"file:…\"",
                        self.serial_text()
                    ),
                    (ManagementKeySource::Configured(source), _) => format!(
                        "the management key from {source} is not the management key of {}",
                        self.serial_text()
                    ),
                };
                return Err(KeyError::Device {
                    token: self.name_owned(),
                    operation: "authenticating with the management key",
                    source: None,
                    detail,
                }
                .into());
            }
            Err(e) => return Err(e.into()),
        }
        self.replace_default(conn, configured.as_deref().map(Vec::as_slice))?;
        Ok(SetUp::ReplacedDefaultManagementKey)
    }

    /// Set-up: replaces the factory-default management key (the device is
    /// authenticated with it) by the configured one or a new PIN-protected
    /// random key, and authenticates with the new key.
    pub(super) fn replace_default(
        &self,
        conn: &mut Conn,
        configured: Option<&[u8]>,
    ) -> Result<(), OpError> {
        let version = conn.yk.version();
        match (&self.config.management_key, configured) {
            (ManagementKeySource::Configured(source), Some(bytes)) => {
                let preferred = mgm::new_key_algorithm(version);
                let key = MgmKey::from_bytes(bytes, Some(preferred))
                    .or_else(|_| MgmKey::from_bytes(bytes, None))
                    .or_else(|_| {
                        let mut candidates = mgm::candidates(&mut conn.yk, bytes);
                        candidates.pop().ok_or(yubikey::Error::SizeError)
                    })?;
                key.set_manual(&mut conn.yk, false)?;
                conn.yk.authenticate(&key)?;
                tracing::warn!(token = %self.config.name, serial = self.config.serial, %source,
                    "set-up: replaced the factory-default PIV management key by the configured one");
            }
            _ => {
                let key = mgm::new_key(version)?;
                if let Err(e) = key.set_protected(&mut conn.yk) {
                    // The key may be set without being stored: put the
                    // default back rather than lose the management key.
                    let restored = conn
                        .yk
                        .authenticate(&key)
                        .and_then(|()| MgmKey::set_default(&mut conn.yk));
                    tracing::error!(token = %self.config.name, error = %e, restored = restored.is_ok(),
                        "set-up: storing the PIN-protected management key failed");
                    return Err(e.into());
                }
                conn.yk.authenticate(&key)?;
                tracing::warn!(token = %self.config.name, serial = self.config.serial,
                    "set-up: replaced the factory-default PIV management key by a random key stored PIN-protected on the device (as `ykman piv access change-management-key --generate --protect`)");
            }
        }
        conn.admin = true;
        Ok(())
    }

    /// Makes sure the device does not keep the factory-default management
    /// key: authenticates with the configured (or PIN-protected) management
    /// key, replacing the default if the device still has it. Generating or
    /// importing a key does this by itself; this is for set-up scripts.
    pub fn set_up(&self) -> Result<SetUp, KeyError> {
        self.run("setting up the YubiKey", |s, dev| s.ensure_admin(dev))
    }
}

//! Errors of the key layer, each naming the token and what to do.

use std::fmt;

/// How many PIN attempts the token says are left, as far as it tells.
///
/// PKCS#11 tokens report only flags, not a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriesLeft {
    /// The token reports no warning (or cannot count).
    Unknown,
    /// The token reports that few tries are left.
    Low,
    /// The next wrong PIN locks the token.
    FinalTry,
    /// An exact count (PIV devices report one).
    Exactly(u8),
}

impl fmt::Display for TriesLeft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TriesLeft::Unknown => f.write_str("the token does not report how many tries are left"),
            TriesLeft::Low => f.write_str("the token reports that few tries are left"),
            TriesLeft::FinalTry => {
                f.write_str("ONE try is left: the next wrong PIN locks the token")
            }
            TriesLeft::Exactly(n) => write!(f, "{n} tries left"),
        }
    }
}

/// Everything that can go wrong in the key layer.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PKCS#11 module could not be loaded or initialized.
    #[error(
        "token '{token}': cannot load PKCS#11 module '{module}': {detail}; check `module` in the tufd configuration (is the package that ships it installed?)"
    )]
    ModuleLoad {
        token: String,
        module: String,
        detail: String,
    },

    /// No token matches the configured label or serial.
    #[error(
        "token '{token}': no token with {selector} is present (tokens seen: {seen}); check the `label`/`serial` in the tufd configuration and that the device is connected"
    )]
    TokenNotFound {
        token: String,
        selector: String,
        seen: String,
    },

    /// The PIN could not be read from its configured source.
    #[error("token '{token}': cannot read the PIN: {detail}")]
    PinSource { token: String, detail: String },

    /// The token rejected the PIN. tufd never retries a rejected PIN.
    #[error(
        "token '{token}': the token rejected the configured PIN ({tries}); tufd will not try this PIN again: correct the PIN source, then retry"
    )]
    PinRejected { token: String, tries: TriesLeft },

    /// The token's user PIN is locked.
    #[error(
        "token '{token}': the user PIN is locked; the token's security officer must unlock or reset it"
    )]
    PinLocked { token: String },

    /// The token waits for an administrator's PIN (`pin = "prompt"`, or
    /// the PIN given with `tufctl token unlock` expired).
    #[error(
        "token '{token}' is locked: run `tufctl token unlock {token}` to give its PIN (the daemon keeps it for the configured pin_cache_seconds)"
    )]
    Locked { token: String },

    /// Presenting a PIN would use one of the device's last tries.
    #[error(
        "token '{token}': {device} reports few PIN tries left: tufd does not present a PIN it has not seen accepted unless the administrator sets `allow_last_pin_try = true` on the token in the daemon configuration (then restart tufd and give the correct PIN; a correct PIN restores the tries)"
    )]
    LastPinTry { token: String, device: String },

    /// An unlock request for a token that is logged in with another PIN.
    #[error(
        "token '{token}' is already unlocked (logged in with another PIN); nothing was presented to the device"
    )]
    AlreadyUnlocked { token: String },

    /// Too many wrong PINs were sent with unlock requests lately.
    #[error(
        "token '{token}': {attempts} wrong PINs were sent with `tufctl token unlock` recently; no PIN is presented to the device for {retry_after} more seconds (this protects its retry counter)"
    )]
    UnlockBudget {
        token: String,
        attempts: u32,
        retry_after: u64,
    },

    /// The PIN given with `tufctl token unlock` was rejected.
    #[error(
        "token '{token}': wrong PIN ({tries}); nothing was cached: run `tufctl token unlock {token}` again with the right PIN"
    )]
    UnlockRejected { token: String, tries: TriesLeft },

    /// The token cannot be unlocked from the CLI.
    #[error(
        "token '{token}': this token type cannot be unlocked with `tufctl token unlock`; configure its PIN source (env: or file:)"
    )]
    UnlockUnsupported { token: String },

    /// A key name or repository is not acceptable.
    #[error("invalid key name: {0}")]
    InvalidLabel(String),

    /// No key matches.
    #[error("token '{token}': no key {what}")]
    KeyNotFound { token: String, what: String },

    /// A key with that name or identifier already exists.
    #[error("token '{token}': {what} already exists")]
    AlreadyExists { token: String, what: String },

    /// The key material to import is not usable.
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),

    /// The token produced a signature that does not verify.
    #[error(
        "token '{token}': the signature made with key {key_id} does not verify; the token may be faulty, the signature was discarded"
    )]
    BadSignature { token: String, key_id: String },

    /// The token did not apply the protection tufd asked for on a new key
    /// (`CKA_SENSITIVE`, `CKA_EXTRACTABLE=false`); the key was destroyed.
    #[error(
        "token '{token}' ({device}) created the key {what} but did not keep it {missing}, as tufd asked; the key was destroyed. Use a token (or token configuration) that honours CKA_SENSITIVE=true and CKA_EXTRACTABLE=false"
    )]
    Unprotected {
        token: String,
        /// The token as it describes itself (label, manufacturer, model).
        device: String,
        what: String,
        /// The protection missing, such as "non-extractable".
        missing: &'static str,
    },

    /// The device does not hold what tufd expects (corrupt or foreign objects).
    #[error("token '{token}': {detail}")]
    Corrupt { token: String, detail: String },

    /// Any other device error.
    #[error("token '{token}': {operation} failed: {detail}")]
    Device {
        token: String,
        operation: &'static str,
        detail: String,
        /// The driver's error, when one caused this.
        #[source]
        source: Option<DeviceError>,
    },
}

/// The driver error behind a [`KeyError::Device`], kept with its type.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A PKCS#11 call failed (return value and function).
    #[error(transparent)]
    Pkcs11(#[from] cryptoki::error::Error),
    /// A PIV command or PC/SC call failed.
    #[error(transparent)]
    Piv(#[from] yubikey::Error),
}

impl KeyError {
    /// True when the error means "this token cannot be used right now" as
    /// opposed to "this request is wrong".
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            KeyError::ModuleLoad { .. } | KeyError::TokenNotFound { .. } | KeyError::Device { .. }
        )
    }
}

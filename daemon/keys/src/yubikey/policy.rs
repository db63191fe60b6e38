//! PIN and touch policies, management-key sources and PIV slots as tufd
//! configures them.
//!
//! These types are tufd's own (parsed from the configuration) and map to the
//! `yubikey` crate's types only inside this module, so the daemon's
//! configuration code does not depend on the crate.

use crate::pin::PinSource;
use yubikey::piv::{RetiredSlotId, SlotId};

/// How often the YubiKey wants the PIN for a key (set when the key is made,
/// fixed afterwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPinPolicy {
    /// The slot's default (9c: always, 9e: never, others: once).
    Default,
    /// No PIN for signatures.
    Never,
    /// The PIN once per session (tufd verifies it after connecting).
    Once,
    /// The PIN right before every signature (tufd presents it each time).
    Always,
}

/// Whether the YubiKey waits for a touch of its contact before it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTouchPolicy {
    /// The slot's default (never).
    Default,
    /// No touch.
    Never,
    /// A touch for every signature.
    Always,
    /// A touch, remembered for 15 seconds.
    Cached,
}

impl KeyPinPolicy {
    /// The configuration / certificate spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyPinPolicy::Default => "default",
            KeyPinPolicy::Never => "never",
            KeyPinPolicy::Once => "once",
            KeyPinPolicy::Always => "always",
        }
    }

    pub(crate) fn to_yubikey(self) -> yubikey::PinPolicy {
        match self {
            KeyPinPolicy::Default => yubikey::PinPolicy::Default,
            KeyPinPolicy::Never => yubikey::PinPolicy::Never,
            KeyPinPolicy::Once => yubikey::PinPolicy::Once,
            KeyPinPolicy::Always => yubikey::PinPolicy::Always,
        }
    }

    pub(crate) fn from_yubikey(p: yubikey::PinPolicy) -> Self {
        match p {
            yubikey::PinPolicy::Default => KeyPinPolicy::Default,
            yubikey::PinPolicy::Never => KeyPinPolicy::Never,
            yubikey::PinPolicy::Once => KeyPinPolicy::Once,
            yubikey::PinPolicy::Always => KeyPinPolicy::Always,
        }
    }

    /// Whether a signature with a key of this policy in `slot` needs a PIN
    /// verification right before it, as a YubiKey enforces it.
    pub(crate) fn before_each_signature(self, slot: SlotId) -> bool {
        match self {
            KeyPinPolicy::Always => true,
            KeyPinPolicy::Default => slot == SlotId::Signature,
            KeyPinPolicy::Never | KeyPinPolicy::Once => false,
        }
    }
}

impl KeyTouchPolicy {
    /// The configuration / certificate spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyTouchPolicy::Default => "default",
            KeyTouchPolicy::Never => "never",
            KeyTouchPolicy::Always => "always",
            KeyTouchPolicy::Cached => "cached",
        }
    }

    /// Whether signing may wait for a touch.
    pub fn needs_touch(self) -> bool {
        matches!(self, KeyTouchPolicy::Always | KeyTouchPolicy::Cached)
    }

    pub(crate) fn to_yubikey(self) -> yubikey::TouchPolicy {
        match self {
            KeyTouchPolicy::Default => yubikey::TouchPolicy::Default,
            KeyTouchPolicy::Never => yubikey::TouchPolicy::Never,
            KeyTouchPolicy::Always => yubikey::TouchPolicy::Always,
            KeyTouchPolicy::Cached => yubikey::TouchPolicy::Cached,
        }
    }

    pub(crate) fn from_yubikey(p: yubikey::TouchPolicy) -> Self {
        match p {
            yubikey::TouchPolicy::Default => KeyTouchPolicy::Default,
            yubikey::TouchPolicy::Never => KeyTouchPolicy::Never,
            yubikey::TouchPolicy::Always => KeyTouchPolicy::Always,
            yubikey::TouchPolicy::Cached => KeyTouchPolicy::Cached,
        }
    }
}

impl std::str::FromStr for KeyPinPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(KeyPinPolicy::Default),
            "never" => Ok(KeyPinPolicy::Never),
            "once" => Ok(KeyPinPolicy::Once),
            "always" => Ok(KeyPinPolicy::Always),
            other => Err(format!(
                "unknown PIN policy {other:?}: use \"once\", \"always\", \"never\" or \"default\""
            )),
        }
    }
}

impl std::str::FromStr for KeyTouchPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "default" => Ok(KeyTouchPolicy::Default),
            "never" => Ok(KeyTouchPolicy::Never),
            "always" => Ok(KeyTouchPolicy::Always),
            "cached" => Ok(KeyTouchPolicy::Cached),
            other => Err(format!(
                "unknown touch policy {other:?}: use \"always\", \"cached\", \"never\" or \"default\""
            )),
        }
    }
}

/// Where the PIV management key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum ManagementKeySource {
    /// Stored on the device in the PIN-protected data object, as
    /// `ykman piv access change-management-key --generate --protect` does.
    /// tufd reads it after verifying the PIN.
    PinProtected,
    /// Hex digits (48 for 3DES or AES-192, 32 for AES-128, 64 for AES-256)
    /// from an environment variable or a file.
    Configured(PinSource),
}

impl std::fmt::Debug for ManagementKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for ManagementKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManagementKeySource::PinProtected => f.write_str("pin-protected"),
            ManagementKeySource::Configured(src) => write!(f, "{src}"),
        }
    }
}

impl std::str::FromStr for ManagementKeySource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "pin-protected" {
            return Ok(ManagementKeySource::PinProtected);
        }
        if s == "prompt" {
            return Err(
                "management_key cannot be \"prompt\": use \"pin-protected\", env:NAME or file:PATH"
                    .into(),
            );
        }
        s.parse::<PinSource>()
            .map(ManagementKeySource::Configured)
            .map_err(|e| {
                format!("management_key: use \"pin-protected\", env:NAME or file:PATH ({e})")
            })
    }
}

/// Slots tufd fills, in order, when the configuration names none: the four
/// standard slots, then the twenty retired key-management slots.
pub const DEFAULT_SLOTS: [u8; 24] = [
    0x9c, 0x9e, 0x9d, 0x9a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d,
    0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95,
];

/// The slots tufd may generate or import keys in, in order of preference.
///
/// The difference matters on devices that cannot say whether a slot holds
/// a key (GET METADATA needs firmware 5.3): there a slot without a
/// certificate counts as free only when the administrator listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotChoice {
    /// No `slots` configured: [`DEFAULT_SLOTS`], each used only where the
    /// device shows it empty (GET METADATA) or where tufd freed it.
    Default,
    /// `slots = [...]`: slots the administrator gave to tufd. Without GET
    /// METADATA, a listed slot without a certificate counts as free (a key
    /// in it, another application's, would be overwritten).
    Configured(Vec<KeySlot>),
}

impl SlotChoice {
    /// The slots in order of preference.
    pub fn order(&self) -> Vec<KeySlot> {
        match self {
            SlotChoice::Default => KeySlot::defaults(),
            SlotChoice::Configured(slots) => slots.clone(),
        }
    }

    /// Whether the administrator listed `slot` in `slots`.
    pub fn listed(&self, slot: KeySlot) -> bool {
        matches!(self, SlotChoice::Configured(slots) if slots.contains(&slot))
    }
}

/// The PIV slot with key reference `r` (9a, 9c, 9d, 9e, 82–95).
pub(crate) fn slot_from_u8(r: u8) -> Option<SlotId> {
    use RetiredSlotId::*;
    Some(match r {
        0x9a => SlotId::Authentication,
        0x9c => SlotId::Signature,
        0x9d => SlotId::KeyManagement,
        0x9e => SlotId::CardAuthentication,
        0x82..=0x95 => SlotId::Retired(
            [
                R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, R11, R12, R13, R14, R15, R16, R17, R18,
                R19, R20,
            ][usize::from(r - 0x82)],
        ),
        _ => return None,
    })
}

/// A PIV slot that can hold a tufd key: 9a, 9c, 9d, 9e or a retired
/// key-management slot 82–95 (never the attestation slot f9 or others).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeySlot(SlotId);

impl KeySlot {
    /// The key slot with reference `r`, if `r` names one.
    pub fn from_reference(r: u8) -> Option<Self> {
        slot_from_u8(r).map(Self)
    }

    /// The slot's key reference (0x9c…).
    pub fn reference(self) -> u8 {
        u8::from(self.0)
    }

    /// The slot as the `yubikey` crate names it.
    pub fn id(self) -> SlotId {
        self.0
    }

    /// [`DEFAULT_SLOTS`] as key slots.
    pub fn defaults() -> Vec<Self> {
        DEFAULT_SLOTS
            .iter()
            .filter_map(|r| Self::from_reference(*r))
            .collect()
    }
}

/// The key reference in hex, as ykman writes it.
impl std::fmt::Display for KeySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x}", self.reference())
    }
}

impl std::str::FromStr for KeySlot {
    type Err = String;

    /// A slot as written in the configuration: "9c", "0x9c", "82".
    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s.trim_start_matches("0x");
        u8::from_str_radix(hex, 16)
            .ok()
            .and_then(Self::from_reference)
            .ok_or_else(|| {
                format!("PIV slot {s:?}: use one of 9a, 9c, 9d, 9e or a retired slot 82 to 95")
            })
    }
}

/// Parses a slot as written in the configuration: "9c", "0x9c", "82".
pub fn parse_slot(s: &str) -> Result<KeySlot, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policies_and_sources() {
        assert_eq!("once".parse::<KeyPinPolicy>(), Ok(KeyPinPolicy::Once));
        assert_eq!(
            "cached".parse::<KeyTouchPolicy>(),
            Ok(KeyTouchPolicy::Cached)
        );
        assert!("sometimes".parse::<KeyTouchPolicy>().is_err());
        assert_eq!(
            "pin-protected".parse::<ManagementKeySource>(),
            Ok(ManagementKeySource::PinProtected)
        );
        assert_eq!(
            "env:MGM".parse::<ManagementKeySource>(),
            Ok(ManagementKeySource::Configured(PinSource::Env(
                "MGM".into()
            )))
        );
        assert!("010203".parse::<ManagementKeySource>().is_err());
    }

    #[test]
    fn maps_to_the_crate_and_back() {
        for p in [
            KeyPinPolicy::Default,
            KeyPinPolicy::Never,
            KeyPinPolicy::Once,
            KeyPinPolicy::Always,
        ] {
            assert_eq!(KeyPinPolicy::from_yubikey(p.to_yubikey()), p);
            assert_eq!(p.as_str().parse::<KeyPinPolicy>(), Ok(p));
        }
        for t in [
            KeyTouchPolicy::Default,
            KeyTouchPolicy::Never,
            KeyTouchPolicy::Always,
            KeyTouchPolicy::Cached,
        ] {
            assert_eq!(KeyTouchPolicy::from_yubikey(t.to_yubikey()), t);
            assert_eq!(t.as_str().parse::<KeyTouchPolicy>(), Ok(t));
        }
        assert!(KeyTouchPolicy::Always.needs_touch());
        assert!(KeyTouchPolicy::Cached.needs_touch());
        assert!(!KeyTouchPolicy::Default.needs_touch());
        assert!(KeyPinPolicy::Default.before_each_signature(SlotId::Signature));
        assert!(!KeyPinPolicy::Once.before_each_signature(SlotId::Signature));
        assert!(KeyPinPolicy::Always.before_each_signature(SlotId::Authentication));
    }

    #[test]
    fn slots_round_trip() {
        for r in DEFAULT_SLOTS {
            let slot = KeySlot::from_reference(r).unwrap();
            assert_eq!(slot.reference(), r);
            assert_eq!(parse_slot(&slot.to_string()), Ok(slot));
        }
        assert_eq!(parse_slot("0x9C").map(KeySlot::reference), Ok(0x9c));
        assert!(parse_slot("f9").is_err());
        assert!(parse_slot("9b").is_err());
        assert!(parse_slot("zz").is_err());
    }
}

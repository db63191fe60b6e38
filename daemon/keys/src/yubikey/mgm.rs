//! The PIV management key: reading a PIN-protected one, parsing a
//! configured one, making a new one.
//!
//! A PIN-protected management key (ykman's `--protect`) lives in the PIV
//! "printed information" data object 5FC109, readable only after the PIN:
//! `53 L { 88 L { 89 L <key> } }`. The `yubikey` crate reads it with
//! `MgmKey::get_protected`, which asks GET METADATA for the key's algorithm
//! first; devices without metadata (firmware before 5.3, the virtual test
//! card) fail there, so tufd parses the object itself and, without
//! metadata, tries the algorithms the key length allows.

use yubikey::piv::{self, ManagementSlotId, SlotAlgorithmId, SlotId};
use yubikey::{MgmAlgorithmId, MgmKey, Version, YubiKey};
use zeroize::Zeroizing;

/// The PIN-protected data object ("printed information").
const OBJ_PROTECTED: u32 = 0x005f_c109;
const TAG_PROTECTED: u8 = 0x88;
const TAG_PROTECTED_MGM: u8 = 0x89;

/// Splits one BER-TLV (one-byte tag, definite length up to 0xFFFF) off
/// `data`: `(tag, value, rest)`. `None` if `data` is malformed.
pub(crate) fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&l, rest) = rest.split_first()?;
            (usize::from(l), rest)
        }
        0x82 => {
            let l = rest.get(..2)?;
            (
                usize::from(u16::from_be_bytes([l[0], l[1]])),
                rest.get(2..)?,
            )
        }
        _ => return None,
    };
    let value = rest.get(..len)?;
    Some((tag, value, rest.get(len..)?))
}

/// The management key inside the protected object's content, if present.
pub(crate) fn parse_protected(object: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (tag, mut inner, _) = tlv(object)?;
    if tag != TAG_PROTECTED {
        return None;
    }
    while !inner.is_empty() {
        let (tag, value, rest) = tlv(inner)?;
        if tag == TAG_PROTECTED_MGM && !value.is_empty() {
            return Some(Zeroizing::new(value.to_vec()));
        }
        inner = rest;
    }
    None
}

/// Reads the PIN-protected management key (the PIN must be verified).
/// `Ok(None)` when the device holds none. An unexpected answer
/// (`GenericError`) is an error: it is what a YubiKey gives when another
/// program left another application selected, and taking it for "no
/// protected key" would report a set-up problem where there is none.
pub(crate) fn read_protected(
    yk: &mut YubiKey,
) -> Result<Option<Zeroizing<Vec<u8>>>, yubikey::Error> {
    match yk.fetch_object(OBJ_PROTECTED) {
        Ok(object) => Ok(parse_protected(&object)),
        Err(yubikey::Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The algorithms a management key of `len` bytes may be for, the device's
/// own answer first when it has GET METADATA.
fn algorithms(yk: &mut YubiKey, len: usize) -> Vec<MgmAlgorithmId> {
    if let Ok(meta) = piv::metadata(yk, SlotId::Management(ManagementSlotId::Management))
        && let SlotAlgorithmId::Management(alg) = meta.algorithm
    {
        return vec![alg];
    }
    match len {
        24 => vec![MgmAlgorithmId::ThreeDes, MgmAlgorithmId::Aes192],
        16 => vec![MgmAlgorithmId::Aes128],
        32 => vec![MgmAlgorithmId::Aes256],
        _ => Vec::new(),
    }
}

/// Management keys to try for `bytes` on this device.
pub(crate) fn candidates(yk: &mut YubiKey, bytes: &[u8]) -> Vec<MgmKey> {
    algorithms(yk, bytes.len())
        .into_iter()
        .filter_map(|alg| MgmKey::from_bytes(bytes, Some(alg)).ok())
        .collect()
}

/// Parses a configured management key: hex digits, spaces and colons
/// allowed between them.
pub(crate) fn parse_hex(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let digits: Zeroizing<String> = Zeroizing::new(
        text.chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect(),
    );
    let bytes = Zeroizing::new(
        hex::decode(digits.as_bytes()).map_err(|_| "the management key is not hex".to_owned())?,
    );
    if ![16, 24, 32].contains(&bytes.len()) {
        return Err(format!(
            "the management key has {} bytes; a PIV management key has 24 (3DES, AES-192), 16 (AES-128) or 32 (AES-256)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// The algorithm a new management key gets: AES-192 from firmware 5.7 (the
/// factory default there), 3DES before (which every YubiKey 4/5 supports).
pub(crate) fn new_key_algorithm(version: Version) -> MgmAlgorithmId {
    if (version.major, version.minor) >= (5, 7) {
        MgmAlgorithmId::Aes192
    } else {
        MgmAlgorithmId::ThreeDes
    }
}

/// A new random management key for this device.
pub(crate) fn new_key(version: Version) -> Result<MgmKey, yubikey::Error> {
    let mut bytes = Zeroizing::new([0u8; 24]);
    rand::fill(&mut bytes[..]);
    MgmKey::from_bytes(&bytes[..], Some(new_key_algorithm(version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_protected_object() {
        let key: Vec<u8> = (1..=24).collect();
        let mut object = vec![0x88, 26, 0x89, 24];
        object.extend_from_slice(&key);
        assert_eq!(parse_protected(&object).as_deref(), Some(&key));
        // Another item before the key, and a long-form length.
        let mut object = vec![0x88, 0x81, 29, 0x8a, 1, 0x00, 0x89, 24];
        object.extend_from_slice(&key);
        assert_eq!(parse_protected(&object).as_deref(), Some(&key));
        // An empty key item (ykman clears it so), truncated data, wrong tag.
        assert_eq!(parse_protected(&[0x88, 2, 0x89, 0]), None);
        assert_eq!(parse_protected(&[0x88, 26, 0x89, 24, 1, 2]), None);
        assert_eq!(parse_protected(&[0x80, 2, 0x89, 0]), None);
        assert_eq!(parse_protected(&[]), None);
        assert_eq!(parse_protected(&[0x88, 0x82, 0xff]), None);
    }

    #[test]
    fn parses_configured_keys() {
        let k = parse_hex("010203040506070801020304050607080102030405060708\n").unwrap();
        assert_eq!(k.len(), 24);
        let k = parse_hex("01:02:03:04:05:06:07:08:01:02:03:04:05:06:07:08").unwrap();
        assert_eq!(k.len(), 16);
        assert!(parse_hex("0102").unwrap_err().contains("2 bytes"));
        assert!(parse_hex("zz").is_err());
    }

    #[test]
    fn new_keys_follow_the_firmware_default() {
        assert_eq!(
            new_key_algorithm(Version::new([5, 4, 3])),
            MgmAlgorithmId::ThreeDes
        );
        assert_eq!(
            new_key_algorithm(Version::new([5, 7, 1])),
            MgmAlgorithmId::Aes192
        );
        let a = new_key(Version::new([5, 4, 3])).unwrap();
        let b = new_key(Version::new([5, 4, 3])).unwrap();
        assert_eq!(a.algorithm_id(), MgmAlgorithmId::ThreeDes);
        assert_ne!(a.as_ref(), b.as_ref(), "keys are random");
    }
}

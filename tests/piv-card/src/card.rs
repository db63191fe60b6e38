//! The APDU layer between vpcd and piv-authenticator: command chaining,
//! response chaining (`61xx` / GET RESPONSE), and the fixes that make the
//! card look enough like a YubiKey for the `yubikey` crate and libykpiv.

use heapless::Vec as HVec;
use iso7816::command::FromSliceError;
use iso7816::{Command, Instruction, Status};
use piv_authenticator::{Authenticator, Client, Options};

/// The largest command accepted, after command chaining.
const COMMAND_LEN: usize = 8192;
/// The largest response produced by one command.
const RESPONSE_LEN: usize = 8192;

/// The full PIV application identifier (NIST SP 800-73-4, part 1, 2.2).
const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
/// The registered application provider identifier that libykpiv and the
/// `yubikey` crate select PIV by.
const PIV_RID: [u8; 5] = [0xA0, 0x00, 0x00, 0x03, 0x08];

/// INS of Yubico's GET VERSION.
const INS_GET_VERSION: u8 = 0xFD;
/// The firmware version the card claims. The `yubikey` crate supports major
/// versions 4 and 5 only, and below 5.7 it uses the 3DES default management
/// key, the one the card has.
const YUBIKEY_VERSION: [u8; 3] = [5, 4, 3];

/// The ATR of a YubiKey 5 (CCID interface), so middleware treats the card as
/// one.
pub const ATR: [u8; 23] = [
    0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59,
    0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
];

/// The virtual card during one power cycle: a PIV application and its
/// ISO 7816 transport state.
///
/// The runner builds a new `Card` (and application) on each power-on and
/// reset: a real card forgets PIN and management key authentication then,
/// piv-authenticator alone would not.
pub struct Card<T: Client> {
    app: Authenticator<T>,
    /// The data of a chained command received so far.
    chain: Option<Command<COMMAND_LEN>>,
    /// The response of the last command, served in pieces.
    response: HVec<u8, RESPONSE_LEN>,
    /// How much of `response` was sent already.
    sent: usize,
    /// Another application than PIV was selected (as ykman or scdaemon
    /// leave a YubiKey with OATH or OpenPGP selected): every command but
    /// SELECT answers 6D00 until PIV is selected again.
    other_selected: bool,
}

impl<T: Client> Card<T> {
    /// A card in its power-on state, running `app`.
    pub fn new(app: Authenticator<T>) -> Self {
        Self {
            app,
            chain: None,
            response: HVec::new(),
            sent: 0,
            other_selected: false,
        }
    }

    /// Handles one command APDU and returns the response APDU (data and
    /// status word).
    pub fn apdu(&mut self, raw: &[u8]) -> Vec<u8> {
        let (data, status) = self.handle(raw);
        let sw: [u8; 2] = status.into();
        let mut out = Vec::with_capacity(data.len() + 2);
        out.extend_from_slice(data);
        out.extend_from_slice(&sw);
        out
    }

    fn handle(&mut self, raw: &[u8]) -> (&[u8], Status) {
        // Another application: a SELECT of another AID (OATH, OpenPGP…)
        // leaves PIV, as on a YubiKey, and its commands are unknown there.
        if let Some(aid) = select_aid(raw) {
            let piv = aid.len() >= PIV_RID.len()
                && (PIV_AID.starts_with(aid) || aid.starts_with(&PIV_AID));
            self.other_selected = !piv;
            if !piv {
                self.response.clear();
                self.sent = 0;
                return (&[], Status::Success);
            }
        } else if self.other_selected {
            return (&[], Status::InstructionNotSupportedOrInvalid);
        }

        // Fix: GET VERSION answers as a YubiKey 5.4.3 (the application says
        // 6.6.6, which the `yubikey` crate rejects).
        if raw.len() >= 4 && raw[1] == INS_GET_VERSION && raw[0] & 0x10 == 0 {
            self.response.clear();
            self.sent = 0;
            let _ = self.response.extend_from_slice(&YUBIKEY_VERSION);
            return self.next_piece(expected(raw));
        }

        let command = match Command::<COMMAND_LEN>::try_from(raw) {
            Ok(command) => command,
            Err(err) => return (&[], parse_error_status(err)),
        };

        if command.instruction() == Instruction::GetResponse {
            return self.next_piece(expected(raw));
        }

        // Command chaining: collect, acknowledge all but the last.
        let command = match self.chain.take() {
            Some(mut head) => {
                if head.extend_from_command(&command).is_err() {
                    return (&[], Status::WrongLength);
                }
                head
            }
            None => command,
        };
        if command.class().chain().not_the_last() {
            self.chain = Some(command);
            return (&[], Status::Success);
        }

        let command = match expand_piv_select(&command) {
            Some(select) => select,
            None => command,
        };

        self.response.clear();
        self.sent = 0;
        if let Err(status) = self
            .app
            .respond(command.as_view(), self.response.as_mut_view())
        {
            self.response.clear();
            return (&[], status);
        }
        self.next_piece(expected(raw))
    }

    /// The next piece of the pending response, at most `max` bytes, with
    /// `61xx` when more remains.
    fn next_piece(&mut self, max: usize) -> (&[u8], Status) {
        let rest = self.response.len().saturating_sub(self.sent);
        let n = rest.min(max);
        let start = self.sent;
        self.sent += n;
        let left = rest - n;
        let status = if left == 0 {
            Status::Success
        } else {
            Status::MoreAvailable(u8::try_from(left).unwrap_or(0))
        };
        (&self.response[start..start + n], status)
    }
}

impl<T: Client> Drop for Card<T> {
    /// Logs the PIN out (VERIFY with P1 = FF), so that the application clears
    /// the key it keeps in volatile storage instead of leaking it.
    fn drop(&mut self) {
        let mut scratch = HVec::<u8, 16>::new();
        if let Ok(logout) = Command::<8>::try_from(&[0x00, 0x20, 0xFF, 0x80][..]) {
            let _ = self.app.respond(logout.as_view(), &mut scratch);
        }
    }
}

/// Builds the application for a fresh power cycle.
pub fn new_app<T: Client>(client: T) -> Authenticator<T> {
    Authenticator::new(client, Options::default())
}

/// The AID of a SELECT by name (`00 A4 04 xx Lc AID`), if `raw` is one.
fn select_aid(raw: &[u8]) -> Option<&[u8]> {
    match raw {
        [cla, 0xA4, 0x04, _, lc, rest @ ..]
            if cla & 0x10 == 0 && rest.len() >= usize::from(*lc) =>
        {
            Some(&rest[..usize::from(*lc)])
        }
        _ => None,
    }
}

/// How many response bytes the command accepts.
///
/// Fix: the `yubikey` crate sends case-3 APDUs without Le and expects data
/// back, as a YubiKey returns it; a missing Le counts as 256 (short Le = 00).
fn expected(raw: &[u8]) -> usize {
    match iso7816::command::CommandView::try_from(raw) {
        Ok(view) if view.expected() > 0 => view.expected(),
        _ => 256,
    }
}

/// Fix: libykpiv and the `yubikey` crate select PIV by its 5-byte RID;
/// piv-authenticator wants the full AID. Returns the SELECT rewritten with
/// the full AID, or `None` when `command` needs no rewrite.
fn expand_piv_select(command: &Command<COMMAND_LEN>) -> Option<Command<COMMAND_LEN>> {
    if command.instruction() != Instruction::Select || command.p1 != 0x04 {
        return None;
    }
    let aid: &[u8] = command.data();
    if aid.len() >= PIV_AID.len() || aid.len() < PIV_RID.len() || !PIV_AID.starts_with(aid) {
        return None;
    }
    let mut raw = vec![0x00, 0xA4, 0x04, command.p2, PIV_AID.len() as u8];
    raw.extend_from_slice(&PIV_AID);
    raw.push(0x00);
    Command::try_from(&raw[..]).ok()
}

fn parse_error_status(err: FromSliceError) -> Status {
    match err {
        FromSliceError::InvalidClass => Status::ClassNotSupported,
        FromSliceError::InvalidFirstBodyByteForExtended => Status::UnspecifiedCheckingError,
        FromSliceError::TooShort | FromSliceError::TooLong | FromSliceError::InvalidSliceLength => {
            Status::WrongLength
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atr_checksum_is_valid() {
        // TCK: the XOR of T0 .. TCK is zero.
        assert_eq!(ATR[1..].iter().fold(0u8, |acc, b| acc ^ b), 0);
    }

    #[test]
    fn missing_le_means_256() {
        assert_eq!(expected(&[0x00, 0xCB, 0x3F, 0xFF, 0x01, 0x7E]), 256);
        assert_eq!(expected(&[0x00, 0xCB, 0x3F, 0xFF, 0x01, 0x7E, 0x10]), 16);
    }

    #[test]
    fn select_aid_reads_select_by_name_only() {
        let oath = [
            0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01,
        ];
        assert_eq!(select_aid(&oath), Some(&oath[5..]));
        assert_eq!(select_aid(&[0x00, 0x87, 0x11, 0x9c, 0x00]), None);
        assert_eq!(select_aid(&[0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0]), None);
    }

    #[test]
    fn rid_select_is_expanded() {
        let raw = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08];
        let command = Command::<COMMAND_LEN>::try_from(&raw[..]).expect("parse");
        let select = expand_piv_select(&command).expect("expanded");
        let data: &[u8] = select.data();
        assert_eq!(data, &PIV_AID[..]);
        let other = [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x05, 0x27];
        let command = Command::<COMMAND_LEN>::try_from(&other[..]).expect("parse");
        assert!(expand_piv_select(&command).is_none());
    }
}

//! The slot index: tufd keys found from their slot certificates, free
//! slots, and the certificate that records a new key's label.

use super::*;

/// A key in the index.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) record: KeyRecord,
    pub(super) slot: KeySlot,
    /// Checks each signature before it is used.
    pub(super) verifier: Verifier,
    pub(super) pin_policy: KeyPinPolicy,
    pub(super) touch_policy: KeyTouchPolicy,
}

/// What a scan of the device found.
#[derive(Clone, Default)]
pub(super) struct Index {
    pub(super) by_id: HashMap<String, Entry>,
    /// Slots holding any certificate (tufd's or another application's)
    /// other than tufd's "free slot" marker.
    pub(super) occupied: HashSet<KeySlot>,
    /// Slots holding tufd's "free slot" marker: tufd deleted its key there
    /// (or could not finish making one); free for tufd whatever the device
    /// says about the throwaway key in them.
    pub(super) freed: HashSet<KeySlot>,
}

/// What tufd can tell about a slot when it looks for one to put a key in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SlotState {
    /// Holds a certificate: a tufd key's, or another application's.
    Certificate,
    /// Holds tufd's "free slot" marker.
    Freed,
    /// No certificate; GET METADATA says the slot holds no key.
    Empty,
    /// No certificate, but GET METADATA shows a key (another application's,
    /// such as an SSH or VPN key).
    KeyWithoutCertificate,
    /// No certificate, and the device cannot say whether a key is there.
    Unknown(Unknown),
}

/// Why the device cannot say whether a slot without a certificate is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unknown {
    /// No GET METADATA (firmware before 5.3).
    NotSupported,
    /// GET METADATA failed; the device's answer.
    Failed(String),
}

impl SlotState {
    /// Whether tufd may generate or import a key here: only where no key
    /// can be lost, or where the administrator gave the slot to tufd.
    pub(super) fn free(&self, listed: bool) -> bool {
        match self {
            SlotState::Freed | SlotState::Empty => true,
            SlotState::Unknown(_) => listed,
            SlotState::Certificate | SlotState::KeyWithoutCertificate => false,
        }
    }
}

/// The first slot of `choice` that is [`SlotState::free`], asking
/// `state_of` slot by slot; `Ok(Err(skipped))` with every slot's state when
/// none is.
pub(super) fn choose_slot<E>(
    choice: &SlotChoice,
    mut state_of: impl FnMut(KeySlot) -> Result<SlotState, E>,
) -> Result<Result<KeySlot, Vec<(KeySlot, SlotState)>>, E> {
    let mut skipped = Vec::new();
    for slot in choice.order() {
        let state = state_of(slot)?;
        if state.free(choice.listed(slot)) {
            return Ok(Ok(slot));
        }
        skipped.push((slot, state));
    }
    Ok(Err(skipped))
}

/// What GET METADATA says about a slot without a certificate; a lost
/// connection is the error (the operation reconnects).
pub(super) fn metadata_state(yk: &mut YubiKey, slot: KeySlot) -> Result<SlotState, yubikey::Error> {
    Ok(match piv::metadata(yk, slot.id()) {
        Ok(meta) if meta.public.is_some() => SlotState::KeyWithoutCertificate,
        // A YubiKey answers for a key slot with its algorithm and public
        // key; anything else says nothing about the slot (the virtual test
        // card answers so).
        Ok(_) => SlotState::Unknown(Unknown::Failed("metadata without a public key".to_owned())),
        // 6A88: no key in the slot.
        Err(yubikey::Error::NotFound) => SlotState::Empty,
        Err(yubikey::Error::NotSupported) => SlotState::Unknown(Unknown::NotSupported),
        Err(e) if connection_lost(&e) => return Err(e),
        Err(e) => SlotState::Unknown(Unknown::Failed(e.to_string())),
    })
}

/// The tufd label recorded in a DER certificate subject as tufd writes it
/// into PIV slots (see the `cert` module); `None` for other subjects. The
/// PKCS#11 store uses it for YubiKey keys seen through ykcs11, whose key
/// objects carry fixed labels.
pub fn label_in_subject(subject_der: &[u8]) -> Option<KeyLabel> {
    let name = x509_cert::name::Name::from_der(subject_der).ok()?;
    cert::parse_subject(&name).map(|r| r.label)
}

/// The data object holding a slot's certificate.
pub(super) fn certificate_object(slot: SlotId) -> Option<u32> {
    Some(match u8::from(slot) {
        0x9a => 0x005f_c105,
        0x9c => 0x005f_c10a,
        0x9d => 0x005f_c10b,
        0x9e => 0x005f_c101,
        r @ 0x82..=0x95 => 0x005f_c10d + u32::from(r - 0x82),
        0xf9 => 0x005f_ff01,
        _ => return None,
    })
}

/// Reads the certificate in `slot`; `None` for an empty or unparsable
/// object. (The crate's own reader panics on an emptied object, which is
/// what a deleted certificate leaves.)
pub(super) fn read_certificate(
    yk: &mut YubiKey,
    slot: SlotId,
) -> Result<Option<x509_cert::Certificate>, yubikey::Error> {
    let Some(object) = certificate_object(slot) else {
        return Ok(None);
    };
    let data = match yk.fetch_object(object) {
        Ok(data) => data,
        Err(e) if connection_lost(&e) => return Err(e),
        Err(_) => return Ok(None),
    };
    // 70 L <certificate> 71 01 <compression> FE 00
    let der = match mgm::tlv(&data) {
        Some((0x70, value, _)) => value,
        _ => &data[..],
    };
    if der.is_empty() {
        return Ok(None);
    }
    Ok(x509_cert::Certificate::from_der(der).ok())
}

impl YubiKeyStore {
    /// Reads every tufd key from the slot certificates.
    pub(super) fn scan(&self, dev: &mut Device) -> Result<Index, OpError> {
        let conn = Self::conn(dev)?;
        let mut index = Index::default();
        for slot in KeySlot::defaults() {
            let Some(certificate) = read_certificate(&mut conn.yk, slot.id())? else {
                continue;
            };
            let tbs = certificate.tbs_certificate();
            if cert::is_freed(tbs.subject()) {
                index.freed.insert(slot);
                continue;
            }
            index.occupied.insert(slot);
            let Some(record) = cert::parse_subject(tbs.subject()) else {
                continue;
            };
            let verifying = tbs
                .subject_public_key_info()
                .to_der()
                .ok()
                .and_then(|der| VerifyingKey::from_public_key_der(&der).ok());
            let Some(verifying) = verifying else {
                tracing::warn!(token = %self.config.name, slot = %slot, key = %record.label,
                    "skipping a tufd certificate whose key is not P-256");
                continue;
            };
            let Ok(spki) = verifying.to_public_key_der() else {
                continue;
            };
            let mut pin_policy = record.pin_policy;
            let mut touch_policy = record.touch_policy;
            let mut origin = record.origin;
            // Firmware 5.3+ reports the slot's real policies and origin.
            if let Ok(meta) = piv::metadata(&mut conn.yk, slot.id()) {
                if let Some((p, t)) = meta.policy {
                    pin_policy = KeyPinPolicy::from_yubikey(p);
                    touch_policy = KeyTouchPolicy::from_yubikey(t);
                }
                match meta.origin {
                    Some(piv::Origin::Generated) => origin = KeyOrigin::Generated,
                    Some(piv::Origin::Imported) => origin = KeyOrigin::Imported,
                    None => {}
                }
            }
            let id = (self.id_scheme)(spki.as_bytes());
            index.by_id.insert(
                id.clone(),
                Entry {
                    record: KeyRecord {
                        id,
                        label: record.label,
                        token: self.name_owned(),
                        spki_der: spki.as_bytes().to_vec(),
                        origin,
                        sensitive: true,
                        extractable: false,
                    },
                    slot,
                    verifier: Verifier::from_verifying(&verifying),
                    pin_policy,
                    touch_policy,
                },
            );
        }
        Ok(index)
    }

    /// The index, scanning the device if this connection has not yet.
    pub(super) fn index(&self, dev: &mut Device) -> Result<Index, OpError> {
        if let Some(ix) = &dev.index {
            return Ok(ix.clone());
        }
        let ix = self.scan(dev)?;
        let mut touch = self.touch.write().unwrap_or_else(|p| p.into_inner());
        touch.clear();
        for (id, e) in &ix.by_id {
            touch.insert(id.clone(), e.touch_policy.needs_touch());
        }
        drop(touch);
        dev.index = Some(ix.clone());
        Ok(ix)
    }

    pub(super) fn entry(&self, dev: &mut Device, id: &str) -> Result<Entry, OpError> {
        self.index(dev)?.by_id.remove(id).ok_or_else(|| {
            KeyError::KeyNotFound {
                token: self.name_owned(),
                what: format!("with ID {id}"),
            }
            .into()
        })
    }

    pub(super) fn remember(&self, dev: &mut Device, entry: Entry) {
        self.touch
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(entry.record.id.clone(), entry.touch_policy.needs_touch());
        if let Some(ix) = dev.index.as_mut() {
            ix.occupied.insert(entry.slot);
            ix.freed.remove(&entry.slot);
            ix.by_id.insert(entry.record.id.clone(), entry);
        }
    }

    /// Drops a deleted key from the index; its slot now holds the "free
    /// slot" marker.
    pub(super) fn forget(&self, dev: &mut Device, entry: &Entry) {
        self.touch
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&entry.record.id);
        if let Some(ix) = dev.index.as_mut() {
            ix.occupied.remove(&entry.slot);
            ix.freed.insert(entry.slot);
            ix.by_id.remove(&entry.record.id);
        }
    }

    /// Marks `slot`, whose key tufd made and no longer wants, as free for
    /// tufd: writes the "free slot" certificate for its key `spki` (see
    /// [`cert::freed_certificate`]). The management key must be
    /// authenticated.
    pub(super) fn mark_freed(
        &self,
        dev: &mut Device,
        slot: KeySlot,
        spki: SubjectPublicKeyInfoOwned,
    ) -> Result<(), OpError> {
        let der = cert::freed_certificate(spki).map_err(|detail| KeyError::Device {
            token: self.name_owned(),
            operation: "marking a slot free",
            source: None,
            detail,
        })?;
        let conn = Self::conn(dev)?;
        Certificate::from_bytes(der)?.write(
            &mut conn.yk,
            slot.id(),
            yubikey::certificate::CertInfo::Uncompressed,
        )?;
        if let Some(ix) = dev.index.as_mut() {
            ix.occupied.remove(&slot);
            ix.freed.insert(slot);
        }
        Ok(())
    }

    /// After a key was put into `slot` but could not be certified: marks
    /// the slot free so the key (which no tufd index shows) does not use it
    /// up. Best effort: a failure is logged, the caller reports `cause`.
    pub(super) fn abandon_slot(
        &self,
        dev: &mut Device,
        slot: KeySlot,
        spki: SubjectPublicKeyInfoOwned,
        cause: &dyn std::fmt::Display,
    ) {
        match self.mark_freed(dev, slot, spki) {
            Ok(()) => tracing::warn!(token = %self.config.name, slot = %slot, error = %cause,
                "the new key could not be certified; slot marked free for tufd again"),
            Err(e) => {
                let e = match e {
                    OpError::Yk(e) => e.to_string(),
                    OpError::Key(e) => e.to_string(),
                };
                tracing::error!(token = %self.config.name, slot = %slot, error = %cause,
                    mark_error = %e,
                    "the new key could not be certified, nor the slot marked free: it holds a key without certificate, which tufd does not reuse where the device shows keys (delete it with `ykman piv keys delete` on firmware 5.7+, or list the slot in `slots`)");
            }
        }
    }

    pub(super) fn check_free(
        &self,
        ix: &Index,
        label: &KeyLabel,
        id: Option<&str>,
    ) -> Result<(), OpError> {
        if let Some(e) = ix.by_id.values().find(|e| e.record.label == *label) {
            return Err(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!("a key named {label} (ID {})", e.record.id),
            }
            .into());
        }
        if let Some(e) = id.and_then(|id| ix.by_id.get(id)) {
            return Err(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!(
                    "this key (ID {}, named {}, slot {})",
                    e.record.id, e.record.label, e.slot
                ),
            }
            .into());
        }
        Ok(())
    }

    /// The first slot of the configured order that tufd may fill (see
    /// [`SlotState::free`]): one the device shows empty, one tufd freed, or,
    /// where the device cannot tell, one the administrator listed in
    /// `slots`. Never a slot where another application's key may be.
    pub(super) fn free_slot(&self, dev: &mut Device, ix: &Index) -> Result<KeySlot, OpError> {
        let conn = Self::conn(dev)?;
        let chosen = choose_slot(&self.config.slots, |slot| {
            if ix.freed.contains(&slot) {
                Ok(SlotState::Freed)
            } else if ix.occupied.contains(&slot) {
                Ok(SlotState::Certificate)
            } else {
                metadata_state(&mut conn.yk, slot)
            }
        })?;
        let skipped = match chosen {
            Ok(slot) => return Ok(slot),
            Err(skipped) => skipped,
        };
        for (slot, state) in &skipped {
            if *state == SlotState::KeyWithoutCertificate {
                tracing::info!(token = %self.config.name, slot = %slot,
                    "slot holds a key without a certificate (another application's?); not using it");
            }
        }
        let unknown: Vec<_> = skipped
            .iter()
            .filter_map(|(slot, state)| match state {
                SlotState::Unknown(why) => Some((slot, why)),
                _ => None,
            })
            .collect();
        let detail = if let Some((_, why)) = unknown.first() {
            let why = match why {
                Unknown::NotSupported => "it has no GET METADATA (firmware before 5.3)".to_owned(),
                Unknown::Failed(e) => format!("GET METADATA failed: {e}"),
            };
            format!(
                "{} cannot tell whether slots {} hold another application's key without a certificate ({why}), so tufd does not use them: list the slots tufd may use with `slots = [\"82\", …]` in the token's configuration (a key already in a listed slot without a certificate is overwritten)",
                self.serial_text(),
                unknown
                    .iter()
                    .map(|(slot, _)| slot.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        } else {
            format!(
                "no free slot among {} on {}: every one holds a tufd key, another application's certificate or a key without a certificate; delete a key (`tufctl key rm`) or configure other `slots`",
                skipped
                    .iter()
                    .map(|(slot, _)| slot.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.serial_text()
            )
        };
        Err(KeyError::Device {
            token: self.name_owned(),
            operation: "choosing a PIV slot",
            source: None,
            detail,
        }
        .into())
    }

    /// Writes the self-signed certificate recording `record` into `slot`,
    /// signed by the slot's key on the device. The management key must be
    /// authenticated.
    pub(super) fn certify(
        &self,
        dev: &mut Device,
        slot: KeySlot,
        spki: SubjectPublicKeyInfoOwned,
        record: &SlotRecord,
    ) -> Result<(), OpError> {
        let subject = cert::subject(record).map_err(|e| KeyError::Device {
            token: self.name_owned(),
            operation: "building the slot certificate",
            source: None,
            detail: e.to_string(),
        })?;
        let validity = Validity::from_now(CERT_VALIDITY).map_err(|e| KeyError::Device {
            token: self.name_owned(),
            operation: "building the slot certificate",
            source: None,
            detail: e.to_string(),
        })?;
        let serial = SerialNumber::from(rand::random::<u32>() >> 1 | 1);
        // The self-signature is a signature like any other: PIN right before.
        self.reverify_pin(dev)?;
        if record.touch_policy.needs_touch() {
            tracing::info!(token = %self.config.name, serial = self.config.serial,
                "touch the YubiKey to certify the new key");
        }
        let conn = Self::conn(dev)?;
        match Certificate::generate_self_signed::<_, p256::NistP256>(
            &mut conn.yk,
            slot.id(),
            serial,
            validity,
            subject,
            spki,
            |_| Ok(()),
        ) {
            Ok(_) => Ok(()),
            // The crate reports any failure of the signature as KeyError
            // (the status word is lost); with the PIN verified right
            // before, a touch is the likely thing missing.
            Err(yubikey::Error::KeyError | yubikey::Error::AuthenticationError)
                if record.touch_policy.needs_touch() =>
            {
                Err(KeyError::Device {
                    token: self.name_owned(),
                    operation: "certifying the new key",
                    source: None,
                    detail: format!(
                        "{} did not sign the certificate of key {} in slot {slot}: most likely it was not touched in time (it waits about 15 seconds after blinking); the slot was marked free again, retry and touch its contact when it blinks",
                        self.serial_text(),
                        record.label
                    ),
                }
                .into())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn new_entry(
        &self,
        slot: KeySlot,
        spki_der: Vec<u8>,
        verifying: VerifyingKey,
        record: SlotRecord,
    ) -> Entry {
        let id = (self.id_scheme)(&spki_der);
        Entry {
            record: KeyRecord {
                id,
                label: record.label,
                token: self.name_owned(),
                spki_der,
                origin: record.origin,
                sensitive: true,
                extractable: false,
            },
            slot,
            verifier: Verifier::from_verifying(&verifying),
            pin_policy: record.pin_policy,
            touch_policy: record.touch_policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(r: u8) -> KeySlot {
        KeySlot::from_reference(r).unwrap()
    }

    /// A fake device: each slot's state, every other slot empty per metadata.
    fn choose(
        choice: &SlotChoice,
        states: &[(u8, SlotState)],
    ) -> Result<KeySlot, Vec<(KeySlot, SlotState)>> {
        let states: HashMap<KeySlot, SlotState> =
            states.iter().map(|(r, s)| (slot(*r), s.clone())).collect();
        let mut asked = Vec::new();
        let chosen = choose_slot::<()>(choice, |s| {
            asked.push(s);
            Ok(states.get(&s).cloned().unwrap_or(SlotState::Empty))
        })
        .unwrap();
        // Slots are looked at in order, and none after the chosen one.
        assert_eq!(asked, choice.order()[..asked.len()]);
        chosen
    }

    fn unknown_everywhere(why: Unknown) -> Vec<(u8, SlotState)> {
        DEFAULT_SLOTS
            .iter()
            .map(|r| (*r, SlotState::Unknown(why.clone())))
            .collect()
    }

    #[test]
    fn without_metadata_a_default_slot_is_never_chosen() {
        // A firmware before 5.3, or metadata that fails: 9c may hold an SSH
        // key without a certificate; nothing is free.
        for why in [Unknown::NotSupported, Unknown::Failed("parse error".into())] {
            let skipped = choose(&SlotChoice::Default, &unknown_everywhere(why.clone()))
                .expect_err("no slot is known to be empty");
            assert_eq!(skipped.len(), 24);
            assert_eq!(skipped[0], (slot(0x9c), SlotState::Unknown(why)));
        }
    }

    #[test]
    fn without_metadata_only_listed_slots_and_freed_slots_are_used() {
        let mut states = unknown_everywhere(Unknown::NotSupported);
        // Listed by the administrator: used in their order.
        let listed = SlotChoice::Configured(vec![slot(0x90), slot(0x9a)]);
        assert_eq!(choose(&listed, &states), Ok(slot(0x90)));
        // A slot tufd freed is used even when not listed, the defaults'
        // other slots still not.
        states.push((0x84, SlotState::Freed));
        assert_eq!(choose(&SlotChoice::Default, &states), Ok(slot(0x84)));
        // Listed slots holding certificates are skipped.
        states.push((0x90, SlotState::Certificate));
        assert_eq!(choose(&listed, &states), Ok(slot(0x9a)));
    }

    #[test]
    fn with_metadata_a_key_without_certificate_is_never_overwritten() {
        let states = [
            (0x9c, SlotState::KeyWithoutCertificate),
            (0x9e, SlotState::Certificate),
            (0x9d, SlotState::KeyWithoutCertificate),
        ];
        assert_eq!(choose(&SlotChoice::Default, &states), Ok(slot(0x9a)));
        // Not even when the administrator listed the slot.
        let listed = SlotChoice::Configured(vec![slot(0x9c), slot(0x9d)]);
        let skipped = choose(&listed, &states).unwrap_err();
        assert_eq!(
            skipped,
            vec![
                (slot(0x9c), SlotState::KeyWithoutCertificate),
                (slot(0x9d), SlotState::KeyWithoutCertificate)
            ]
        );
        // The throwaway key tufd left when it deleted a key is tufd's.
        let freed = [(0x9c, SlotState::Freed)];
        assert_eq!(choose(&listed, &freed), Ok(slot(0x9c)));
    }

    #[test]
    fn a_lost_connection_while_probing_is_an_error_not_a_free_slot() {
        let mut calls = 0;
        let out = choose_slot(&SlotChoice::Default, |_| {
            calls += 1;
            Err::<SlotState, _>("connection lost")
        });
        assert_eq!(out, Err("connection lost"));
        assert_eq!(calls, 1);
    }
}

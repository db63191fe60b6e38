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
    /// Slots holding any certificate (tufd's or another application's).
    pub(super) occupied: HashSet<KeySlot>,
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
            index.occupied.insert(slot);
            let tbs = certificate.tbs_certificate();
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
            ix.by_id.insert(entry.record.id.clone(), entry);
        }
    }

    pub(super) fn forget(&self, dev: &mut Device, entry: &Entry) {
        self.touch
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&entry.record.id);
        if let Some(ix) = dev.index.as_mut() {
            ix.occupied.remove(&entry.slot);
            ix.by_id.remove(&entry.record.id);
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

    /// The first configured slot without a certificate and, where the device
    /// can tell (GET METADATA, firmware 5.3+), without a key.
    pub(super) fn free_slot(&self, dev: &mut Device, ix: &Index) -> Result<KeySlot, OpError> {
        let conn = Self::conn(dev)?;
        for &slot in &self.config.slots {
            if ix.occupied.contains(&slot) {
                continue;
            }
            if let Ok(meta) = piv::metadata(&mut conn.yk, slot.id())
                && meta.public.is_some()
            {
                tracing::debug!(token = %self.config.name, slot = %slot,
                    "slot holds a key without a certificate; not reusing it");
                continue;
            }
            return Ok(slot);
        }
        Err(KeyError::Device {
            token: self.name_owned(),
            operation: "choosing a PIV slot",
            source: None,
            detail: format!(
                "no free slot among {} on {}: delete a key (`tufctl key rm`) or configure other `slots`",
                self.config
                    .slots
                    .iter()
                    .map(KeySlot::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                self.serial_text()
            ),
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
        Certificate::generate_self_signed::<_, p256::NistP256>(
            &mut conn.yk,
            slot.id(),
            serial,
            validity,
            subject,
            spki,
            |_| Ok(()),
        )?;
        Ok(())
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

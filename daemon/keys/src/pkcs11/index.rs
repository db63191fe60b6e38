//! The index of tufd keys on the token, rebuilt from the token's objects
//! for each session-pool generation.

use super::*;

/// A key in the index, with its object handles (valid for one generation).
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) record: KeyRecord,
    pub(super) private: ObjectHandle,
    pub(super) public: ObjectHandle,
    /// Checks each signature before it is used.
    pub(super) verifier: Verifier,
    /// Each signature needs `C_Login(CKU_CONTEXT_SPECIFIC)` after
    /// `C_SignInit` (`CKA_ALWAYS_AUTHENTICATE`).
    pub(super) always_authenticate: bool,
}

/// Marks a scan as running for [`Pkcs11Store::scan_running`] until dropped.
struct ScanRunning<'a>(&'a Pkcs11Store);

impl<'a> ScanRunning<'a> {
    fn start(store: &'a Pkcs11Store) -> Self {
        *store
            .scanning_since
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        Self(store)
    }
}

impl Drop for ScanRunning<'_> {
    fn drop(&mut self) {
        *self
            .0
            .scanning_since
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }
}

pub(super) struct Index {
    pub(super) generation: u64,
    pub(super) by_id: HashMap<String, Arc<Entry>>,
}

impl Pkcs11Store {
    /// The index for the current connection, scanning the token if needed.
    pub(super) fn entries(
        &self,
        session: &Session,
    ) -> Result<HashMap<String, Arc<Entry>>, OpError> {
        let generation = self.pool.lock().generation;
        if let Some(ix) = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && ix.generation == generation
        {
            return Ok(ix.by_id.clone());
        }
        // A session that lost its login finds no private objects: an empty
        // scan must not pass for an empty token (a name would then be
        // given twice).
        // One scan at a time: a caller that waited for another's scan
        // takes its result.
        let _scan = self.scan.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ix) = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && ix.generation == generation
        {
            return Ok(ix.by_id.clone());
        }
        let _running = ScanRunning::start(self);
        if let Some(hook) = &self.scan_hook {
            hook();
        }
        if !self.logged_in(session)? {
            return Err(OpError::Ck(CkError::Pkcs11(
                RvError::UserNotLoggedIn,
                cryptoki::context::Function::FindObjectsInit,
            )));
        }
        let by_id = self.scan(session)?;
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Some(Index {
            generation,
            by_id: by_id.clone(),
        });
        Ok(by_id)
    }

    /// The keys' records as [`KeyStore::list`] gives them, when the index
    /// is current and no unlocked PIN has run out (else `None`: `list`
    /// does what that needs). No token call, and no wait for a lock
    /// another thread holds.
    pub(super) fn indexed_records(&self) -> Option<Vec<KeyRecord>> {
        if self.gate.unlock_expired() {
            return None;
        }
        let generation = self.pool.state.try_lock().ok()?.generation;
        let index = self.index.try_read().ok()?;
        let current = index.as_ref().filter(|ix| ix.generation == generation)?;
        Some(records(current.by_id.values()))
    }

    /// The number of keys in the index, if it is current (no token call).
    pub(super) fn indexed_count(&self) -> Option<usize> {
        let generation = self.pool.lock().generation;
        self.index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|ix| ix.generation == generation)
            .map(|ix| ix.by_id.len())
    }

    /// When the scan now running started, if one is.
    pub(super) fn scan_running(&self) -> Option<Instant> {
        *self
            .scanning_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn entry(&self, session: &Session, id: &str) -> Result<Arc<Entry>, OpError> {
        if let Some(ix) = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && ix.generation == self.pool.lock().generation
            && let Some(e) = ix.by_id.get(id)
        {
            return Ok(Arc::clone(e));
        }
        self.entries(session)?
            .remove(id)
            .ok_or_else(|| OpError::Key(self.not_found(id)))
    }

    pub(super) fn not_found(&self, id: &str) -> KeyError {
        KeyError::KeyNotFound {
            token: self.name_owned(),
            what: format!("with ID {id}"),
        }
    }

    pub(super) fn remember(&self, entry: Entry) {
        let generation = self.pool.lock().generation;
        let mut ix = self.index.write().unwrap_or_else(|p| p.into_inner());
        match ix.as_mut() {
            Some(ix) if ix.generation == generation => {
                ix.by_id.insert(entry.record.id.clone(), Arc::new(entry));
            }
            _ => *ix = None,
        }
    }

    pub(super) fn forget(&self, id: &str) {
        if let Some(ix) = self
            .index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            ix.by_id.remove(id);
        }
    }

    /// Reads every tufd key from the token, repairing `CKA_ID`s that do not
    /// match the key (left by a generation interrupted before its ID was
    /// written).
    pub(super) fn scan(&self, session: &Session) -> Result<HashMap<String, Arc<Entry>>, OpError> {
        let mut out = HashMap::new();
        for found in objects::scan(session)? {
            let Scanned {
                label,
                ck_id,
                private,
                public,
                public_key,
                local,
                sensitive,
                extractable,
                always_authenticate,
                label_from_certificate,
            } = found;
            let spki = objects::spki_der(&public_key);
            let id = (self.id_scheme)(&spki);
            if hex::encode(&ck_id) != id && !label_from_certificate {
                tracing::warn!(token = %self.config.name, key = %label, "repairing the key's CKA_ID");
                let new_id = hex::decode(&id).unwrap_or_else(|_| id.as_bytes().to_vec());
                for h in [private, public] {
                    session.update_attributes(h, &[Attribute::Id(new_id.clone())])?;
                }
            }
            let record = KeyRecord {
                id: id.clone(),
                label,
                token: self.name_owned(),
                spki_der: spki,
                origin: if local {
                    crate::KeyOrigin::Generated
                } else {
                    crate::KeyOrigin::Imported
                },
                sensitive,
                extractable,
            };
            out.insert(
                id,
                Arc::new(Entry {
                    record,
                    private,
                    public,
                    verifier: Verifier::new(&public_key),
                    always_authenticate,
                }),
            );
        }
        Ok(out)
    }

    pub(super) fn check_free(
        &self,
        entries: &HashMap<String, Arc<Entry>>,
        label: &KeyLabel,
        id: Option<&str>,
    ) -> Result<(), OpError> {
        if let Some(e) = entries.values().find(|e| e.record.label == *label) {
            return Err(OpError::Key(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!("a key named {label} (ID {})", e.record.id),
            }));
        }
        if let Some(e) = id.and_then(|id| entries.get(id)) {
            return Err(OpError::Key(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!("this key (ID {}, named {})", e.record.id, e.record.label),
            }));
        }
        Ok(())
    }
}

/// The records of `entries`, by label then ID (the order of a listing).
pub(super) fn records<'a>(entries: impl Iterator<Item = &'a Arc<Entry>>) -> Vec<KeyRecord> {
    let mut keys: Vec<KeyRecord> = entries.map(|e| e.record.clone()).collect();
    keys.sort_by(|a, b| a.label.cmp(&b.label).then(a.id.cmp(&b.id)));
    keys
}

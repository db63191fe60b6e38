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

/// How old an index may be before a listing (`key list`, `status`, the
/// name checks of the keyring) reads the token again. Keys another program
/// adds to the token (pkcs11-tool, a second daemon) are seen within this
/// time; signing with a key already in the index never waits for a scan.
/// One scan per token per bound at most, and only when something lists:
/// cheap even for a token with thousands of objects.
pub(super) const INDEX_MAX_AGE: Duration = Duration::from_secs(30);

/// A `tufd:`-labelled private key the scan found and will not use.
#[derive(Clone)]
pub(super) struct Refused {
    pub(super) label: KeyLabel,
    /// The key's ID as tufd computes it from its public key.
    pub(super) id: String,
    /// The protection the token does not apply to it ("non-extractable").
    pub(super) reason: &'static str,
}

pub(super) struct Index {
    pub(super) generation: u64,
    /// When the scan that built this index started.
    pub(super) scanned_at: Instant,
    pub(super) by_id: HashMap<String, Arc<Entry>>,
    /// Keys with a tufd label that are never used (extractable or not
    /// sensitive); their names are taken all the same.
    pub(super) refused: Vec<Refused>,
}

impl Index {
    /// Whether this index belongs to `generation` and was scanned at most
    /// `max_age` ago.
    fn current(&self, generation: u64, max_age: Duration) -> bool {
        self.generation == generation && self.scanned_at.elapsed() <= max_age
    }
}

/// What a scan found: the usable keys and the refused ones.
pub(super) struct Found {
    pub(super) by_id: HashMap<String, Arc<Entry>>,
    pub(super) refused: Vec<Refused>,
}

impl Pkcs11Store {
    /// The index for the current connection, scanning the token if none
    /// was made or the last one is older than [`INDEX_MAX_AGE`].
    pub(super) fn entries(
        &self,
        session: &Session,
    ) -> Result<HashMap<String, Arc<Entry>>, OpError> {
        self.entries_within(session, INDEX_MAX_AGE)
            .map(|(by_id, _)| by_id)
    }

    /// The keys and refused keys as the token holds them now: always a new
    /// scan (generate and import check the name against the token itself,
    /// not against what an earlier scan found).
    pub(super) fn rescan(&self, session: &Session) -> Result<Found, OpError> {
        self.entries_within(session, Duration::ZERO)
            .map(|(by_id, refused)| Found { by_id, refused })
    }

    /// The index, scanning the token unless the current one is at most
    /// `max_age` old.
    #[allow(clippy::type_complexity)]
    fn entries_within(
        &self,
        session: &Session,
        max_age: Duration,
    ) -> Result<(HashMap<String, Arc<Entry>>, Vec<Refused>), OpError> {
        let generation = self.pool.lock().generation;
        if let Some(ix) = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && ix.current(generation, max_age)
        {
            return Ok((ix.by_id.clone(), ix.refused.clone()));
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
            && ix.current(generation, max_age)
        {
            return Ok((ix.by_id.clone(), ix.refused.clone()));
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
        let scanned_at = Instant::now();
        let found = self.scan(session)?;
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Some(Index {
            generation,
            scanned_at,
            by_id: found.by_id.clone(),
            refused: found.refused.clone(),
        });
        Ok((found.by_id, found.refused))
    }

    /// The keys' records as [`KeyStore::list`] gives them, when the index
    /// is current (this connection's, at most [`INDEX_MAX_AGE`] old) and
    /// no unlocked PIN has run out (else `None`: `list` does what that
    /// needs). No token call, and no wait for a lock another thread holds.
    pub(super) fn indexed_records(&self) -> Option<Vec<KeyRecord>> {
        if self.gate.unlock_expired() {
            return None;
        }
        let generation = self.pool.state.try_lock().ok()?.generation;
        let index = self.index.try_read().ok()?;
        let current = index
            .as_ref()
            .filter(|ix| ix.current(generation, INDEX_MAX_AGE))?;
        Some(records(current.by_id.values()))
    }

    /// The number of keys in the index, if it is current (no token call).
    pub(super) fn indexed_count(&self) -> Option<usize> {
        let generation = self.pool.lock().generation;
        self.index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|ix| ix.current(generation, INDEX_MAX_AGE))
            .map(|ix| ix.by_id.len())
    }

    /// When the scan now running started, if one is.
    pub(super) fn scan_running(&self) -> Option<Instant> {
        *self
            .scanning_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The key `id`: from the index whatever its age (its handles stay
    /// valid for the connection), else from a scan if the index is older
    /// than [`INDEX_MAX_AGE`] (a key added from outside since).
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

    /// Reads every tufd key from the token. The only object tufd writes to
    /// here is one of its own generates that was interrupted before the
    /// key's ID replaced the placeholder (`CKA_ID` starting with
    /// [`objects::PENDING_ID_PREFIX`]): its `CKA_ID` is set to the key's
    /// ID. Another program's key, whatever its `CKA_ID`, is read only.
    /// Keys the token does not protect (extractable, or not sensitive) are
    /// left out and reported once.
    pub(super) fn scan(&self, session: &Session) -> Result<Found, OpError> {
        let mut by_id = HashMap::new();
        let mut refused = Vec::new();
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
            if let Some(reason) = objects::unprotected(sensitive, extractable) {
                self.report_refused(&label, &id, reason);
                refused.push(Refused { label, id, reason });
                continue;
            }
            if objects::is_pending(&ck_id) && !label_from_certificate {
                tracing::warn!(token = %self.config.name, key = %label,
                    "finishing a key generation that was interrupted: writing the key's ID");
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
            by_id.insert(
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
        Ok(Found { by_id, refused })
    }

    /// Logs a refused key, once per key and reason for this store.
    fn report_refused(&self, label: &KeyLabel, id: &str, reason: &'static str) {
        let mut reported = self
            .refused_reported
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if reported.insert((id.to_owned(), reason)) {
            tracing::warn!(token = %self.config.name, key = %label, id, reason = %format!("not kept {reason}"),
                "a key labelled for tufd is not kept sensitive and non-extractable by the token; it is never used: delete it from the token");
        }
    }

    /// Destroys a key tufd just created and refuses it when the token did
    /// not keep it sensitive and non-extractable.
    pub(super) fn check_protected(
        &self,
        session: &Session,
        scanned: &Scanned,
        what: &str,
    ) -> Result<(), OpError> {
        let Some(missing) = objects::unprotected(scanned.sensitive, scanned.extractable) else {
            return Ok(());
        };
        for h in [scanned.private, scanned.public] {
            if let Err(e) = session.destroy_object(h) {
                tracing::error!(token = %self.config.name, error = %e,
                    "could not destroy an unprotected key tufd created; delete it from the token");
            }
        }
        let device = self
            .connect()
            .map(|c| {
                let d = &c.description;
                format!("label '{}', {} {}", d.label, d.manufacturer, d.model)
            })
            .unwrap_or_else(|_| "unknown device".into());
        tracing::error!(token = %self.config.name, %device, missing, "the token did not protect a new key");
        Err(OpError::Key(KeyError::Unprotected {
            token: self.name_owned(),
            device,
            what: what.to_owned(),
            missing,
        }))
    }

    /// Refuses `label` when the token holds a key of that name (usable or
    /// refused), and `id` when it holds that key already.
    pub(super) fn check_free(
        &self,
        found: &Found,
        label: &KeyLabel,
        id: Option<&str>,
    ) -> Result<(), OpError> {
        if let Some(e) = found.by_id.values().find(|e| e.record.label == *label) {
            return Err(OpError::Key(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!("a key named {label} (ID {})", e.record.id),
            }));
        }
        if let Some(r) = found.refused.iter().find(|r| r.label == *label) {
            return Err(OpError::Key(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!(
                    "a key named {label} (ID {}, which tufd does not use: the token does not keep it {}; delete it from the token to reuse the name)",
                    r.id, r.reason
                ),
            }));
        }
        if let Some(e) = id.and_then(|id| found.by_id.get(id)) {
            return Err(OpError::Key(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!("this key (ID {}, named {})", e.record.id, e.record.label),
            }));
        }
        if let Some(r) = id.and_then(|id| found.refused.iter().find(|r| r.id == id)) {
            return Err(OpError::Key(KeyError::AlreadyExists {
                token: self.name_owned(),
                what: format!(
                    "this key (ID {}, named {}, which tufd does not use: the token does not keep it {})",
                    r.id, r.label, r.reason
                ),
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

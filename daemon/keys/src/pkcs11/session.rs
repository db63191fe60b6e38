//! The connection to the token and its sessions: finding the token by
//! label or serial, lending logged-in sessions from the pool, and
//! recovering from lost sessions, logins and devices.

use super::*;

/// The open token: module, slot and what it says about itself. Shared
/// (`Arc`): each session checkout asks for it.
pub(super) struct Conn {
    pub(super) ctx: Pkcs11,
    pub(super) slot: Slot,
    pub(super) description: TokenDescription,
}

/// What went wrong inside an operation: a PKCS#11 return value (which may
/// be recoverable by reopening) or a final key-layer error.
pub(super) enum OpError {
    Ck(CkError),
    Key(KeyError),
    /// The error came while an operation was active on the session
    /// (after `C_SignInit`): the session is closed, never lent again.
    Spoiled(Box<OpError>),
}

impl OpError {
    /// The error itself, and whether it left the session unusable.
    fn unwrap_spoiled(self) -> (OpError, bool) {
        match self {
            OpError::Spoiled(inner) => (inner.unwrap_spoiled().0, true),
            e => (e, false),
        }
    }
}

impl From<CkError> for OpError {
    fn from(e: CkError) -> Self {
        OpError::Ck(e)
    }
}

impl From<KeyError> for OpError {
    fn from(e: KeyError) -> Self {
        OpError::Key(e)
    }
}

/// What a PKCS#11 error asks of us. Whatever it is, the retry runs on a
/// logged-in session: the login belongs to the application, shared by all
/// its sessions, so what one session lost every pooled session lost.
pub(super) enum Recovery {
    /// The session is gone, and with it (a token closes every session of
    /// the application at once: `C_CloseAllSessions`, a restarted HSM)
    /// most likely the other pooled ones: drop the pool's sessions of that
    /// generation and open another, which logs in again.
    NewSession,
    /// The login is gone: log in again once (the PIN gate lets one
    /// operation present the PIN; the others find the token logged in),
    /// which restores every pooled session.
    Relogin,
    /// The device is gone: find the token again and reopen everything.
    Reconnect,
    /// Object handles are stale: rescan the token, logged in (a token that
    /// lost the login hides its private keys and says their handles are
    /// invalid: SoftHSM2).
    Rescan,
    /// Not recoverable.
    Fail,
}

pub(super) fn recovery(e: &CkError) -> Recovery {
    match e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::SessionHandleInvalid | RvError::SessionClosed => Recovery::NewSession,
            RvError::UserNotLoggedIn => Recovery::Relogin,
            RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SlotIdInvalid
            | RvError::CryptokiNotInitialized => Recovery::Reconnect,
            RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid => Recovery::Rescan,
            _ => Recovery::Fail,
        },
        _ => Recovery::Fail,
    }
}

impl Pkcs11Store {
    /// Finds the token behind the module and remembers its slot.
    pub(super) fn connect(&self) -> Result<Arc<Conn>, KeyError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = conn.as_ref() {
            return Ok(Arc::clone(c));
        }
        let ctx = self
            .modules
            .get(&self.config.module)
            .map_err(|detail| KeyError::ModuleLoad {
                token: self.name_owned(),
                module: self.config.module.display().to_string(),
                detail,
            })?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| self.device_error("listing slots", e))?;
        let mut seen = Vec::new();
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else {
                continue;
            };
            let label = info.label().trim().to_owned();
            let serial = info.serial_number().trim().to_owned();
            let matches = match &self.config.selector {
                TokenSelector::Label(l) => *l == label,
                TokenSelector::Serial(s) => *s == serial,
            };
            if matches {
                let c = Arc::new(Conn {
                    ctx: ctx.clone(),
                    slot,
                    description: TokenDescription {
                        label,
                        serial,
                        manufacturer: info.manufacturer_id().trim().to_owned(),
                        model: info.model().trim().to_owned(),
                    },
                });
                tracing::info!(token = %self.config.name, label = %c.description.label,
                    serial = %c.description.serial, "token found");
                *conn = Some(Arc::clone(&c));
                return Ok(c);
            }
            seen.push(format!("'{label}' (serial {serial})"));
        }
        Err(KeyError::TokenNotFound {
            token: self.name_owned(),
            selector: self.config.selector.to_string(),
            seen: if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            },
        })
    }

    /// Forgets the slot and every session after the device went away.
    pub(super) fn disconnect(&self) {
        tracing::warn!(token = %self.config.name, "token connection lost; reopening");
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut st = self.pool.lock();
        self.pool.reset(&mut st);
        // Released before the index is taken: a caller reading the index
        // takes the pool's lock while it holds the index.
        drop(st);
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Lends a logged-in session, opening one if the pool has room.
    pub(super) fn lease(&self) -> Result<Lease<'_>, KeyError> {
        let conn = self.connect()?;
        let mut st = self.pool.lock();
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(Lease {
                    pool: &self.pool,
                    session: Some(s),
                    generation: st.generation,
                    keep: true,
                });
            }
            if st.open < self.pool.max {
                st.open += 1;
                let generation = st.generation;
                drop(st);
                return match self.open_session(&conn) {
                    Ok(s) => Ok(Lease {
                        pool: &self.pool,
                        session: Some(s),
                        generation,
                        keep: true,
                    }),
                    Err(e) => {
                        let mut st = self.pool.lock();
                        if st.generation == generation {
                            st.open -= 1;
                        }
                        Err(e)
                    }
                };
            }
            st = self.pool.wait(st);
        }
    }

    pub(super) fn open_session(&self, conn: &Conn) -> Result<Session, KeyError> {
        let session = conn.ctx.open_rw_session(conn.slot).map_err(|e| {
            if matches!(recovery(&e), Recovery::Reconnect) {
                *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            self.device_error("opening a session", e)
        })?;
        tracing::debug!(token = %self.config.name, "session opened");
        self.ensure_login(conn, &session)?;
        Ok(session)
    }

    /// Runs `op` on a session, recovering once from a lost session, login,
    /// device or stale handle. The retry takes any pooled session and logs
    /// in first if the token lost the login: idle sessions lost it too, and
    /// one `C_Login` restores them all.
    pub(super) fn run<T>(
        &self,
        operation: &'static str,
        mut op: impl FnMut(&Self, &Session) -> Result<T, OpError>,
    ) -> Result<T, KeyError> {
        self.expire_unlock();
        // What the first failure asked for; `Some` on the single retry.
        let mut recovered: Option<Recovery> = None;
        loop {
            let mut lease = self.lease()?;
            if recovered.is_some() {
                // Read again with the PIN gate held: of the operations
                // recovering together, one presents the PIN.
                if let Err(e) = self
                    .connect()
                    .and_then(|conn| self.ensure_login(&conn, lease.session()))
                {
                    lease.keep = false;
                    return Err(e);
                }
            }
            let (err, spoiled) = match op(self, lease.session()) {
                Ok(v) => return Ok(v),
                Err(e) => e.unwrap_spoiled(),
            };
            if spoiled {
                // An operation may be active on it: the next C_SignInit
                // would fail (CKR_OPERATION_ACTIVE), and with one session
                // the token would be unusable.
                lease.keep = false;
            }
            let err = match err {
                OpError::Key(e) => return Err(e),
                OpError::Ck(e) => e,
                OpError::Spoiled(_) => unreachable!("unwrapped above"),
            };
            let action = recovery(&err);
            if recovered.is_some() || matches!(action, Recovery::Fail) {
                return Err(self.device_error(operation, err));
            }
            tracing::warn!(token = %self.config.name, operation, error = %err, "recovering");
            // The failed session is not lent again (it may be closed, or
            // hold an unfinished operation).
            lease.keep = false;
            match action {
                Recovery::Relogin => {}
                Recovery::NewSession => self.pool.retire(lease.generation),
                Recovery::Reconnect => {
                    drop(lease);
                    self.disconnect();
                }
                Recovery::Rescan => {
                    *self.index.write().unwrap_or_else(|p| p.into_inner()) = None;
                }
                Recovery::Fail => unreachable!("handled above"),
            }
            recovered = Some(action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_errors_keep_their_source() {
        use cryptoki::context::Function;
        let store = Pkcs11Store::new(
            Pkcs11Config {
                name: "t".into(),
                module: "/nonexistent.so".into(),
                selector: TokenSelector::Label("t".into()),
                pin: PinSource::Prompt,
                max_sessions: 1,
            },
            Arc::new(Modules::new()),
            |_| String::new(),
        );
        let e = store.device_error(
            "signing",
            CkError::Pkcs11(RvError::DeviceError, Function::Sign),
        );
        let source = std::error::Error::source(&e).expect("a source");
        assert!(matches!(
            source.downcast_ref::<crate::DeviceError>(),
            Some(crate::DeviceError::Pkcs11(CkError::Pkcs11(
                RvError::DeviceError,
                Function::Sign
            )))
        ));
    }

    #[test]
    fn classifies_recoverable_errors() {
        use cryptoki::context::Function;
        let e = |rv| CkError::Pkcs11(rv, Function::Sign);
        assert!(matches!(
            recovery(&e(RvError::SessionHandleInvalid)),
            Recovery::NewSession
        ));
        assert!(matches!(
            recovery(&e(RvError::UserNotLoggedIn)),
            Recovery::Relogin
        ));
        assert!(matches!(
            recovery(&e(RvError::DeviceRemoved)),
            Recovery::Reconnect
        ));
        assert!(matches!(
            recovery(&e(RvError::KeyHandleInvalid)),
            Recovery::Rescan
        ));
        assert!(matches!(
            recovery(&e(RvError::PinIncorrect)),
            Recovery::Fail
        ));
    }
}

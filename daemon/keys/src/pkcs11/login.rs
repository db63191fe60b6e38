//! Logging in: the PIN the token's [`PinGate`] hands out, presented with
//! `C_Login` after the token's tries were checked; unlock requests.

use super::*;

impl Pkcs11Store {
    /// Forgets an unlocked PIN whose time is up; for `pin = "prompt"` every
    /// session is closed too, which logs the token out.
    pub(super) fn expire_unlock(&self) {
        if !self.gate.expire() {
            return;
        }
        let mut st = self.pool.lock();
        if let Some(session) = st.idle.first()
            && let Err(e) = session.logout()
        {
            tracing::debug!(token = %self.config.name, error = %e, "logout after the PIN expired");
        }
        self.pool.reset(&mut st);
    }

    /// What the token reports about its PIN tries; `None` when the PIN is
    /// blocked.
    pub(super) fn tries_left(&self, conn: &Conn) -> Option<TriesLeft> {
        match conn.ctx.get_token_info(conn.slot) {
            Ok(i) if i.user_pin_locked() => None,
            Ok(i) if i.user_pin_final_try() => Some(TriesLeft::FinalTry),
            Ok(i) if i.user_pin_count_low() => Some(TriesLeft::Low),
            _ => Some(TriesLeft::Unknown),
        }
    }

    /// Logs in unless the application is already logged in on this token,
    /// with the PIN the gate hands out. The login state is read again once
    /// the gate is held: another thread may have logged in meanwhile.
    pub(super) fn ensure_login(&self, conn: &Conn, session: &Session) -> Result<(), KeyError> {
        if self.logged_in(session)? {
            return Ok(());
        }
        let attempt = self.gate.login()?;
        if self.logged_in(session)? {
            return Ok(());
        }
        self.present(conn, session, attempt)?;
        tracing::info!(token = %self.config.name, "logged in");
        Ok(())
    }

    /// Whether the application is logged in on the token (the state is
    /// shared by all its sessions).
    pub(super) fn logged_in(&self, session: &Session) -> Result<bool, KeyError> {
        let info = session
            .get_session_info()
            .map_err(|e| self.device_error("reading the session state", e))?;
        Ok(matches!(
            info.session_state(),
            SessionState::RoUser | SessionState::RwUser
        ))
    }

    /// Presents the attempt's PIN with `C_Login`, after the gate checked
    /// the tries the token reports, and tells the gate the outcome.
    pub(super) fn present(
        &self,
        conn: &Conn,
        session: &Session,
        mut attempt: Attempt<'_>,
    ) -> Result<(), KeyError> {
        let device = format!("token {}", conn.description.label);
        match self.tries_left(conn) {
            None => return Err(attempt.blocked()),
            Some(tries) => attempt.check_tries(tries, &device)?,
        }
        match session.login(UserType::User, Some(attempt.pin())) {
            Ok(()) => {
                attempt.accepted();
                // Handles of private objects found under an earlier login
                // may not survive its loss (SoftHSM2 hands out new ones).
                *self.index.write().unwrap_or_else(|p| p.into_inner()) = None;
                Ok(())
            }
            // Logged in by someone else first: the token checked nothing.
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => attempt.already_logged_in(),
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                match self.tries_left(conn) {
                    None => Err(attempt.blocked()),
                    Some(tries) => Err(attempt.rejected(tries)),
                }
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(attempt.blocked()),
            Err(e) => Err(self.device_error("logging in", e)),
        }
    }

    /// [`KeyStore::unlock`]: the gate decides whether the PIN reaches the token.
    pub(super) fn unlock_token(&self, pin: SecretString) -> Result<(), KeyError> {
        crate::gate::check_length(&self.config.name, &pin, 256)?;
        self.expire_unlock();
        let conn = self.connect()?;
        let session = conn
            .ctx
            .open_rw_session(conn.slot)
            .map_err(|e| self.device_error("opening a session", e))?;
        if let Some(hook) = &self.unlock_hook {
            hook();
        }
        // Logged in already: the gate never lets this PIN reach the token
        // (a wrong one would log every session out). Read with the gate
        // held, so that no operation's login comes in between.
        match self.gate.unlock(pin, || self.logged_in(&session))? {
            UnlockStart::Extended => {
                tracing::info!(token = %self.config.name, "unlock with the PIN the token is logged in with: cache time extended");
                return Ok(());
            }
            UnlockStart::Present(attempt) => self.present(&conn, &session, attempt)?,
        }
        // Keep the logged-in session: closing the token's last session
        // would log it out again.
        let mut st = self.pool.lock();
        if st.open < self.pool.max {
            st.open += 1;
            st.idle.push(session);
        }
        drop(st);
        tracing::info!(token = %self.config.name,
            cache_seconds = self.gate.rules().cache.map_or(0, |d| d.as_secs()),
            "token unlocked with a PIN given over the socket (0: until the daemon stops)");
        Ok(())
    }
}

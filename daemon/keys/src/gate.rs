//! The PIN gate: one per token, shared by every backend.
//!
//! The gate owns the token's PIN state ([`PinState`]) and decides, before
//! anything reaches the device, whether a PIN may be presented:
//!
//! - a PIN the device rejected is never presented again, whatever its
//!   source (configuration or `tufctl token unlock`);
//! - an unlock request on a ready token never presents its PIN (which
//!   would log the token out when wrong): the same PIN extends the cache,
//!   another is refused;
//! - a PIN the device has not accepted before is not presented while the
//!   device reports its last try, unless the administrator allowed it in
//!   the daemon configuration (`allow_last_pin_try`);
//! - unlock requests have a budget of rejected PINs per window, so callers
//!   of the socket cannot walk a token's retry counter down.
//!
//! Backends ask the gate for an [`Attempt`], talk to the device, and report
//! the outcome to the attempt, which moves the state. An attempt holds the
//! gate's lock: PINs are presented one at a time.

use crate::pin::{PinFingerprint, PinSource};
use crate::{KeyError, TriesLeft};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the administrator decided about PINs for one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRules {
    /// Where the PIN comes from.
    pub source: PinSource,
    /// How long a PIN given with `tufctl token unlock` is kept (`None`:
    /// until the daemon stops).
    pub cache: Option<Duration>,
    /// Present a PIN the device has not accepted before although it
    /// reports few tries left (`allow_last_pin_try`).
    pub allow_last_try: bool,
    /// How many rejected unlock PINs are presented per
    /// [`PinRules::unlock_window`] (`unlock_attempts`).
    pub unlock_attempts: u32,
    /// The window of [`PinRules::unlock_attempts`].
    pub unlock_window: Duration,
}

/// Rejected unlock PINs allowed per window by default.
pub const DEFAULT_UNLOCK_ATTEMPTS: u32 = 2;
/// The default window for [`DEFAULT_UNLOCK_ATTEMPTS`].
pub const DEFAULT_UNLOCK_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How long an unlocked PIN is kept by default (15 minutes).
pub const DEFAULT_PIN_CACHE: Duration = Duration::from_secs(15 * 60);

impl PinRules {
    /// The defaults for a PIN source: 15-minute cache, last try never
    /// used, two rejected unlock PINs per ten minutes.
    pub fn new(source: PinSource) -> Self {
        Self {
            source,
            cache: Some(DEFAULT_PIN_CACHE),
            allow_last_try: false,
            unlock_attempts: DEFAULT_UNLOCK_ATTEMPTS,
            unlock_window: DEFAULT_UNLOCK_WINDOW,
        }
    }
}

/// The PIN state of a token, as far as the gate knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinState {
    /// No PIN accepted yet (or the unlocked one expired).
    Locked,
    /// The device accepted this PIN.
    Ready { pin: PinFingerprint },
    /// The device rejected the last PIN presented; `tries` as it reported.
    /// `pin_source_generation` counts the PINs rejected so far: a changed
    /// PIN source is tried once, an unchanged one never again.
    Rejected {
        tries: TriesLeft,
        pin_source_generation: u32,
    },
    /// The device's PIN is blocked; only its security officer can help.
    Blocked,
}

/// Where the PIN of an attempt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The configured source (or an unlocked PIN while it lasts).
    Configured,
    /// An unlock request.
    Unlock,
}

struct Unlocked {
    pin: SecretString,
    until: Option<Instant>,
}

struct Inner {
    state: PinState,
    /// Every PIN the device rejected (salted fingerprints).
    rejected: Vec<PinFingerprint>,
    /// Rejected unlock PINs within the current window.
    unlock_failures: Vec<Instant>,
    unlocked: Option<Unlocked>,
}

/// The PIN gate of one token.
pub struct PinGate {
    token: String,
    rules: PinRules,
    salt: [u8; 16],
    inner: Mutex<Inner>,
}

/// What an unlock request leads to.
pub enum UnlockStart<'a> {
    /// The token is ready with this very PIN: its cache time was extended,
    /// nothing is presented.
    Extended,
    /// Present the PIN through this attempt.
    Present(Attempt<'a>),
}

/// A PIN about to be presented, holding the gate until its outcome.
pub struct Attempt<'a> {
    gate: &'a PinGate,
    inner: MutexGuard<'a, Inner>,
    pin: SecretString,
    fingerprint: PinFingerprint,
    origin: Origin,
}

impl PinGate {
    /// A gate for token `token`, locked.
    pub fn new(token: impl Into<String>, rules: PinRules) -> Self {
        Self {
            token: token.into(),
            rules,
            salt: rand::random(),
            inner: Mutex::new(Inner {
                state: PinState::Locked,
                rejected: Vec::new(),
                unlock_failures: Vec::new(),
                unlocked: None,
            }),
        }
    }

    /// The rules this gate follows.
    pub fn rules(&self) -> &PinRules {
        &self.rules
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> PinState {
        self.lock().state.clone()
    }

    fn token(&self) -> String {
        self.token.clone()
    }

    /// Whether an unlocked PIN's time is up (not yet forgotten: see
    /// [`PinGate::expire`]). Never waits: a gate another thread holds
    /// counts as expired, so callers take their slow path.
    pub fn unlock_expired(&self) -> bool {
        self.inner
            .try_lock()
            .map_or(true, |inner| Self::over(&inner))
    }

    /// Whether the unlocked PIN in `inner` is kept for a limited time that
    /// is up.
    fn over(inner: &Inner) -> bool {
        inner
            .unlocked
            .as_ref()
            .and_then(|u| u.until)
            .is_some_and(|until| Instant::now() >= until)
    }

    /// Forgets an unlocked PIN whose time is up. Returns true when it did
    /// and the token has no other PIN (`pin = "prompt"`): the backend then
    /// logs the device out.
    pub fn expire(&self) -> bool {
        let mut inner = self.lock();
        if !Self::over(&inner) {
            return false;
        }
        inner.unlocked = None;
        tracing::info!(token = %self.token, "the PIN given with `tufctl token unlock` expired");
        if self.rules.source == PinSource::Prompt {
            inner.state = PinState::Locked;
            return true;
        }
        false
    }

    /// Whether `pin` is the one the device accepted last.
    fn accepted(inner: &Inner, fingerprint: &PinFingerprint) -> bool {
        matches!(&inner.state, PinState::Ready { pin } if pin == fingerprint)
    }

    /// Starts presenting the PIN an operation needs: the unlocked one
    /// while it lasts, else the configured source's. Refuses a blocked
    /// token and a PIN the device rejected before.
    pub fn login(&self) -> Result<Attempt<'_>, KeyError> {
        let inner = self.lock();
        if inner.state == PinState::Blocked {
            return Err(KeyError::PinLocked {
                token: self.token(),
            });
        }
        let pin = match (&inner.unlocked, &self.rules.source) {
            (Some(u), _) => u.pin.clone(),
            (None, PinSource::Prompt) => {
                return Err(KeyError::Locked {
                    token: self.token(),
                });
            }
            (None, source) => source.read().map_err(|detail| KeyError::PinSource {
                token: self.token(),
                detail: format!("{detail} (PIN source {source})"),
            })?,
        };
        let fingerprint = PinFingerprint::of(&pin, &self.salt);
        if inner.rejected.contains(&fingerprint) {
            let tries = match &inner.state {
                PinState::Rejected { tries, .. } => *tries,
                _ => TriesLeft::Unknown,
            };
            return Err(KeyError::PinRejected {
                token: self.token(),
                tries,
            });
        }
        Ok(Attempt {
            gate: self,
            inner,
            pin,
            fingerprint,
            origin: Origin::Configured,
        })
    }

    /// Starts an unlock request with `pin`. `device_ready` reads whether
    /// the device is logged in now (its session state); it is asked with
    /// the gate held, so no login through the gate comes between its
    /// answer and the attempt. A ready token is never asked to check
    /// another PIN.
    pub fn unlock(
        &self,
        pin: SecretString,
        device_ready: impl FnOnce() -> Result<bool, KeyError>,
    ) -> Result<UnlockStart<'_>, KeyError> {
        let mut inner = self.lock();
        if inner.state == PinState::Blocked {
            return Err(KeyError::PinLocked {
                token: self.token(),
            });
        }
        let fingerprint = PinFingerprint::of(&pin, &self.salt);
        if device_ready()? {
            return self.unlock_ready(&mut inner, pin, &fingerprint);
        }
        if inner.rejected.contains(&fingerprint) {
            let tries = match &inner.state {
                PinState::Rejected { tries, .. } => *tries,
                _ => TriesLeft::Unknown,
            };
            return Err(KeyError::UnlockRejected {
                token: self.token(),
                tries,
            });
        }
        let window = self.rules.unlock_window;
        let now = Instant::now();
        inner
            .unlock_failures
            .retain(|t| now.duration_since(*t) < window);
        if inner.unlock_failures.len() >= self.rules.unlock_attempts as usize {
            let oldest = inner.unlock_failures.first().copied().unwrap_or(now);
            return Err(KeyError::UnlockBudget {
                token: self.token(),
                attempts: self.rules.unlock_attempts,
                retry_after: (oldest + window)
                    .saturating_duration_since(now)
                    .as_secs()
                    .max(1),
            });
        }
        Ok(UnlockStart::Present(Attempt {
            gate: self,
            inner,
            pin,
            fingerprint,
            origin: Origin::Unlock,
        }))
    }

    /// An unlock request on a logged-in device: the PIN the device
    /// accepted extends its cache time; any other is refused unchecked
    /// (never cached, never counted as accepted).
    fn unlock_ready(
        &self,
        inner: &mut Inner,
        pin: SecretString,
        fingerprint: &PinFingerprint,
    ) -> Result<UnlockStart<'_>, KeyError> {
        if !Self::accepted(inner, fingerprint) {
            return Err(KeyError::AlreadyUnlocked {
                token: self.token(),
            });
        }
        inner.unlocked = Some(Unlocked {
            pin,
            until: self.rules.cache.map(|d| Instant::now() + d),
        });
        Ok(UnlockStart::Extended)
    }
}

impl Attempt<'_> {
    /// The PIN to present.
    pub fn pin(&self) -> &SecretString {
        &self.pin
    }

    /// Whether the device accepted this PIN before (a re-login after a
    /// lost session): such a PIN is presented whatever the tries left.
    pub fn previously_accepted(&self) -> bool {
        PinGate::accepted(&self.inner, &self.fingerprint)
    }

    /// Checks what the device reports about its tries left before the PIN
    /// is presented: a PIN the device has not accepted before is not
    /// presented while few tries are left, unless the administrator
    /// allowed it (`allow_last_pin_try`). `device` names the device in the
    /// refusal.
    pub fn check_tries(&mut self, tries: TriesLeft, device: &str) -> Result<(), KeyError> {
        // PKCS#11's CKF_USER_PIN_COUNT_LOW means "a wrong PIN was entered
        // at least once since the last login", not a count: SoftHSM2 and
        // most HSMs set it after one typo. Wrong PINs are bounded by the
        // unlock budget instead; the last try is the administrator's.
        let few = match tries {
            TriesLeft::FinalTry => true,
            TriesLeft::Exactly(n) => n <= 1,
            TriesLeft::Low | TriesLeft::Unknown => false,
        };
        if !few || self.previously_accepted() {
            return Ok(());
        }
        if !self.gate.rules.allow_last_try {
            return Err(KeyError::LastPinTry {
                token: self.gate.token(),
                device: device.to_owned(),
            });
        }
        tracing::warn!(token = %self.gate.token, %tries,
            "presenting a PIN although the device reports few tries left, as allow_last_pin_try permits");
        Ok(())
    }

    /// The device reports the PIN blocked: nothing is presented again.
    pub fn blocked(mut self) -> KeyError {
        self.inner.state = PinState::Blocked;
        tracing::error!(token = %self.gate.token, "the device reports its user PIN blocked");
        KeyError::PinLocked {
            token: self.gate.token(),
        }
    }

    /// The device checked the PIN and accepted it (`C_Login` or PIV
    /// VERIFY answered OK): only then is it the accepted PIN, which later
    /// logins present whatever the tries left. An unlock request's PIN is
    /// kept for the cache time. A device that answers it is logged in
    /// already checked nothing: see [`Attempt::already_logged_in`].
    pub fn accepted(mut self) {
        self.inner.state = PinState::Ready {
            pin: self.fingerprint.clone(),
        };
        if self.origin == Origin::Unlock {
            self.inner.unlocked = Some(Unlocked {
                pin: self.pin.clone(),
                until: self.gate.rules.cache.map(|d| Instant::now() + d),
            });
        }
    }

    /// The device answered that it is logged in already
    /// (`CKR_USER_ALREADY_LOGGED_IN`): it did not check the PIN, so the
    /// state stays as it was and the PIN is neither accepted nor cached.
    /// An operation goes on with the device's login; an unlock request
    /// gets the answer of a ready token (its cache extended when it is the
    /// accepted PIN, else [`KeyError::AlreadyUnlocked`]).
    pub fn already_logged_in(mut self) -> Result<(), KeyError> {
        tracing::info!(token = %self.gate.token, origin = ?self.origin,
            "the device is logged in already; the PIN was not checked");
        match self.origin {
            Origin::Configured => Ok(()),
            Origin::Unlock => {
                let (gate, pin, fingerprint) =
                    (self.gate, self.pin.clone(), self.fingerprint.clone());
                gate.unlock_ready(&mut self.inner, pin, &fingerprint)
                    .map(|_| ())
            }
        }
    }

    /// The device rejected the PIN, reporting `tries`: it is never
    /// presented again. Returns the error for the caller.
    pub fn rejected(mut self, tries: TriesLeft) -> KeyError {
        tracing::warn!(token = %self.gate.token, %tries, "the device rejected the PIN");
        let fingerprint = self.fingerprint.clone();
        if !self.inner.rejected.contains(&fingerprint) {
            self.inner.rejected.push(fingerprint);
        }
        let generation = u32::try_from(self.inner.rejected.len()).unwrap_or(u32::MAX);
        self.inner.state = PinState::Rejected {
            tries,
            pin_source_generation: generation,
        };
        if self.origin == Origin::Unlock {
            self.inner.unlock_failures.push(Instant::now());
            KeyError::UnlockRejected {
                token: self.gate.token(),
                tries,
            }
        } else {
            if self
                .inner
                .unlocked
                .as_ref()
                .is_some_and(|u| PinFingerprint::of(&u.pin, &self.gate.salt) == self.fingerprint)
            {
                self.inner.unlocked = None;
            }
            KeyError::PinRejected {
                token: self.gate.token(),
                tries,
            }
        }
    }
}

impl std::fmt::Debug for Attempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("origin", &self.origin)
            .field("pin", &"<redacted>")
            .finish()
    }
}

/// Refuses an empty PIN or one longer than `max` characters before it
/// reaches the gate (a PIV PIN has at most 8).
pub fn check_length(token: &str, pin: &SecretString, max: usize) -> Result<(), KeyError> {
    let len = pin.expose_secret().len();
    if len == 0 || len > max {
        return Err(KeyError::PinSource {
            token: token.to_owned(),
            detail: format!(
                "the PIN must have 1 to {max} characters; nothing was presented to the device"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(attempts: u32) -> PinGate {
        let mut rules = PinRules::new(PinSource::Prompt);
        rules.unlock_attempts = attempts;
        PinGate::new("t", rules)
    }

    fn present<'a>(g: &'a PinGate, pin: &str, ready: bool) -> Result<Attempt<'a>, KeyError> {
        match g.unlock(SecretString::from(pin), || Ok(ready))? {
            UnlockStart::Present(a) => Ok(a),
            UnlockStart::Extended => panic!("extended"),
        }
    }

    #[test]
    fn a_rejected_pin_is_never_presented_again_and_the_budget_holds() {
        let g = gate(3);
        let mut presented = 0;
        for i in 0..30 {
            if let Ok(a) = present(&g, &format!("{i:04}"), false) {
                presented += 1;
                let _ = a.rejected(TriesLeft::Unknown);
            }
        }
        assert_eq!(presented, 3);
        // The same wrong PIN again: refused by the gate, not the budget.
        let g = gate(10);
        let _ = present(&g, "0000", false)
            .unwrap()
            .rejected(TriesLeft::Unknown);
        assert!(matches!(
            present(&g, "0000", false),
            Err(KeyError::UnlockRejected { .. })
        ));
    }

    #[test]
    fn a_ready_token_is_never_asked_to_check_another_pin() {
        let g = gate(3);
        present(&g, "1234", false).unwrap().accepted();
        assert!(matches!(g.state(), PinState::Ready { .. }));
        assert!(matches!(
            g.unlock(SecretString::from("9999"), || Ok(true)),
            Err(KeyError::AlreadyUnlocked { .. })
        ));
        assert!(matches!(
            g.unlock(SecretString::from("1234"), || Ok(true)),
            Ok(UnlockStart::Extended)
        ));
        // The accepted PIN serves logins.
        let a = g.login().unwrap();
        assert!(a.previously_accepted());
    }

    #[test]
    fn a_pin_the_device_did_not_check_is_never_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        std::fs::write(&file, "1234").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let g = PinGate::new("t", PinRules::new(PinSource::File(file)));
        // An unlock whose device turns out logged in already (another
        // login came first): refused, nothing cached, state unchanged.
        let a = present(&g, "9999", false).unwrap();
        assert!(matches!(
            a.already_logged_in(),
            Err(KeyError::AlreadyUnlocked { .. })
        ));
        assert_eq!(g.state(), PinState::Locked);
        // The next login presents the configured PIN, which the device
        // has not accepted either: the tries are checked before it goes.
        let mut a = g.login().unwrap();
        assert!(!a.previously_accepted());
        assert!(matches!(
            a.check_tries(TriesLeft::FinalTry, "dev"),
            Err(KeyError::LastPinTry { .. })
        ));
        // An operation's login answered the same way goes on, unaccepted.
        assert!(a.already_logged_in().is_ok());
        assert_eq!(g.state(), PinState::Locked);
        // Accepted once, then the same PIN on a device logged in already
        // only extends the cache; another is refused.
        g.login().unwrap().accepted();
        assert!(
            present(&g, "1234", false)
                .unwrap()
                .already_logged_in()
                .is_ok()
        );
        assert!(matches!(
            present(&g, "9999", false).unwrap().already_logged_in(),
            Err(KeyError::AlreadyUnlocked { .. })
        ));
        assert!(!g.login().unwrap().pin().expose_secret().starts_with('9'));
    }

    #[test]
    fn few_tries_left_need_the_administrator() {
        let g = gate(3);
        let mut a = present(&g, "1234", false).unwrap();
        assert!(matches!(
            a.check_tries(TriesLeft::FinalTry, "dev"),
            Err(KeyError::LastPinTry { .. })
        ));
        assert!(a.check_tries(TriesLeft::Exactly(2), "dev").is_ok());
        assert!(a.check_tries(TriesLeft::Low, "dev").is_ok());
        drop(a);
        let mut rules = PinRules::new(PinSource::Prompt);
        rules.allow_last_try = true;
        let g = PinGate::new("t", rules);
        let mut a = present(&g, "1234", false).unwrap();
        assert!(a.check_tries(TriesLeft::Exactly(1), "dev").is_ok());
        a.accepted();
        // Accepted once, the same PIN logs in again (a lost session)
        // whatever the count.
        let g2 = gate(3);
        present(&g2, "1234", false).unwrap().accepted();
        let mut a = g2.login().unwrap();
        assert!(a.check_tries(TriesLeft::FinalTry, "dev").is_ok());
    }

    #[test]
    fn a_rejected_configured_pin_stays_rejected_after_an_unlock() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        std::fs::write(&file, "1111").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let g = PinGate::new("t", PinRules::new(PinSource::File(file.clone())));
        let _ = g.login().unwrap().rejected(TriesLeft::Unknown);
        // An unlock with another wrong PIN does not make the configured
        // one presentable again.
        let _ = present(&g, "2222", false)
            .unwrap()
            .rejected(TriesLeft::Unknown);
        assert!(matches!(g.login(), Err(KeyError::PinRejected { .. })));
        // A changed PIN source is tried.
        std::fs::write(&file, "3333").unwrap();
        assert!(g.login().is_ok());
    }

    #[test]
    fn blocked_is_final() {
        let g = gate(3);
        let a = present(&g, "1", false).unwrap();
        let _ = a.blocked();
        assert!(matches!(g.login(), Err(KeyError::PinLocked { .. })));
        assert!(matches!(
            g.unlock(SecretString::from("2"), || Ok(false)),
            Err(KeyError::PinLocked { .. })
        ));
    }
}

//! A bounded pool of PKCS#11 sessions on one token.
//!
//! `cryptoki::Session` is `Send` but not `Sync`: a session serves one thread
//! at a time. The pool hands out up to `max` sessions, blocks further
//! callers until one is returned, and throws sessions away (instead of
//! returning them) when they were opened before a reconnect or before the
//! token closed its sessions.

use cryptoki::session::Session;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Sessions currently idle and how many exist in total.
pub(super) struct PoolState {
    pub idle: Vec<Session>,
    pub open: usize,
    /// Bumped on every reconnect and when the token closed the sessions;
    /// sessions of older generations are dropped.
    pub generation: u64,
}

pub(super) struct Pool {
    pub state: Mutex<PoolState>,
    returned: Condvar,
    pub max: usize,
}

impl Pool {
    pub fn new(max: usize) -> Self {
        Self {
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                open: 0,
                generation: 0,
            }),
            returned: Condvar::new(),
            max: max.max(1),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a session is returned.
    pub fn wait<'a>(&self, guard: MutexGuard<'a, PoolState>) -> MutexGuard<'a, PoolState> {
        self.returned.wait(guard).unwrap_or_else(|p| p.into_inner())
    }

    /// Drops every idle session and invalidates the leased ones, which are
    /// no longer counted: they are closed when they come back.
    pub fn reset(&self, st: &mut PoolState) {
        st.open = 0;
        st.idle.clear();
        st.generation += 1;
        self.returned.notify_all();
    }

    /// Drops every session of `generation` after one of them was found
    /// closed (the token closes all of an application's sessions at once),
    /// as [`Pool::reset`] does; nothing when the pool moved on already
    /// (another caller retired them, and its new sessions stay).
    pub fn retire(&self, generation: u64) {
        let mut st = self.lock();
        if st.generation == generation {
            self.reset(&mut st);
        }
    }

    /// Takes a session back; `keep = false` closes it instead.
    pub fn give_back(&self, session: Session, generation: u64, keep: bool) {
        let mut st = self.lock();
        if keep && generation == st.generation {
            st.idle.push(session);
        } else {
            st.open -= usize::from(generation == st.generation);
            drop(session);
        }
        drop(st);
        self.returned.notify_one();
    }
}

/// A session lent out by the pool; returned when dropped.
pub(super) struct Lease<'a> {
    pub pool: &'a Pool,
    pub session: Option<Session>,
    pub generation: u64,
    pub keep: bool,
}

impl Lease<'_> {
    pub fn session(&self) -> &Session {
        self.session
            .as_ref()
            .expect("lease holds a session until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool.give_back(s, self.generation, self.keep);
        }
    }
}

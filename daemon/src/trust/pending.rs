//! Verified results on their way to the trust store.
//!
//! A transaction answers as soon as its read-back verified (`txn.rs`); the
//! verified repository reaches the store afterwards, so the store's two
//! fsyncs are not part of the answer. Each repository has at most one
//! writer here, which writes the newest result queued and then any newer
//! one queued meanwhile (an older result not yet written is skipped: the
//! newer one supersedes it). So stores happen in transaction order, and
//! the next transaction into the repository is not held up by the last
//! one's store: it starts from the kept read-back (`recent.rs`).
//!
//! Whoever loads the store, or removes a repository from it, first waits
//! until no result for that repository is pending ([`Pending::settled`]),
//! while holding the repository's writer lock, under which alone results
//! are queued.

use super::fetch::Fetched;
use super::txn::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The newest result waiting, and whether a writer is running.
#[derive(Default)]
struct Slot {
    next: Option<Arc<Fetched>>,
    writing: bool,
}

/// Results waiting for the store, by repository.
#[derive(Default)]
pub struct Pending {
    slots: Mutex<HashMap<String, Slot>>,
    /// Signalled whenever a repository's writer finishes.
    idle: tokio::sync::Notify,
}

impl Pending {
    /// Queues `fetched` for `gun`; `true` when the caller must start a
    /// writer ([`Pending::write_all`]), `false` when one is running.
    pub fn queue(&self, gun: &str, fetched: Arc<Fetched>) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(gun.to_owned()).or_default();
        slot.next = Some(fetched);
        !std::mem::replace(&mut slot.writing, true)
    }

    /// The writer of `gun`: stores what is queued until nothing is.
    pub async fn write_all(engine: Arc<Engine>, gun: &str) {
        let this = &engine.pending;
        loop {
            let next = {
                let mut slots = this.slots.lock().unwrap_or_else(|e| e.into_inner());
                match slots.get_mut(gun).and_then(|s| s.next.take()) {
                    Some(next) => next,
                    None => {
                        slots.remove(gun);
                        drop(slots);
                        this.idle.notify_waiters();
                        return;
                    }
                }
            };
            let (engine, name) = (Arc::clone(&engine), gun.to_owned());
            let saved =
                tokio::task::spawn_blocking(move || engine.store.save(&name, &next.repo)).await;
            match saved {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(%gun, error = %e, "the verified repository could not be stored; the next operation reads it again")
                }
                Err(e) => tracing::error!(%gun, error = %e, "the store worker failed"),
            }
        }
    }

    /// Waits until nothing is pending for `gun`.
    pub async fn settled(&self, gun: &str) {
        until(&self.idle, || {
            !self
                .slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(gun)
        })
        .await;
    }
}

/// Waits until `done` holds, checking it again whenever `notify` is
/// signalled (registered before each check, so no signal is missed).
pub async fn until(notify: &tokio::sync::Notify, done: impl Fn() -> bool) {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if done() {
            return;
        }
        notified.await;
    }
}

//! Group commit of concurrent signs into one repository.
//!
//! Signs into one repository are serialized by its lock (see [`super::txn`]):
//! one at a time, each paying a read, a publish and a read-back. Here a
//! sign first joins the repository's queue, then waits for the lock; whoever
//! gets the lock takes every sign waiting (up to [`MAX_GROUP_TAGS`] tags)
//! and runs them as one transaction: one read, every caller's intent
//! applied to the draft in arrival order, one signing pass, one publish,
//! one read-back. Signs that queue while that transaction's draft is
//! prepared on a confirmed read (see [`Read::Confirm`]) join it before its
//! publish; while they keep coming, the transaction waits
//! [`super::txn::JOIN_QUIET`] for more (up to [`super::txn::MAX_REJOINS`]
//! times), then the intent runs again with them all on the same read and
//! the draft is signed again (not when a key waits for a touch: one touch
//! per transaction). Nothing was
//! published yet, so this is the transaction they would have formed had
//! they queued before it began. Each caller is answered with its own
//! outcome:
//! - an intent that fails (a role the caller's policy does not allow, no
//!   key) fails that caller only and leaves the draft as the intents
//!   before it made it;
//! - a caller whose tags were already in place is told so (after the
//!   group's publish succeeded);
//! - a publish race retries the whole group from a fresh read (every
//!   intent runs again on it, as a single caller's intent does);
//! - a failure of the group's read, publish or read-back is every joined
//!   caller's failure.
//!
//! The read-back checks every tag of every caller (a tag two callers of one
//! group signed resolves to the later one's digest, as if they had run one
//! after the other). Policy and audit stay per caller: each caller's role
//! filter goes with its intent, and the service writes each caller's audit
//! records around its own call. Progress and touch events go to every
//! caller of the group.

use super::intent;
use super::intent::sign::Applied;
use super::txn::{Change, Engine, GroupHooks, Outcome, Read};
use super::{BeforeEffect, Event, EventSink, RoleFilter, TagSpec, TrustError};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tufd_remote::Gun;

/// Most tags one group transaction takes; callers beyond it wait for the
/// next one (a caller's own tags are never split).
pub const MAX_GROUP_TAGS: usize = 10_000;

/// A sign waiting for its repository's next transaction.
struct Pending {
    specs: Vec<TagSpec>,
    allowed: RoleFilter,
    events: EventSink,
    reply: oneshot::Sender<Result<Change, TrustError>>,
    /// Awaited before the publish that carries this sign (its caller's
    /// audit record made durable); taken once.
    before: Option<BeforeEffect>,
}

/// Signs waiting, by repository.
#[derive(Default)]
pub struct SignQueues {
    waiting: Mutex<HashMap<String, VecDeque<Pending>>>,
}

impl SignQueues {
    fn push(&self, gun: &str, p: Pending) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(gun.to_owned())
            .or_default()
            .push_back(p);
    }

    /// The next group: the oldest waiting signs, at least one, up to
    /// [`MAX_GROUP_TAGS`] tags in all.
    fn take(&self, gun: &str) -> Vec<Pending> {
        self.take_within(gun, MAX_GROUP_TAGS, true)
    }

    /// The oldest waiting signs whose tags fit in `room` (joining a
    /// transaction under way; none when the oldest does not fit).
    fn take_joining(&self, gun: &str, room: usize) -> Vec<Pending> {
        self.take_within(gun, room, false)
    }

    /// The oldest waiting signs up to `room` tags in all; `at_least_one`:
    /// the oldest even when it alone has more.
    fn take_within(&self, gun: &str, room: usize, at_least_one: bool) -> Vec<Pending> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = waiting.get_mut(gun) else {
            return Vec::new();
        };
        let mut group = Vec::new();
        let mut tags = 0;
        while let Some(next) = queue.front() {
            if (!group.is_empty() || !at_least_one) && tags + next.specs.len() > room {
                break;
            }
            tags += next.specs.len();
            group.extend(queue.pop_front());
        }
        if queue.is_empty() {
            waiting.remove(gun);
        }
        group
    }
}

/// What one caller's intent did in the group's last attempt.
enum Member {
    Joined(String),
    Unchanged(String),
    Failed(TrustError),
}

impl Engine {
    /// Signs `specs` (tags of `gun`) into the roles `allowed` lets this
    /// caller write, in the next transaction on `gun` together with every
    /// other sign waiting for it (see the module doc).
    pub async fn sign_grouped(
        self: &Arc<Self>,
        gun: &Gun,
        specs: Vec<TagSpec>,
        allowed: RoleFilter,
        events: &EventSink,
        before: Option<BeforeEffect>,
    ) -> Result<Change, TrustError> {
        let name = gun.as_str();
        let (reply, mut answer) = oneshot::channel();
        self.signs.push(
            name,
            Pending {
                specs,
                allowed,
                events: events.clone(),
                reply,
                before,
            },
        );
        tracing::debug!(gun = %name, "sign queued for the next transaction");
        // Every waiting caller competes for the lock; whoever gets it runs
        // the next group. A caller stops once its own sign was answered
        // (as soon as it is: not after the lock passed through every
        // caller queued for it, the transaction's store first), or when
        // the queue is empty (then a running group holds its sign).
        let lock = self.lock_for(name);
        loop {
            let guard = tokio::select! {
                biased;
                result = &mut answer => return result.unwrap_or_else(|_| Err(unanswered(name))),
                guard = Arc::clone(&lock).lock_owned() => guard,
            };
            let group = self.signs.take(name);
            if group.is_empty() {
                break;
            }
            self.run_group(gun, guard, group).await;
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Empty) => {}
                Err(oneshot::error::TryRecvError::Closed) => break,
            }
        }
        answer.await.unwrap_or_else(|_| Err(unanswered(name)))
    }

    /// Runs `group` as one transaction and answers each caller. Signs that
    /// queue while its confirmed draft is prepared join it before the
    /// publish (see the module doc).
    async fn run_group(
        self: &Arc<Self>,
        gun: &Gun,
        guard: tokio::sync::OwnedMutexGuard<()>,
        group: Vec<Pending>,
    ) {
        let name = gun.as_str().to_owned();
        tracing::debug!(gun = %name, callers = group.len(), "group transaction starts");
        let (sink, mut fan) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let sinks: Arc<Mutex<Vec<EventSink>>> =
            Arc::new(Mutex::new(group.iter().map(|p| p.events.clone()).collect()));
        let forward = tokio::spawn({
            let sinks = Arc::clone(&sinks);
            async move {
                while let Some(e) = fan.recv().await {
                    for s in sinks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        let _ = s.send(e.clone());
                    }
                }
            }
        });
        if group.len() > 1 {
            let _ = sink.send(Event::Progress {
                repository: name.clone(),
                message: format!(
                    "signing together with {} other waiting sign(s) into this repository (one publish)",
                    group.len() - 1
                ),
            });
        }
        let group = Mutex::new(group);
        let members: Mutex<Vec<Member>> = Mutex::new(Vec::new());
        let rejoin = || self.join_under_way(&name, &group, &sinks);
        // Every caller's audit record durable before the group's publish.
        let befores = || {
            group
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter_mut()
                .filter_map(|p| p.before.take())
                .collect::<Vec<_>>()
        };
        let result = self
            .transact_locked(
                gun,
                &sink,
                Read::Confirm,
                guard,
                Some(GroupHooks {
                    rejoin: &rejoin,
                    before_publish: &befores,
                }),
                |fetched, held| {
                    let (group, members, name) = (&group, &members, &name);
                    async move {
                        let draft = super::existing(name, fetched)?;
                        let group = group.lock().unwrap_or_else(|e| e.into_inner());
                        let (draft, outcomes, joined) = apply_all(name, draft, &held, &group);
                        *members.lock().unwrap_or_else(|e| e.into_inner()) = outcomes;
                        if joined == 0 {
                            return Ok(Outcome::Unchanged(format!("{name}: nothing to sign")));
                        }
                        let summary = format!("{name}: signed the tags of {joined} caller(s)");
                        Ok(Outcome::Publish(Box::new(draft), summary))
                    }
                },
            )
            .await;
        drop(sink);
        let _ = forward.await;
        let group = group.into_inner().unwrap_or_else(|e| e.into_inner());
        let members = members.into_inner().unwrap_or_else(|e| e.into_inner());
        tracing::debug!(gun = %name, callers = group.len(), "group transaction answered");
        answer(group, members, result, &name);
    }

    /// Moves the signs waiting for `name` (as many as fit) into `group`,
    /// the transaction under way, before its publish; `false` when none
    /// joined.
    fn join_under_way(
        &self,
        name: &str,
        group: &Mutex<Vec<Pending>>,
        sinks: &Mutex<Vec<EventSink>>,
    ) -> bool {
        let mut group = group.lock().unwrap_or_else(|e| e.into_inner());
        let tags: usize = group.iter().map(|p| p.specs.len()).sum();
        let joined = self
            .signs
            .take_joining(name, MAX_GROUP_TAGS.saturating_sub(tags));
        if joined.is_empty() {
            return false;
        }
        let callers = group.len() + joined.len();
        tracing::debug!(gun = %name, joined = joined.len(), callers, "signs joined the transaction before its publish");
        let mut sinks = sinks.lock().unwrap_or_else(|e| e.into_inner());
        for p in &joined {
            let _ = p.events.send(Event::Progress {
                repository: name.to_owned(),
                message: format!(
                    "joined a transaction under way: signing together with {} other sign(s) into this repository (one publish)",
                    callers - 1
                ),
            });
            sinks.push(p.events.clone());
        }
        group.extend(joined);
        true
    }
}

/// Applies every caller's sign of `group` to `draft` in turn: the draft,
/// each caller's outcome, and how many changed it. A failed or unchanged
/// sign leaves the draft as it was.
fn apply_all(
    name: &str,
    mut draft: super::draft::Draft,
    held: &super::draft::HeldKeys,
    group: &[Pending],
) -> (super::draft::Draft, Vec<Member>, usize) {
    let mut outcomes = Vec::with_capacity(group.len());
    // By tag, a later caller's sign replacing an earlier one's (one
    // look-up per tag: a sign of 100 000 tags searched a list of them for
    // each).
    let mut expect: BTreeMap<String, super::draft::Expected> = BTreeMap::new();
    let mut joined = 0;
    for p in group {
        let only = |role: &str| (p.allowed)(name, role);
        match intent::sign::apply_to(name, &mut draft, held, &p.specs, &only) {
            Ok(Applied::Changed(summary)) => {
                for e in &draft.expect {
                    expect.insert(e.name.clone(), e.clone());
                }
                joined += 1;
                outcomes.push(Member::Joined(summary));
            }
            Ok(Applied::Unchanged(why)) => outcomes.push(Member::Unchanged(why)),
            Err(e) => outcomes.push(Member::Failed(e)),
        }
    }
    draft.expect = expect.into_values().collect();
    (draft, outcomes, joined)
}

/// A sign whose transaction ended without answering it (a bug).
fn unanswered(name: &str) -> TrustError {
    TrustError::Internal(format!(
        "{name}: the transaction this sign joined ended without an answer"
    ))
}

/// Sends each caller of a group its outcome.
fn answer(
    group: Vec<Pending>,
    members: Vec<Member>,
    result: Result<Change, TrustError>,
    name: &str,
) {
    let mut members = members.into_iter();
    match result {
        Ok(change) => {
            for p in group {
                let own = match members.next() {
                    Some(Member::Joined(summary)) => Ok(Change {
                        summary,
                        ..change.clone()
                    }),
                    Some(Member::Unchanged(summary)) => Ok(Change {
                        repository: change.repository.clone(),
                        summary,
                        attempts: change.attempts,
                        ..Change::default()
                    }),
                    Some(Member::Failed(e)) => Err(e),
                    None => Err(TrustError::Internal(format!(
                        "{name}: a grouped sign had no outcome"
                    ))),
                };
                let _ = p.reply.send(own);
            }
        }
        Err(e) if group.len() == 1 => {
            if let Some(p) = group.into_iter().next() {
                let _ = p.reply.send(Err(e));
            }
        }
        Err(e) => {
            let shared = Arc::new(e);
            for p in group {
                let own = match members.next() {
                    Some(Member::Failed(own)) => own,
                    _ => TrustError::Shared(shared.clone()),
                };
                let _ = p.reply.send(Err(own));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(tags: usize) -> (Pending, oneshot::Receiver<Result<Change, TrustError>>) {
        let (reply, rx) = oneshot::channel();
        let (events, _) = tokio::sync::mpsc::unbounded_channel();
        let spec = TagSpec {
            repository: "r/app".into(),
            tag: "t".into(),
            digest: [1; 32],
            size: 1,
        };
        let p = Pending {
            specs: vec![spec; tags],
            allowed: super::super::any_role(),
            events,
            reply,
            before: None,
        };
        (p, rx)
    }

    #[test]
    fn groups_take_the_oldest_signs_up_to_the_bound_and_never_split_one() {
        let q = SignQueues::default();
        let mut answers = Vec::new();
        for n in [6000, 5000, 1, MAX_GROUP_TAGS + 5] {
            let (p, rx) = pending(n);
            q.push("r/app", p);
            answers.push(rx);
        }
        let sizes = |g: Vec<Pending>| g.iter().map(|p| p.specs.len()).collect::<Vec<_>>();
        assert_eq!(sizes(q.take("r/app")), [6000]);
        assert_eq!(sizes(q.take("r/app")), [5000, 1]);
        // One caller above the bound still runs, alone.
        assert_eq!(sizes(q.take("r/app")), [MAX_GROUP_TAGS + 5]);
        assert!(q.take("r/app").is_empty());
        assert!(q.take("other/repo").is_empty());
    }
}

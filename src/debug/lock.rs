//! The root's tree-wide TTY lock: exactly one owner at a time, granted in
//! strict request order.
//!
//! async-lock's `Mutex` is only *eventually* fair (a lock starved for
//! 0.5 ms forces fairness; until then a newcomer may barge past waiters),
//! so the lock is a ticket queue of its own: every request takes a ticket,
//! grants go to the oldest live ticket, and a request dropped while queued
//! leaves the queue without disturbing anyone.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_channel::{bounded, Receiver, Sender};

use super::dialog::Liveness;
use super::DebugError;
use crate::msg::{ActorUid, Cid, TaskUid};
use crate::task::lock;

/// Who holds the tree lock and who waits for it, oldest first.
pub type LockQueue = (Option<ActorUid>, Vec<ActorUid>);

/// The remote holder of the root's lock and how to tell it is alive,
/// kept by the lock dialog for as long as it holds: ctrl-c in the root
/// releases a lock whose holder is gone.
static REMOTE_HOLDER: Mutex<Option<(Owner, Liveness)>> = Mutex::new(None);

/// The lock dialog records its remote holder until the mark drops.
pub(crate) fn holding(owner: Owner, alive: Liveness) -> HolderMark {
    *lock(&REMOTE_HOLDER) = Some((owner.clone(), alive));
    HolderMark(owner)
}

/// The remote holder of the root's lock, if any.
pub(crate) fn remote_holder() -> Option<(Owner, Liveness)> {
    lock(&REMOTE_HOLDER).clone()
}

/// Clears the record of a remote holder when dropped.
pub(crate) struct HolderMark(Owner);

impl Drop for HolderMark {
    fn drop(&mut self) {
        let mut holder = lock(&REMOTE_HOLDER);
        if holder.as_ref().is_some_and(|(o, _)| *o == self.0) {
            *holder = None;
        }
    }
}

/// Who holds, or waits for, the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The actor.
    pub actor: ActorUid,
    /// The task in it.
    pub task: TaskUid,
    /// The lock dialog, for a subactor; `None` for the root's own tasks.
    pub cid: Option<Cid>,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} task {}#{}", self.actor, self.task.name, self.task.id)?;
        if let Some(cid) = self.cid {
            write!(f, " (dialog {cid})")?;
        }
        Ok(())
    }
}

struct Waiter {
    ticket: u64,
    owner: Owner,
    grant: Sender<()>,
}

#[derive(Default)]
struct State {
    holder: Option<(u64, Owner, Instant)>,
    queue: VecDeque<Waiter>,
    barred: Vec<ActorUid>,
    next_ticket: u64,
    last_granted: Option<u64>,
    grants: u64,
    out_of_order: u64,
    /// Ends (is closed and replaced) whenever no one holds or waits.
    idle: Option<Sender<()>>,
    idle_rx: Option<Receiver<()>>,
}

/// The tree-wide lock. The root process has one ([`Lock::root`]);
/// tests and benches may make their own.
#[derive(Clone, Default)]
pub struct Lock {
    state: Arc<Mutex<State>>,
}

/// Ownership of the [`Lock`]; released on drop.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    lock: Lock,
    ticket: u64,
    released: bool,
}

impl LockGuard {
    /// Releases the lock now (same as dropping the guard).
    pub fn release(mut self) {
        self.released = true;
        self.lock.release_ticket(self.ticket);
    }

    /// The ticket this guard holds.
    pub fn ticket(&self) -> u64 {
        self.ticket
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            self.lock.release_ticket(self.ticket);
        }
    }
}

/// A queued request that leaves the queue (or hands a grant it never saw
/// to the next in line) when dropped.
struct Queued {
    lock: Lock,
    ticket: u64,
    granted: Receiver<()>,
    done: bool,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let granted_unseen = self.granted.try_recv().is_ok();
        let holds = {
            let mut state = self.lock.state();
            state.queue.retain(|w| w.ticket != self.ticket);
            granted_unseen
                || state
                    .holder
                    .as_ref()
                    .is_some_and(|(t, _, _)| *t == self.ticket)
        };
        if holds {
            self.lock.release_ticket(self.ticket);
        } else {
            self.lock.note_if_idle();
        }
    }
}

impl Lock {
    /// A fresh, free lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The root process's lock.
    pub fn root() -> &'static Lock {
        static ROOT: std::sync::OnceLock<Lock> = std::sync::OnceLock::new();
        ROOT.get_or_init(Lock::new)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain data; a panic elsewhere cannot leave it half-written.
        lock(&self.state)
    }

    /// Waits for the lock, behind every earlier request.
    ///
    /// Refused at once with [`DebugError::DoubleLock`] when the same task
    /// of the same actor already holds or waits for it (a task cannot
    /// deadlock on itself), and with [`DebugError::Barred`] for an actor
    /// being torn down. Dropping the future leaves the queue cleanly.
    pub async fn acquire(&self, owner: Owner) -> Result<LockGuard, DebugError> {
        let mut queued = {
            let mut state = self.state();
            if state.barred.contains(&owner.actor) {
                return Err(DebugError::Barred(owner.actor));
            }
            let same = |o: &Owner| o.actor == owner.actor && o.task == owner.task;
            let holds = state.holder.as_ref().is_some_and(|(_, o, _)| same(o));
            if holds || state.queue.iter().any(|w| same(&w.owner)) {
                return Err(DebugError::DoubleLock(owner));
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            if state.holder.is_none() && state.queue.is_empty() {
                Self::grant(&mut state, ticket, owner);
                return Ok(LockGuard {
                    lock: self.clone(),
                    ticket,
                    released: false,
                });
            }
            log::debug!(
                "{owner} queued for the tree lock behind {} others",
                state.queue.len()
            );
            // Made only for a request that waits: a free lock is taken
            // without one (the channel cost the root ~2k of its ~46k
            // instructions per grant).
            let (grant, granted) = bounded(1);
            state.queue.push_back(Waiter {
                ticket,
                owner,
                grant,
            });
            Queued {
                lock: self.clone(),
                ticket,
                granted,
                done: false,
            }
        };
        // The sender lives in the queue until the grant: Err only if the
        // lock itself went away, which a held `Lock` clone prevents.
        let _ = queued.granted.recv().await;
        queued.done = true;
        Ok(LockGuard {
            lock: self.clone(),
            ticket: queued.ticket,
            released: false,
        })
    }

    fn grant(state: &mut State, ticket: u64, owner: Owner) {
        if state.last_granted.is_some_and(|last| ticket < last) {
            state.out_of_order += 1;
        }
        state.last_granted = Some(ticket);
        state.grants += 1;
        state.holder = Some((ticket, owner, Instant::now()));
    }

    /// Releases the holder `ticket`, handing the lock to the oldest live
    /// waiter. A ticket that does not hold the lock releases nothing.
    fn release_ticket(&self, ticket: u64) {
        let mut state = self.state();
        if state.holder.as_ref().is_none_or(|(t, _, _)| *t != ticket) {
            return;
        }
        state.holder = None;
        Self::hand_over(&mut state);
        drop(state);
        self.note_if_idle();
    }

    fn hand_over(state: &mut State) {
        while let Some(next) = state.queue.pop_front() {
            // A waiter whose future is gone has a closed channel: skip it.
            if next.grant.try_send(()).is_ok() {
                Self::grant(state, next.ticket, next.owner);
                return;
            }
        }
    }

    /// Releases whoever holds the lock (a dead or stale holder) and hands
    /// it on. Returns who held it.
    pub fn force_release(&self) -> Option<Owner> {
        let mut state = self.state();
        let (_, owner, _) = state.holder.take()?;
        Self::hand_over(&mut state);
        drop(state);
        self.note_if_idle();
        Some(owner)
    }

    /// Bars `actor` (being torn down) from locking; its queued requests
    /// are dropped from the queue and fail.
    pub fn bar(&self, actor: ActorUid) {
        let mut state = self.state();
        state.queue.retain(|w| w.owner.actor != actor);
        if !state.barred.contains(&actor) {
            state.barred.push(actor);
        }
    }

    /// The current holder.
    pub fn holder(&self) -> Option<Owner> {
        self.state().holder.as_ref().map(|(_, o, _)| o.clone())
    }

    /// Who waits, oldest first.
    pub fn waiters(&self) -> Vec<Owner> {
        self.state().queue.iter().map(|w| w.owner.clone()).collect()
    }

    /// The actors that hold and wait for the lock, in one look: the
    /// holder, then the waiters oldest first.
    pub fn queue(&self) -> LockQueue {
        let state = self.state();
        (
            state.holder.as_ref().map(|(_, o, _)| o.actor.clone()),
            state.queue.iter().map(|w| w.owner.actor.clone()).collect(),
        )
    }

    /// Whether anyone holds or waits for the lock.
    pub fn in_use(&self) -> bool {
        let state = self.state();
        state.holder.is_some() || !state.queue.is_empty()
    }

    /// Grants so far, and how many of them broke request order (always
    /// zero, unless the lock is broken).
    pub fn grant_stats(&self) -> (u64, u64) {
        let state = self.state();
        (state.grants, state.out_of_order)
    }

    /// Waits until no one holds or waits for the lock.
    pub async fn wait_idle(&self) {
        loop {
            let rx = {
                let mut state = self.state();
                if state.holder.is_none() && state.queue.is_empty() {
                    return;
                }
                if state.idle_rx.is_none() {
                    let (tx, rx) = bounded(1);
                    state.idle = Some(tx);
                    state.idle_rx = Some(rx);
                }
                state.idle_rx.clone().expect("set above")
            };
            let _ = rx.recv().await;
        }
    }

    fn note_if_idle(&self) {
        let mut state = self.state();
        if state.holder.is_none() && state.queue.is_empty() {
            // Closing the channel wakes every waiter.
            state.idle = None;
            state.idle_rx = None;
        }
    }
}

impl fmt::Display for Lock {
    /// The whole state, for the REPL's `lock` command and for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        match &state.holder {
            Some((ticket, owner, since)) => writeln!(
                f,
                "tree lock held by {owner} (ticket {ticket}) for {:.1?}",
                since.elapsed()
            )?,
            None => writeln!(f, "tree lock free")?,
        }
        for (i, w) in state.queue.iter().enumerate() {
            writeln!(f, "  waiting {}: {} (ticket {})", i + 1, w.owner, w.ticket)?;
        }
        if !state.barred.is_empty() {
            let barred: Vec<String> = state.barred.iter().map(ToString::to_string).collect();
            writeln!(f, "  barred: {}", barred.join(", "))?;
        }
        write!(
            f,
            "  grants: {}, out of order: {}",
            state.grants, state.out_of_order
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::future::{self, FutureExt};

    fn owner(actor: &str, task: u64) -> Owner {
        Owner {
            actor: ActorUid::new(actor, "u"),
            task: TaskUid::new("t", task),
            cid: None,
        }
    }

    #[test]
    fn grants_follow_request_order() {
        let lock = Lock::new();
        future::block_on(async {
            let first = lock.acquire(owner("a", 1)).await.unwrap();
            let order = Arc::new(Mutex::new(Vec::new()));
            let tasks: Vec<_> = (0..5)
                .map(|i| {
                    let (lock, order) = (lock.clone(), order.clone());
                    smol::spawn(async move {
                        let guard = lock.acquire(owner(&format!("w{i}"), 1)).await.unwrap();
                        order.lock().unwrap().push(i);
                        smol::future::yield_now().await;
                        drop(guard);
                    })
                })
                .collect();
            // Let every waiter queue, in spawn order.
            while lock.waiters().len() < 5 {
                smol::future::yield_now().await;
            }
            let names: Vec<String> = lock
                .waiters()
                .iter()
                .map(|o| o.actor.name.to_string())
                .collect();
            assert_eq!(names, ["w0", "w1", "w2", "w3", "w4"]);
            drop(first);
            for t in tasks {
                t.await;
            }
            assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
            assert_eq!(lock.grant_stats(), (6, 0));
            assert!(!lock.in_use());
        });
    }

    #[test]
    fn the_same_task_twice_is_a_double_lock_not_a_deadlock() {
        let lock = Lock::new();
        future::block_on(async {
            let _held = lock.acquire(owner("a", 1)).await.unwrap();
            let err = lock.acquire(owner("a", 1)).await.err().unwrap();
            assert!(matches!(err, DebugError::DoubleLock(_)), "{err}");
            // Another task of the same actor just queues.
            let other = lock.acquire(owner("a", 2));
            assert!(future::poll_once(Box::pin(other)).await.is_none());
        });
    }

    #[test]
    fn a_waiter_dropped_in_the_queue_is_skipped() {
        let lock = Lock::new();
        future::block_on(async {
            let held = lock.acquire(owner("a", 1)).await.unwrap();
            let mut gone = Box::pin(lock.acquire(owner("gone", 1)));
            assert!(future::poll_once(&mut gone).await.is_none());
            let next = smol::spawn({
                let lock = lock.clone();
                async move { lock.acquire(owner("next", 1)).await.unwrap().ticket() }
            });
            while lock.waiters().len() < 2 {
                smol::future::yield_now().await;
            }
            drop(gone);
            assert_eq!(lock.waiters().len(), 1);
            drop(held);
            assert_eq!(next.await, 2);
        });
    }

    #[test]
    fn a_grant_never_observed_is_passed_on() {
        let lock = Lock::new();
        future::block_on(async {
            let held = lock.acquire(owner("a", 1)).await.unwrap();
            let mut late = Box::pin(lock.acquire(owner("late", 1)));
            assert!(future::poll_once(&mut late).await.is_none());
            let mut next = Box::pin(lock.acquire(owner("next", 1)));
            assert!(future::poll_once(&mut next).await.is_none());
            drop(held); // grants `late`, which is never polled again
            assert_eq!(&*lock.holder().unwrap().actor.name, "late");
            drop(late);
            assert_eq!(&*lock.holder().unwrap().actor.name, "next");
            assert!(next.await.is_ok());
        });
    }

    #[test]
    fn force_release_barring_and_idle_wait() {
        let lock = Lock::new();
        future::block_on(async {
            let stale = lock.acquire(owner("dead", 1)).await.unwrap();
            let idle = smol::spawn({
                let lock = lock.clone();
                async move { lock.wait_idle().await }
            });
            let waiter = smol::spawn({
                let lock = lock.clone();
                async move { lock.acquire(owner("live", 1)).await.unwrap() }
            });
            while lock.waiters().is_empty() {
                smol::future::yield_now().await;
            }
            let text = lock.to_string();
            assert!(text.contains("held by ('dead', 'u')"), "{text}");
            assert!(text.contains("waiting 1: ('live', 'u')"), "{text}");
            assert_eq!(&*lock.force_release().unwrap().actor.name, "dead");
            // The stale guard's later drop releases nothing of the new holder's.
            drop(stale);
            let live = waiter.await;
            assert_eq!(&*lock.holder().unwrap().actor.name, "live");
            lock.bar(ActorUid::new("torn", "u"));
            let err = lock.acquire(owner("torn", 1)).await.err().unwrap();
            assert!(matches!(err, DebugError::Barred(_)), "{err}");
            assert!(future::poll_once(idle.boxed()).await.is_none());
            drop(live);
            lock.wait_idle().await;
        });
    }
}

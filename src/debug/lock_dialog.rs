//! The lock dialog, both sides.
//!
//! A subactor that needs the terminal opens a dialog with the ROOT (not
//! its parent: grandchildren ask the root directly) through its host
//! ([`Host::open_lock_dialog`](host::Host::open_lock_dialog)) with a
//! `LockRequest`. The root queues it on its [`Lock`], answers
//! `started(LockStatus { locked: true })` once it is the holder's turn,
//! waits for `LockRelease` on the dialog's stream, releases and returns
//! `LockStatus { locked: false }`. A host whose dialogs carry CBOR decodes
//! them under [`PldSpec::LOCK`](crate::codec::PldSpec::LOCK), in the
//! dialog's task only.
//!
//! Any failure on the root's side (peer gone, dialog cancelled, a payload
//! outside the spec, a bad release) force-releases the lock and logs one
//! line saying why and for whom: a dead holder never keeps the terminal.

use super::dialog::{BoxedDialog, LockDialog};
use super::host;
use super::lock::{Lock, LockGuard, LockQueue, Owner};
use super::DebugError;
use crate::msg::{ActorUid, LockMsg, LockRelease, LockRequest, LockStatus, TaskUid};
use crate::task::Instrument;

/// Name of the root's lock dialog handler (tractor's name), for hosts
/// that route dialogs by name.
pub const LOCK_HANDLER: &str = "lock_stdio_for_peer";
/// Name of the root's handler that tells who holds and waits.
pub const LOCK_STATE_HANDLER: &str = "debug_lock_state";

/// The root's side of a lock dialog a subactor opened with `req`: what
/// the root's host runs for each one, in its own task. Queues the
/// subactor on the tree lock, grants, waits for the release; returns the
/// dialog's final `LockStatus { locked: false }`. Every failure (the
/// peer gone, a bad message) force-releases the lock, and so does
/// dropping this future: a dead holder never keeps the terminal.
pub async fn serve_lock_dialog<D: LockDialog>(
    dialog: &mut D,
    req: LockRequest,
) -> Result<LockStatus, DebugError> {
    let host = host::require()?;
    if !host.is_root() {
        return Err(DebugError::Request(format!(
            "{} is not the root",
            host.uid()
        )));
    }
    lock_stdio_for_peer(Lock::root(), dialog, req).await
}

/// The root's answer to `asker`'s [`Host::lock_queue`](host::Host::lock_queue).
/// While subactors ask, the root holds its teardown back a little (see
/// [`maybe_wait_for_debugger`]), until [`forget_questions_of`] them.
pub fn answer_lock_queue(asker: &ActorUid) -> LockQueue {
    let mut asked = crate::task::lock(&ASKED);
    asked.retain(|(who, _)| who != asker);
    asked.push((asker.clone(), std::time::Instant::now()));
    drop(asked);
    Lock::root().queue()
}

/// The root's side of one lock dialog on `lock` (tractor's
/// `lock_stdio_for_peer`): queue, grant, wait for the release, release.
/// Returns the final `LockStatus { locked: false }`.
pub async fn lock_stdio_for_peer<D: LockDialog>(
    lock: &Lock,
    dialog: &mut D,
    req: LockRequest,
) -> Result<LockStatus, DebugError> {
    let (peer, cid) = (dialog.peer(), dialog.cid());
    if req.subactor_uid != peer {
        return Err(DebugError::Protocol(format!(
            "{peer} asked for the tree lock on behalf of {}",
            req.subactor_uid
        )));
    }
    let owner = Owner {
        actor: peer.clone(),
        task: req.task_uid,
        cid: Some(cid),
    };
    let guard = lock.acquire(owner.clone()).await?;
    let _holding = super::lock::holding(owner.clone(), dialog.liveness());
    // From here every way out but a clean release is a forced one, and
    // says so; the guard releases on drop, also when this future is
    // dropped (the dialog was cancelled).
    let mut held = Held {
        guard: Some(guard),
        owner,
        why: "the lock dialog was cancelled",
    };
    let status = |locked| LockStatus {
        subactor_uid: peer.clone(),
        cid,
        locked,
    };
    if let Err(e) = dialog.send_started(status(true)).await {
        held.why = "the grant could not be delivered";
        return Err(e);
    }
    match dialog.recv().await {
        Ok(Some(LockMsg::LockRelease(LockRelease {
            subactor_uid,
            cid: rel_cid,
        }))) => {
            if subactor_uid != peer || rel_cid != cid {
                held.why = "the release named another holder";
                return Err(DebugError::Protocol(format!(
                    "{peer} sent a release for {subactor_uid} dialog {rel_cid} on dialog {cid}"
                )));
            }
            held.clean_release();
            Ok(status(false))
        }
        Ok(Some(other)) => {
            held.why = "the peer sent something other than LockRelease";
            Err(DebugError::Protocol(format!(
                "expected LockRelease, got {}",
                other.tag()
            )))
        }
        Ok(None) => {
            held.why = "the peer ended the stream without releasing";
            Err(DebugError::Protocol(
                "stream ended before LockRelease".into(),
            ))
        }
        Err(e) => {
            held.why = match e {
                DebugError::Cancelled => "the lock dialog was cancelled",
                DebugError::Protocol(_) => "the peer broke the dialog's payload spec",
                _ => "the peer is gone",
            };
            Err(e)
        }
    }
}

/// The root's hold on the lock for one dialog: releases it on every way
/// out, logging why when it was not a clean release.
struct Held {
    guard: Option<LockGuard>,
    owner: Owner,
    why: &'static str,
}

impl Held {
    fn clean_release(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.release();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            log::warn!(
                "force-releasing the tree lock held by {}: {}",
                self.owner,
                self.why
            );
            // A holder that ended this way may have left the terminal in
            // its editor's raw mode: back to the root's before the next
            // holder prompts.
            super::terminal::restore_terminal();
            guard.release();
        }
    }
}

/// Ownership of the tree lock, from [`acquire_debug_lock`]. Release it
/// with [`TreeLock::release`]; dropping it releases too (a subactor's
/// dialog is cancelled, and the root force-releases).
#[must_use = "the tree lock is released when this is dropped"]
pub struct TreeLock {
    kind: Kind,
}

enum Kind {
    Root(LockGuard),
    Sub {
        dialog: CancelOnDrop,
        _local: LockGuard,
        uid: ActorUid,
    },
}

impl TreeLock {
    /// Releases the lock: in a subactor, sends `LockRelease` and waits
    /// for the root's `LockStatus { locked: false }`.
    pub async fn release(self) -> Result<(), DebugError> {
        match self.kind {
            Kind::Root(guard) => {
                guard.release();
                Ok(())
            }
            Kind::Sub {
                mut dialog,
                _local,
                uid,
            } => {
                let ctx = dialog.dialog.as_mut().expect("present until released");
                let cid = ctx.cid();
                let release = LockMsg::LockRelease(LockRelease {
                    subactor_uid: uid.clone(),
                    cid,
                });
                LockDialog::send(ctx, release).await?;
                match LockDialog::result(ctx).await? {
                    LockMsg::LockStatus(s) if !s.locked && s.subactor_uid == uid => {
                        dialog.dialog = None;
                        Ok(())
                    }
                    other => Err(DebugError::Protocol(format!(
                        "unexpected release answer {other:?}"
                    ))),
                }
            }
        }
    }
}

/// Abandons an unfinished lock dialog when dropped (see
/// [`LockDialog::abandon`]): a request abandoned at any await point never
/// leaves the root waiting on a live connection. It also holds this
/// actor's link to the root until the root has ended the dialog, so that
/// the next request of the same task cannot overtake the abandon and be
/// refused as a double request.
struct CancelOnDrop {
    dialog: Option<BoxedDialog>,
    link: Option<async_lock::MutexGuardArc<()>>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let link = self.link.take();
        if let Some(dialog) = self.dialog.take() {
            crate::task::spawn("abandon lock dialog", async move {
                dialog.abandon().await;
                drop(link);
            })
            .detach();
        }
    }
}

/// One lock dialog with the root at a time from this actor.
fn root_link() -> &'static std::sync::Arc<async_lock::Mutex<()>> {
    static LINK: std::sync::OnceLock<std::sync::Arc<async_lock::Mutex<()>>> =
        std::sync::OnceLock::new();
    LINK.get_or_init(Default::default)
}

/// A subactor's request for the tree lock: queues behind the other tasks
/// of this actor, then asks the root through the host. The same task
/// asking twice gets [`DebugError::DoubleLock`].
pub async fn request_root_stdio_lock(task: TaskUid) -> Result<TreeLock, DebugError> {
    let host = host::require()?;
    let me = host.uid();
    let owner = Owner {
        actor: me.clone(),
        task: task.clone(),
        cid: None,
    };
    let local = local_queue()
        .acquire(owner)
        .instrument("this actor's turn")
        .await?;
    let link = root_link().lock_arc().instrument("link to the root").await;
    let req = LockRequest {
        subactor_uid: me.clone(),
        task_uid: task,
    };
    let opened = host
        .open_lock_dialog(req)
        .instrument("open lock dialog")
        .await?;
    let mut dialog = CancelOnDrop {
        dialog: Some(opened),
        link: Some(link),
    };
    let ctx = dialog.dialog.as_mut().expect("just set");
    match ctx.wait_started().instrument("root's grant").await? {
        LockMsg::LockStatus(s) if s.locked && s.subactor_uid == me && s.cid == ctx.cid() => {
            Ok(TreeLock {
                kind: Kind::Sub {
                    dialog,
                    _local: local,
                    uid: me,
                },
            })
        }
        other => Err(DebugError::Protocol(format!(
            "root locked for another peer? got {other:?}"
        ))),
    }
}

/// This actor's own queue: its tasks ask the root one at a time.
fn local_queue() -> &'static Lock {
    static LOCAL: std::sync::OnceLock<Lock> = std::sync::OnceLock::new();
    LOCAL.get_or_init(Lock::new)
}

/// Holds the tree lock without a REPL (tests, benches, code that must
/// write to the terminal alone): in the root, from its own [`Lock`]; in a
/// subactor, through the root.
pub async fn acquire_debug_lock(task: TaskUid) -> Result<TreeLock, DebugError> {
    let host = host::require()?;
    if host.is_root() {
        let owner = Owner {
            actor: host.uid(),
            task,
            cid: None,
        };
        Ok(TreeLock {
            kind: Kind::Root(Lock::root().acquire(owner).await?),
        })
    } else {
        request_root_stdio_lock(task).await
    }
}

/// How long the lock must stay free after a debug session before the
/// root tears the tree down: an actor that just left a REPL often has a
/// parent about to open its own crash REPL (the error is on its way up).
pub const DEBUG_SETTLE: std::time::Duration = std::time::Duration::from_millis(250);

/// How often a subactor asks the root whether the debugger is still in
/// use, while it waits for it.
const DEBUG_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// When each subactor last asked the root who holds the lock
/// ([`answer_lock_queue`]).
static ASKED: std::sync::Mutex<Vec<(ActorUid, std::time::Instant)>> =
    std::sync::Mutex::new(Vec::new());

/// The root's host calls it when a child's entry has ended (its result
/// or failure arrived): that child opens no REPL any more, so its
/// questions about the lock no longer hold the root's teardown back. The
/// root itself is the one about to show the child's failure.
pub fn forget_questions_of(actor: &ActorUid) {
    crate::task::lock(&ASKED).retain(|(who, _)| who != actor);
}

/// How long questions about a free lock keep the root from tearing down,
/// in all, until the lock is next granted.
const ASKED_AT_MOST: std::time::Duration = std::time::Duration::from_secs(2);

/// Since when questions hold the teardown back, and the lock's grant
/// count then: a grant since starts a new budget.
static HELD_SINCE: std::sync::Mutex<Option<(u64, std::time::Instant)>> =
    std::sync::Mutex::new(None);

/// Whether a subactor asked about the lock lately: one that waits out
/// its children's REPLs asks every [`DEBUG_POLL`], then settles for
/// [`DEBUG_SETTLE`] and asks once more before its own crash REPL asks for
/// the lock. While it does, the root does not count the debugger as done:
/// with the lock alone, a root whose last REPL had just ended tore the
/// tree down before such a crash had reached the lock.
fn asked_lately() -> bool {
    let asked = crate::task::lock(&ASKED);
    asked
        .iter()
        .any(|(_, t)| t.elapsed() < DEBUG_SETTLE + DEBUG_POLL)
}

/// Whether questions hold the root's teardown back, the lock being free:
/// asked lately, and not yet for [`ASKED_AT_MOST`] since the lock was
/// last granted. Bounded across calls, so that an actor that asks
/// without end cannot keep the root from stopping (and killing) it.
fn held_by_questions() -> bool {
    if !asked_lately() {
        return false;
    }
    let (grants, _) = Lock::root().grant_stats();
    let mut held = crate::task::lock(&HELD_SINCE);
    match *held {
        Some((at, since)) if at == grants => since.elapsed() < ASKED_AT_MOST,
        _ => {
            *held = Some((grants, std::time::Instant::now()));
            true
        }
    }
}

/// Waits until the debugger is free, and stayed free for
/// [`DEBUG_SETTLE`], before tearing a tree down or signalling a child.
/// Returns whether it waited; returns `false` at once when no one was in
/// debug (children that never asked are never waited for).
///
/// The root waits until no actor at all holds or waits for its lock,
/// and none asked about it in the last [`DEBUG_SETTLE`] + 100 ms (an
/// actor waiting out its children's REPLs asks; its own crash REPL may
/// follow), for at most 2 s of questions about a free lock. A child
/// whose result has arrived asks no more ([`forget_questions_of`]). A
/// subactor (tractor leaves this to the root alone: its issue 320) asks
/// the root, and waits while one of its own children holds or waits:
/// that child may be tearing down in a REPL. It does not wait when the
/// root cannot be asked.
pub async fn maybe_wait_for_debugger() -> bool {
    let Some(host) = host::current() else {
        return false;
    };
    if host.is_root() {
        let lock = Lock::root();
        if !lock.in_use() && !held_by_questions() {
            return false;
        }
        loop {
            lock.wait_idle().await;
            smol::Timer::after(DEBUG_SETTLE).await;
            if !lock.in_use() && !held_by_questions() {
                return true;
            }
        }
    }
    let in_use = |queue: &LockQueue| {
        let children = host.children();
        let mine = |uid: &ActorUid| children.iter().any(|c| c.uid == *uid);
        queue.0.as_ref().is_some_and(mine) || queue.1.iter().any(mine)
    };
    let mut waited = false;
    loop {
        match lock_queue().await {
            Ok(queue) if in_use(&queue) => {
                waited = true;
                smol::Timer::after(DEBUG_POLL).await;
            }
            Ok(_) if waited => {
                // Free now: free for good, or between two sessions?
                smol::Timer::after(DEBUG_SETTLE).await;
                match lock_queue().await {
                    Ok(queue) if in_use(&queue) => continue,
                    _ => return true,
                }
            }
            Ok(_) => return false,
            Err(e) => {
                log::debug!(
                    "{}: cannot ask the root about the debugger: {e}",
                    host.uid()
                );
                return waited;
            }
        }
    }
}

/// Who holds the tree lock and who waits for it, oldest first, as the
/// root sees it: for the REPL's queue banner.
pub async fn lock_queue() -> Result<LockQueue, DebugError> {
    let host = host::require()?;
    if host.is_root() {
        return Ok(Lock::root().queue());
    }
    host.lock_queue().await
}

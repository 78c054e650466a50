//! The lock dialog, both sides.
//!
//! A subactor that needs the terminal opens a dialog with the ROOT (not
//! its parent: grandchildren ask the root directly) running
//! [`LOCK_HANDLER`] with a `LockRequest`. The root queues it on its
//! [`Lock`], answers `started(LockStatus { locked: true })` once it is the
//! holder's turn, waits for `LockRelease` on the dialog's stream, releases
//! and returns `LockStatus { locked: false }`. Every payload of the dialog
//! is decoded under [`PldSpec::LOCK`], in the dialog's task only.
//!
//! Any failure on the root's side (peer gone, dialog cancelled, a payload
//! outside the spec, a bad release) force-releases the lock and logs one
//! line saying why and for whom: a dead holder never keeps the terminal.

use std::future::Future;

use super::lock::{Lock, LockGuard, Owner};
use super::sigint::Liveness;
use super::DebugError;
use crate::actor::{Actor, Runtime};
use crate::codec::{encode_lock_msg, encode_pld, PldSpec};
use crate::ipc::{Context, DialogError};
use crate::msg::{ActorUid, Cid, LockMsg, LockRelease, LockRequest, LockStatus, TaskUid};

/// Name of the root's lock dialog handler (tractor's name).
pub const LOCK_HANDLER: &str = "lock_stdio_for_peer";
/// Name of the root's handler that tells who holds and waits.
pub const LOCK_STATE_HANDLER: &str = "debug_lock_state";

/// The seam the lock dialog is written against: one dialog between a
/// subactor and the root, seen from either end. `ipc::Context`
/// implements it; a host actor system with its own IPC implements it
/// over its own streams and reuses everything else here.
pub trait LockDialog: Send {
    /// The actor at the other end.
    fn peer(&self) -> ActorUid;
    /// The dialog's id.
    fn cid(&self) -> Cid;
    /// Root: the dialog's `started` value.
    fn send_started(
        &mut self,
        status: LockStatus,
    ) -> impl Future<Output = Result<(), DebugError>> + Send;
    /// Subactor: waits for the `started` value.
    fn wait_started(&mut self) -> impl Future<Output = Result<LockMsg, DebugError>> + Send;
    /// Either side: one stream item.
    fn send(&mut self, msg: LockMsg) -> impl Future<Output = Result<(), DebugError>> + Send;
    /// Either side: the next stream item; `None` when the stream ended.
    fn recv(&mut self) -> impl Future<Output = Result<Option<LockMsg>, DebugError>> + Send;
    /// Subactor: waits for the dialog's final result.
    fn result(&mut self) -> impl Future<Output = Result<LockMsg, DebugError>> + Send;
    /// Root: tells, at any later time, whether the peer is still
    /// connected; ctrl-c finds stale holders with it. The default says
    /// always.
    fn liveness(&self) -> Liveness {
        std::sync::Arc::new(|| true)
    }
}

fn link_error(e: DialogError) -> DebugError {
    match e {
        DialogError::Codec(e) => DebugError::Protocol(e.to_string()),
        DialogError::Cancelled => DebugError::Cancelled,
        other => DebugError::Request(other.to_string()),
    }
}

impl LockDialog for Context {
    fn peer(&self) -> ActorUid {
        Context::peer(self).clone()
    }
    fn cid(&self) -> Cid {
        Context::cid(self)
    }
    async fn send_started(&mut self, status: LockStatus) -> Result<(), DebugError> {
        let pld = encode_lock_msg(&LockMsg::LockStatus(status));
        self.send_started_pld(pld).await.map_err(link_error)
    }
    async fn wait_started(&mut self) -> Result<LockMsg, DebugError> {
        self.started().await.map_err(link_error)
    }
    async fn send(&mut self, msg: LockMsg) -> Result<(), DebugError> {
        self.send_pld(encode_lock_msg(&msg))
            .await
            .map_err(link_error)
    }
    async fn recv(&mut self) -> Result<Option<LockMsg>, DebugError> {
        Context::recv(self).await.map_err(link_error)
    }
    async fn result(&mut self) -> Result<LockMsg, DebugError> {
        Context::result(self).await.map_err(link_error)
    }
    fn liveness(&self) -> Liveness {
        let chan = self.channel().clone();
        std::sync::Arc::new(move || chan.is_connected())
    }
}

/// Registers the root's lock handlers on a runtime. Every program whose
/// actors use the debugger calls it (the handlers only run in the root).
pub fn install(runtime: Runtime) -> Runtime {
    crate::actor::error::register_namer(super::pause::error_name);
    // Before anything can prompt: an early ctrl-c must find the watcher.
    let is_root = std::env::var_os(crate::actor::env::ENTRY).is_none();
    super::sigint::watch(is_root);
    runtime
        .on_exit(std::sync::Arc::new(|_: &Actor| {
            super::sigint::restore_terminal()
        }))
        .on_crash(super::pause::crash_hook())
        .before_teardown(std::sync::Arc::new(|actor: Actor| {
            Box::pin(async move {
                let waited = maybe_wait_for_debugger(&actor).await;
                if waited {
                    log::info!("{}: waited for the debugger before teardown", actor.uid());
                }
                waited
            })
        }))
        .handler_encoded_by(
            LOCK_HANDLER,
            &PldSpec::LOCK,
            |actor: Actor, mut ctx: Context, req: LockMsg| async move {
                if !actor.is_root() {
                    return Err(DebugError::Request(format!(
                        "{} is not the root",
                        actor.uid()
                    )));
                }
                let LockMsg::LockRequest(req) = req else {
                    return Err(DebugError::Protocol(format!(
                        "expected LockRequest, got {}",
                        req.tag()
                    )));
                };
                lock_stdio_for_peer(Lock::root(), &mut ctx, req)
                    .await
                    .map(LockMsg::LockStatus)
            },
            |msg: &LockMsg| Ok(encode_lock_msg(msg)),
        )
        .handler(
            LOCK_STATE_HANDLER,
            &PldSpec::ANY,
            |_: Actor, _: Context, (): ()| async move {
                *crate::task::lock(&ASKED) = Some(std::time::Instant::now());
                let lock = Lock::root();
                let holder = lock.holder().map(|o| o.actor);
                let waiters: Vec<ActorUid> = lock.waiters().into_iter().map(|o| o.actor).collect();
                Ok::<_, DebugError>((holder, waiters))
            },
        )
}

/// The root's side of one lock dialog (tractor's `lock_stdio_for_peer`):
/// queue, grant, wait for the release, release. Returns the final
/// `LockStatus { locked: false }`.
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
    let _holding = super::sigint::holding(owner.clone(), dialog.liveness());
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
            super::sigint::restore_terminal();
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
                let ctx = dialog.ctx.as_mut().expect("present until released");
                let cid = ctx.cid();
                let release = LockMsg::LockRelease(LockRelease {
                    subactor_uid: uid.clone(),
                    cid,
                });
                LockDialog::send(ctx, release).await?;
                match LockDialog::result(ctx).await? {
                    LockMsg::LockStatus(s) if !s.locked && s.subactor_uid == uid => {
                        dialog.ctx = None;
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

/// How long an abandoned request's clean-up waits for the root's answer
/// to its cancel before giving up on a root that says nothing.
const CANCEL_ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Cancels an unfinished lock dialog when dropped: a request abandoned at
/// any await point never leaves the root waiting on a live connection.
/// It also holds this actor's link to the root until the root has ended
/// the dialog, so that the next request of the same task cannot overtake
/// the cancel and be refused as a double request.
struct CancelOnDrop {
    ctx: Option<Context>,
    link: Option<async_lock::MutexGuardArc<()>>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let link = self.link.take();
        if let Some(mut ctx) = self.ctx.take() {
            crate::task::spawn("cancel lock dialog", async move {
                let _ = ctx.cancel().await;
                let ended = async {
                    let _ = ctx.result_raw().await;
                };
                let timeout = async {
                    smol::Timer::after(CANCEL_ACK_TIMEOUT).await;
                    log::warn!(
                        "the root did not answer a lock-dialog cancel in {CANCEL_ACK_TIMEOUT:?}"
                    );
                };
                smol::future::or(ended, timeout).await;
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
/// of this actor, then asks the root. The same task asking twice gets
/// [`DebugError::DoubleLock`].
pub async fn request_root_stdio_lock(actor: &Actor, task: TaskUid) -> Result<TreeLock, DebugError> {
    let me = actor.uid().clone();
    let owner = Owner {
        actor: me.clone(),
        task: task.clone(),
        cid: None,
    };
    let local = local_queue().acquire(owner).await?;
    let link = root_link().lock_arc().await;
    let root = actor
        .root_channel()
        .await
        .map_err(|e| DebugError::Request(e.to_string()))?;
    let req = LockMsg::LockRequest(LockRequest {
        subactor_uid: me.clone(),
        task_uid: task,
    });
    let args = encode_lock_msg(&req);
    let ctx = root
        .open(LOCK_HANDLER, args, &PldSpec::LOCK)
        .await
        .map_err(link_error)?;
    let mut dialog = CancelOnDrop {
        ctx: Some(ctx),
        link: Some(link),
    };
    let ctx = dialog.ctx.as_mut().expect("just set");
    match ctx.wait_started().await? {
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
pub async fn acquire_debug_lock(actor: &Actor, task: TaskUid) -> Result<TreeLock, DebugError> {
    if actor.is_root() {
        let owner = Owner {
            actor: actor.uid().clone(),
            task,
            cid: None,
        };
        Ok(TreeLock {
            kind: Kind::Root(Lock::root().acquire(owner).await?),
        })
    } else {
        request_root_stdio_lock(actor, task).await
    }
}

/// How long the lock must stay free after a debug session before the
/// root tears the tree down: an actor that just left a REPL often has a
/// parent about to open its own crash REPL (the error is on its way up).
pub const DEBUG_SETTLE: std::time::Duration = std::time::Duration::from_millis(250);

/// How often a subactor asks the root whether the debugger is still in
/// use, while it waits for it.
const DEBUG_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// When a subactor last asked the root who holds the lock (the root's
/// side of [`lock_queue`]).
static ASKED: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

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
    crate::task::lock(&ASKED).is_some_and(|t| t.elapsed() < DEBUG_SETTLE + DEBUG_POLL)
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
/// follow), for at most 2 s of questions about a free lock. A
/// subactor (tractor leaves this to the root alone: its issue 320) asks
/// the root, and waits while one of its own children holds or waits:
/// that child may be tearing down in a REPL. It does not wait when the
/// root cannot be asked.
pub async fn maybe_wait_for_debugger(actor: &Actor) -> bool {
    if actor.is_root() {
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
    let in_use = |queue: &(Option<ActorUid>, Vec<ActorUid>)| {
        let children = actor.children();
        let mine = |uid: &ActorUid| children.iter().any(|c| c.uid == *uid);
        queue.0.as_ref().is_some_and(mine) || queue.1.iter().any(mine)
    };
    let mut waited = false;
    loop {
        match lock_queue(actor).await {
            Ok(queue) if in_use(&queue) => {
                waited = true;
                smol::Timer::after(DEBUG_POLL).await;
            }
            Ok(_) if waited => {
                // Free now: free for good, or between two sessions?
                smol::Timer::after(DEBUG_SETTLE).await;
                match lock_queue(actor).await {
                    Ok(queue) if in_use(&queue) => continue,
                    _ => return true,
                }
            }
            Ok(_) => return false,
            Err(e) => {
                log::debug!(
                    "{}: cannot ask the root about the debugger: {e}",
                    actor.uid()
                );
                return waited;
            }
        }
    }
}

/// Who holds the tree lock and who waits for it, oldest first, as the
/// root sees it: for the REPL's queue banner.
pub async fn lock_queue(actor: &Actor) -> Result<(Option<ActorUid>, Vec<ActorUid>), DebugError> {
    if actor.is_root() {
        let lock = Lock::root();
        return Ok((
            lock.holder().map(|o| o.actor),
            lock.waiters().into_iter().map(|o| o.actor).collect(),
        ));
    }
    let root = actor
        .root_channel()
        .await
        .map_err(|e| DebugError::Request(e.to_string()))?;
    let args = encode_pld(&()).map_err(|e| DebugError::Protocol(e.to_string()))?;
    let mut ctx = root
        .open(LOCK_STATE_HANDLER, args, &PldSpec::ANY)
        .await
        .map_err(link_error)?;
    ctx.result().await.map_err(link_error)
}

//! The host seam with an in-process host: a subactor whose lock dialogs
//! with its root are two channels and a task, no processes and none of
//! this crate's runtime. Its fault paths: a dialog dropped mid-grant frees
//! the lock, a host that knows no root refuses `pause!` with a typed error.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use async_channel::{unbounded, Receiver, Sender};
use smol::future::FutureExt;
use smol_devx::debug::dialog::{BoxFuture, BoxedDialog, LockDialog};
use smol_devx::debug::host::Host;
use smol_devx::debug::lock::{Lock, Owner};
use smol_devx::debug::lock_dialog::{acquire_debug_lock, lock_stdio_for_peer};
use smol_devx::debug::pause::PauseError;
use smol_devx::debug::DebugError;
use smol_devx::msg::{ActorUid, Cid, LockMsg, LockRequest, LockStatus, TaskUid};

/// One end of a dialog: what it sends, what it receives.
struct End {
    peer: ActorUid,
    cid: Cid,
    tx: Sender<LockMsg>,
    rx: Receiver<LockMsg>,
}

impl End {
    async fn answer(&mut self) -> Result<LockMsg, DebugError> {
        let gone = |_| DebugError::Request("the other end is gone".into());
        self.rx.recv().await.map_err(gone)
    }
}

impl LockDialog for End {
    fn peer(&self) -> ActorUid {
        self.peer.clone()
    }
    fn cid(&self) -> Cid {
        self.cid
    }
    async fn send_started(&mut self, status: LockStatus) -> Result<(), DebugError> {
        self.send(LockMsg::LockStatus(status)).await
    }
    async fn wait_started(&mut self) -> Result<LockMsg, DebugError> {
        self.answer().await
    }
    async fn send(&mut self, msg: LockMsg) -> Result<(), DebugError> {
        let gone = |_| DebugError::Request("the other end is gone".into());
        self.tx.send(msg).await.map_err(gone)
    }
    async fn recv(&mut self) -> Result<Option<LockMsg>, DebugError> {
        Ok(self.rx.recv().await.ok())
    }
    async fn result(&mut self) -> Result<LockMsg, DebugError> {
        self.answer().await
    }
}

/// The in-process root's lock.
fn root_lock() -> &'static Lock {
    static LOCK: OnceLock<Lock> = OnceLock::new();
    LOCK.get_or_init(Lock::new)
}

fn me() -> ActorUid {
    ActorUid::new("sub", "1")
}

fn root() -> ActorUid {
    ActorUid::new("root", "0")
}

/// Whether the host can reach its root.
static REACHABLE: AtomicBool = AtomicBool::new(true);

/// A subactor whose root runs in this process.
struct InProcess;

impl Host for InProcess {
    fn uid(&self) -> ActorUid {
        me()
    }
    fn is_root(&self) -> bool {
        false
    }
    fn open_lock_dialog(
        &self,
        req: LockRequest,
    ) -> BoxFuture<'static, Result<BoxedDialog, DebugError>> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Box::pin(async move {
            if !REACHABLE.load(Ordering::SeqCst) {
                return Err(DebugError::NoRoot);
            }
            let cid = NEXT.fetch_add(1, Ordering::SeqCst);
            let ((to_root, from_sub), (to_sub, from_root)) = (unbounded(), unbounded());
            let mut at_root = End {
                peer: me(),
                cid,
                tx: to_sub,
                rx: from_sub,
            };
            smol::spawn(async move {
                if let Ok(end) = lock_stdio_for_peer(root_lock(), &mut at_root, req).await {
                    let _ = at_root.send(LockMsg::LockStatus(end)).await;
                }
            })
            .detach();
            Ok(BoxedDialog::new(End {
                peer: root(),
                cid,
                tx: to_root,
                rx: from_root,
            }))
        })
    }
}

/// Installs the host once; tests take turns (they share the root's lock
/// and [`REACHABLE`]).
fn turn() -> std::sync::MutexGuard<'static, ()> {
    static INSTALL: Once = Once::new();
    static TURN: Mutex<()> = Mutex::new(());
    INSTALL.call_once(|| smol_devx::debug::install(InProcess).expect("the only host"));
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// `fut`, or a panic after 10 s.
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    async { Some(fut.await) }
        .or(async {
            smol::Timer::after(Duration::from_secs(10)).await;
            None
        })
        .await
        .unwrap_or_else(|| panic!("{what}: timed out"))
}

/// Waits until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    within(what, async {
        while !cond() {
            smol::Timer::after(Duration::from_millis(1)).await;
        }
    })
    .await
}

#[test]
fn a_dialog_through_the_seam_grants_and_releases() {
    let _turn = turn();
    smol::block_on(async {
        let lock = within("acquire", acquire_debug_lock(TaskUid::new("t", 1))).await;
        let lock = lock.expect("granted through the host's dialog");
        assert_eq!(root_lock().holder().map(|o| o.actor), Some(me()));
        // The same task again: refused, not deadlocked.
        let again = within("double", acquire_debug_lock(TaskUid::new("t", 1))).await;
        assert!(
            matches!(again, Err(DebugError::DoubleLock(_))),
            "{:?}",
            again.err()
        );
        within("release", lock.release()).await.expect("released");
        assert!(root_lock().holder().is_none());
    });
}

#[test]
fn a_dialog_dropped_mid_grant_frees_the_lock() {
    let _turn = turn();
    smol::block_on(async {
        let lock = root_lock();
        let owner = |name: &str| Owner {
            actor: ActorUid::new(name, "r"),
            task: TaskUid::new("main", 1),
            cid: None,
        };
        let held = lock.acquire(owner("root")).await.unwrap();
        // The subactor's request queues behind the root's own hold.
        let mut request = Box::pin(acquire_debug_lock(TaskUid::new("t", 2)));
        within("queued", async {
            while lock.waiters().is_empty() {
                assert!(smol::future::poll_once(&mut request).await.is_none());
                smol::Timer::after(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert_eq!(lock.waiters()[0].actor, me());
        // The root grants it; the request is dropped before it sees the
        // grant (its task was cancelled): its end of the dialog goes.
        held.release();
        until("granted", || lock.holder().is_some_and(|o| o.actor == me())).await;
        drop(request);
        until("force-released", || lock.holder().is_none()).await;
        let next = within("the next holder", lock.acquire(owner("next"))).await;
        next.expect("the lock is free for the next").release();
    });
}

#[test]
fn a_host_that_knows_no_root_refuses_pause_with_a_typed_error() {
    let _turn = turn();
    REACHABLE.store(false, Ordering::SeqCst);
    let paused = smol::block_on(within("pause", smol_devx::pause!()));
    let locked = smol::block_on(within("lock", acquire_debug_lock(TaskUid::new("t", 3))));
    REACHABLE.store(true, Ordering::SeqCst);
    assert!(
        matches!(paused, Err(PauseError::Refused(DebugError::NoRoot))),
        "{paused:?}"
    );
    assert!(
        matches!(locked, Err(DebugError::NoRoot)),
        "{:?}",
        locked.err()
    );
    assert!(root_lock().holder().is_none() && root_lock().waiters().is_empty());
}

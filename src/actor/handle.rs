//! The running actor: its identity, its place in the tree, its live
//! children, its cancel state and the hooks the program registered.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use smol::channel::{Receiver, Sender};

use crate::codec::{Codec, PldSpec};
use crate::ipc::{Addr, Channel, Context, IncomingDialogs, Transport};
use crate::msg::{ActorUid, Msg, Pld, RemoteError};
use crate::task::lock;

use super::portal::Portal;
use super::process;

/// A child process of this actor, connected and not yet reaped.
#[derive(Clone, Debug)]
pub struct LiveChild {
    /// The child's identity.
    pub uid: ActorUid,
    /// Its process id.
    pub pid: u32,
    /// The way to its handlers.
    pub portal: Portal,
    /// Its entry's dialog, once opened: cancelling it cancels the child.
    pub(super) main: Option<crate::msg::Cid>,
}

impl LiveChild {
    /// Sends `signal` to the child's process.
    pub fn signal(&self, signal: rustix::process::Signal) -> std::io::Result<()> {
        process::kill(self.pid, signal)
    }
}

/// What an actor does as soon as it exists, before it serves anything
/// (install the debugger's host, say); registered with
/// [`Runtime::on_boot`](super::Runtime::on_boot).
pub type BootHook = Arc<dyn Fn(&Actor) + Send + Sync>;

/// What a root does on its way out (restore the terminal, say);
/// registered with [`Runtime::on_exit`](super::Runtime::on_exit).
pub type ExitHook = Arc<dyn Fn(&Actor) + Send + Sync>;

/// The exit code of a tree cancelled by ctrl-c (128 + SIGINT).
pub const CANCELLED_EXIT: u8 = 130;

/// A spawned child's connection, handed from the accept loop to the
/// nursery waiting for it.
pub(super) type Connected = (Channel, IncomingDialogs);

pub(super) type HandlerFuture = Pin<Box<dyn Future<Output = Result<Pld, RemoteError>> + Send>>;
pub(super) type HandlerFn = Box<dyn Fn(Actor, Context, Pld) -> HandlerFuture + Send + Sync>;

pub(super) struct Handler {
    pub(super) spec: &'static PldSpec,
    pub(super) run: HandlerFn,
}

/// What an actor does with a failure of its entry (or, in the root, of
/// its body) before the failure goes up the tree: the debugger opens its
/// crash REPL here. Registered with [`Runtime::on_crash`](super::Runtime::on_crash).
pub type CrashHook =
    Arc<dyn Fn(Actor, RemoteError) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What an actor awaits before a failure makes its nursery cancel the
/// failed child's siblings: the debugger waits there until no one in the
/// tree is in (or waiting for) a REPL. Registered with
/// [`Runtime::before_teardown`](super::Runtime::before_teardown).
pub type TeardownHook =
    Arc<dyn Fn(Actor) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// A handle on the running actor: its identity, its place in the tree
/// and its mode. Clones share it.
#[derive(Clone)]
pub struct Actor {
    pub(super) inner: Arc<ActorInner>,
}

pub(super) struct ActorInner {
    pub(super) uid: ActorUid,
    pub(super) is_root: bool,
    pub(super) debug_mode: bool,
    pub(super) token: String,
    pub(super) addr: Addr,
    pub(super) root_addr: Addr,
    pub(super) transport: Transport,
    pub(super) codec: Codec,
    pub(super) handlers: HashMap<String, Handler>,
    pub(super) parent: std::sync::OnceLock<Channel>,
    pub(super) parent_addr: Option<Addr>,
    pub(super) root_chan: smol::lock::Mutex<Option<Channel>>,
    pub(super) children: Mutex<Vec<LiveChild>>,
    /// Set once by [`Actor::cancel_tree`]: why the tree is cancelled.
    pub(super) cancel: (Sender<String>, Receiver<String>),
    pub(super) cancel_requested: std::sync::atomic::AtomicBool,
    /// Set by [`Actor::terminate_tree`]: no waiting for the debugger.
    pub(super) forced: std::sync::atomic::AtomicBool,
    /// The root's exit code when the tree was cancelled.
    pub(super) cancelled_exit: std::sync::atomic::AtomicU8,
    pub(super) pending_spawns: Mutex<HashMap<String, Sender<Connected>>>,
    pub(super) socket_dir: Option<PathBuf>,
    pub(super) crash_hook: Option<CrashHook>,
    pub(super) teardown_hook: Option<TeardownHook>,
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actor{}", self.inner.uid)
    }
}

/// The actor this process runs, set once at boot.
pub(super) static CURRENT: std::sync::OnceLock<Actor> = std::sync::OnceLock::new();

impl Actor {
    /// The actor this process runs (`None` before [`Runtime::run`](super::Runtime::run)(super::Runtime::run)
    /// started it).
    pub fn current() -> Option<Actor> {
        CURRENT.get().cloned()
    }

    /// This actor's identity.
    pub fn uid(&self) -> &ActorUid {
        &self.inner.uid
    }

    /// Whether this is the root of the tree.
    pub fn is_root(&self) -> bool {
        self.inner.is_root
    }

    /// Whether debug mode is on for this actor (inherited from its
    /// parent unless overridden at spawn).
    pub fn debug_mode(&self) -> bool {
        self.inner.debug_mode
    }

    /// Where this actor listens.
    pub fn addr(&self) -> &Addr {
        &self.inner.addr
    }

    /// Where the root listens.
    pub fn root_addr(&self) -> &Addr {
        &self.inner.root_addr
    }

    /// The connection to the parent (subactors only).
    pub fn parent(&self) -> Option<&Channel> {
        self.inner.parent.get()
    }

    /// This actor's children that are alive, from every nursery, in spawn
    /// order.
    pub fn children(&self) -> Vec<LiveChild> {
        self.live_children().clone()
    }

    pub(super) fn live_children(&self) -> std::sync::MutexGuard<'_, Vec<LiveChild>> {
        // Plain pushes and retains: a panic cannot leave it inconsistent.
        lock(&self.inner.children)
    }

    pub(super) fn remember_child(&self, child: LiveChild) {
        self.live_children().push(child);
    }

    pub(super) fn set_child_main(&self, pid: u32, cid: crate::msg::Cid) {
        if let Some(child) = self.live_children().iter_mut().find(|c| c.pid == pid) {
            child.main = Some(cid);
        }
    }

    /// Cancels the whole tree (root only; a subactor's request is
    /// ignored with a warning): every live child's entry is cancelled,
    /// the children get [`Nursery::DEFAULT_GRACE`](super::Nursery::DEFAULT_GRACE) to end, then the root's
    /// body is dropped (its nurseries kill what is left), and the root
    /// exits with [`CANCELLED_EXIT`]. The debugger's ctrl-c handling calls
    /// it; so can a host's own shutdown path. Later calls do nothing.
    pub fn cancel_tree(&self, why: &str) {
        if !self.is_root() {
            log::warn!("{}: only the root cancels the tree ({why})", self.uid());
            return;
        }
        use std::sync::atomic::Ordering;
        if !self.inner.cancel_requested.swap(true, Ordering::SeqCst) {
            let _ = self.inner.cancel.0.try_send(why.to_owned());
        }
    }

    /// Ends the tree now (root only): like [`Actor::cancel_tree`], but
    /// without waiting for anyone in a REPL, and the root exits with
    /// `exit_code`. SIGTERM and SIGHUP to the root come here.
    pub fn terminate_tree(&self, why: &str, exit_code: u8) {
        use std::sync::atomic::Ordering;
        if self.is_root() {
            self.inner.forced.store(true, Ordering::SeqCst);
            self.inner.cancelled_exit.store(exit_code, Ordering::SeqCst);
        }
        self.cancel_tree(why);
    }

    /// Whether [`Actor::terminate_tree`] was called: teardown waits for
    /// no one.
    pub(crate) fn forced(&self) -> bool {
        self.inner.forced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether [`Actor::cancel_tree`] was called.
    pub fn cancel_requested(&self) -> bool {
        self.inner
            .cancel_requested
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Cancels every live child's entry, then waits up to `grace` for them
    /// all to be reaped; longer while someone is in a REPL (a child's
    /// teardown may pause), since what is left is then killed.
    pub(super) async fn cancel_children(&self, grace: std::time::Duration) {
        use std::time::{Duration, Instant};
        for child in self.children() {
            if let Some(cid) = child.main {
                log::info!("{}: cancelling {}", self.uid(), child.uid);
                let _ = child.portal.chan.send(&Msg::Cancel { cid }).await;
            }
        }
        let mut deadline = Instant::now() + grace;
        while !self.live_children().is_empty() {
            if Instant::now() >= deadline {
                if !self.before_teardown(true).await {
                    return;
                }
                deadline = Instant::now() + grace;
            }
            smol::Timer::after(Duration::from_millis(10)).await;
        }
    }

    pub(super) fn forget_child(&self, pid: u32) {
        self.live_children().retain(|c| c.pid != pid);
    }

    /// Runs the crash hook for a failure, in debug mode.
    pub(super) async fn crashed(&self, what: String, boxed: impl FnOnce() -> RemoteError) {
        let Some(hook) = self.inner.crash_hook.clone().filter(|_| self.debug_mode()) else {
            return;
        };
        log::debug!("{}: crashed: {what}", self.uid());
        hook(self.clone(), boxed()).await;
    }

    /// Awaits the teardown hook, when this actor or one of the children
    /// being torn down runs in debug mode.
    pub(crate) async fn before_teardown(&self, child_in_debug: bool) -> bool {
        let wanted = (self.debug_mode() || child_in_debug) && !self.forced();
        match self.inner.teardown_hook.clone().filter(|_| wanted) {
            Some(hook) => hook(self.clone()).await,
            None => false,
        }
    }

    /// Removes this actor's socket directory: the process is about to end
    /// and destructors of detached tasks will not run.
    pub(super) fn cleanup(&self) {
        if let Some(dir) = &self.inner.socket_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

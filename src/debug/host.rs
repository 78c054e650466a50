//! The host seam: what the debugger needs from the actor system it runs
//! in, and nothing more.
//!
//! An actor system (the crate's own runtime, or yours, on smol or
//! async-std, with its own spawning and IPC) implements [`Host`] and
//! calls [`install`](super::install) once per process, early (before anything can
//! prompt). From then on `pause!`, `post_mortem`, the crash REPLs,
//! [`acquire_debug_lock`](super::lock_dialog::acquire_debug_lock),
//! [`maybe_wait_for_debugger`](super::lock_dialog::maybe_wait_for_debugger),
//! ctrl-c shielding and the `kill -USR1` dumps work in that process.
//!
//! What the host calls where:
//! - root, when a subactor opens a lock dialog:
//!   [`serve_lock_dialog`](super::lock_dialog::serve_lock_dialog);
//! - root, when a subactor asks who holds the lock:
//!   [`answer_lock_queue`](super::lock_dialog::answer_lock_queue); when a child's
//!   result arrives: [`forget_questions_of`](super::lock_dialog::forget_questions_of);
//! - any actor, when its entry failed: [`post_mortem`](super::pause::post_mortem)
//!   (the crash REPL), then report the failure up as usual;
//! - any actor, before it tears children down:
//!   [`maybe_wait_for_debugger`](super::lock_dialog::maybe_wait_for_debugger);
//! - root, on its way out: [`restore_terminal`](super::terminal::restore_terminal);
//! - any actor, when its parent asks for its dump:
//!   [`answer_dump_request`](crate::stack_on_sig::answer_dump_request).
//!
//! ```
//! use smol_devx::debug::dialog::{BoxFuture, BoxedDialog};
//! use smol_devx::debug::host::{self, Host};
//! use smol_devx::debug::DebugError;
//! use smol_devx::msg::{ActorUid, LockRequest};
//!
//! /// A process that is the root of its own one-actor tree.
//! struct Alone(ActorUid);
//!
//! impl Host for Alone {
//!     fn uid(&self) -> ActorUid { self.0.clone() }
//!     fn is_root(&self) -> bool { true }
//!     fn open_lock_dialog(&self, _: LockRequest)
//!         -> BoxFuture<'static, Result<BoxedDialog, DebugError>> {
//!         Box::pin(async { Err(DebugError::NoRoot) })
//!     }
//! }
//!
//! smol_devx::debug::install(Alone(ActorUid::new("cli", "1"))).unwrap();
//! assert_eq!(&*host::current().unwrap().uid().name, "cli");
//! ```

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::dialog::{BoxFuture, BoxedDialog};
use super::lock::LockQueue;
use super::DebugError;
use crate::msg::{ActorUid, LockRequest};
use crate::task::ActorDump;

/// A live child process of this actor: where `SIGUSR1` is relayed, and
/// whom [`Host::ask_dump`] asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildActor {
    /// Its identity.
    pub uid: ActorUid,
    /// Its process id.
    pub pid: u32,
}

/// What the debugger needs from the actor system of this process. Only
/// the first three methods are required; the others have defaults that
/// suit a host without that feature.
pub trait Host: Send + Sync + 'static {
    /// This process's actor.
    fn uid(&self) -> ActorUid;

    /// Whether this process is the root of the tree: the root arbitrates
    /// the tree lock, every other actor asks it.
    fn is_root(&self) -> bool;

    /// Subactor: opens a lock dialog with the root, delivering `req` as
    /// its opening message; the root's host serves it with
    /// [`serve_lock_dialog`](super::lock_dialog::serve_lock_dialog). An error
    /// refuses the pause or crash REPL that asked, with that error
    /// (typically [`DebugError::NoRoot`] or [`DebugError::Request`]).
    fn open_lock_dialog(
        &self,
        req: LockRequest,
    ) -> BoxFuture<'static, Result<BoxedDialog, DebugError>>;

    /// Subactor: asks the root who holds and waits for the lock (the
    /// root answers with [`answer_lock_queue`](super::lock_dialog::answer_lock_queue)).
    /// Used for the REPL's queue banner and by
    /// [`maybe_wait_for_debugger`](super::lock_dialog::maybe_wait_for_debugger)
    /// to see whether its children are in a REPL. The default says it
    /// cannot: no banner, and no waiting for children.
    fn lock_queue(&self) -> BoxFuture<'static, Result<LockQueue, DebugError>> {
        Box::pin(async {
            Err(DebugError::Unsupported(
                "this host cannot ask the root about the lock",
            ))
        })
    }

    /// This actor's live children, in spawn order. The default: none.
    fn children(&self) -> Vec<ChildActor> {
        Vec::new()
    }

    /// Asks `child` for its dump within `budget` (the child's host
    /// answers with [`answer_dump_request`](crate::stack_on_sig::answer_dump_request)).
    /// The default cannot: the child is marked missing.
    fn ask_dump(
        &self,
        child: &ChildActor,
        budget: Duration,
    ) -> BoxFuture<'static, Result<ActorDump, String>> {
        let _ = (child, budget);
        Box::pin(async { Err("this host cannot ask its children".to_owned()) })
    }

    /// Root: ctrl-c while no REPL is live cancels the tree. The default
    /// exits at once with 130 (128 + SIGINT), as ctrl-c would by default.
    fn cancel_tree(&self, why: &str) {
        log::warn!("{}: {why}: exiting", self.uid());
        crate::log::flush();
        std::process::exit(130);
    }

    /// Root: SIGTERM or SIGHUP (`signal`) ends the tree now, even while
    /// a REPL is live: cancel every actor without waiting for the
    /// debugger, restore the terminal
    /// ([`restore_terminal`](super::terminal::restore_terminal)), remove
    /// what the tree made, and exit with 128 + `signal`. The default
    /// restores the terminal and exits so.
    fn terminate(&self, signal: i32) {
        super::terminal::restore_terminal();
        crate::log::flush();
        std::process::exit(128 + signal);
    }

    /// Subactor: whether the parent is still there. A subactor whose
    /// parent is gone exits on ctrl-c instead of ignoring it. The default
    /// says it is.
    fn parent_alive(&self) -> bool {
        true
    }
}

static HOST: OnceLock<Arc<dyn Host>> = OnceLock::new();

/// The host was installed already in this process.
#[derive(Debug)]
pub struct AlreadyInstalled;

impl std::fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a debugger host is installed in this process already")
    }
}

impl std::error::Error for AlreadyInstalled {}

/// Makes `host` this process's host, once ([`install`](super::install)
/// does it, and starts what depends on it).
pub(crate) fn set(host: impl Host) -> Result<(), AlreadyInstalled> {
    HOST.set(Arc::new(host)).map_err(|_| AlreadyInstalled)
}

/// This process's host, if one was installed.
pub fn current() -> Option<Arc<dyn Host>> {
    HOST.get().cloned()
}

/// This process's host, or [`DebugError::NoHost`].
pub(crate) fn require() -> Result<Arc<dyn Host>, DebugError> {
    current().ok_or(DebugError::NoHost)
}

//! The debugger: the tree-wide TTY lock, the dialog that arbitrates it,
//! pause and crash REPLs, ctrl-c shielding.
//!
//! Everything here reaches the actor system through the host seam
//! ([`host::Host`], installed once per process): it names no actor
//! runtime, so any actor system on smol or async-std embeds it.
//!
//! - [`host`]: the seam, and where a host calls in;
//! - [`dialog`]: [`LockDialog`](dialog::LockDialog), one lock dialog over
//!   the host's IPC, seen from either end;
//! - [`lock`]: the root's [`Lock`](lock::Lock), a strict-FIFO ticket queue;
//! - [`lock_dialog`]: the lock dialog's logic on both sides (the root's
//!   [`lock_dialog::serve_lock_dialog`], a subactor's
//!   [`lock_dialog::request_root_stdio_lock`]), [`lock_dialog::acquire_debug_lock`] and
//!   [`lock_dialog::maybe_wait_for_debugger`];
//! - [`pause`], [`crash`], [`repl`], [`gdb`]: the REPLs;
//! - [`install`]: where a host comes in, once per process;
//! - [`sigint`]: ctrl-c, SIGTERM and SIGHUP; [`terminal`]: the terminal
//!   mode the tree shares.

pub mod crash;
pub mod dialog;
pub mod gdb;
pub mod host;
mod install;
pub mod lock;
pub mod lock_dialog;
pub mod native;
pub mod panic;
pub mod pause;
pub mod repl;
pub mod sigint;
pub mod status;
pub mod terminal;

use std::fmt;

pub use install::install;

use crate::msg::ActorUid;

/// Why the debugger could not do what was asked.
#[derive(Debug)]
#[non_exhaustive]
pub enum DebugError {
    /// The same task of the same actor already holds or waits for the
    /// lock: refused instead of deadlocking on itself.
    DoubleLock(lock::Owner),
    /// The actor is being torn down and may not lock the terminal
    /// (tractor's `DebugRequestError` for a blocked actor).
    Barred(ActorUid),
    /// The lock dialog failed: the root or the link is gone, or refused.
    Request(String),
    /// The host's link to the root failed; the host's own error is the
    /// [`source`](std::error::Error::source).
    Link(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The other side cancelled the lock dialog.
    Cancelled,
    /// The peer broke the lock dialog's protocol.
    Protocol(String),
    /// No [`host::Host`] is installed in this process: the debugger does
    /// not know which actor it runs in.
    NoHost,
    /// The host knows no root to ask for the tree lock.
    NoRoot,
    /// The host does not offer what was asked.
    Unsupported(&'static str),
    /// A blocking pause or post-mortem was asked for on a thread that
    /// runs the actor's tasks: it would stop the tasks that carry the
    /// lock dialog, and hang.
    BlockingOnExecutor,
    /// The REPL could not read or write this process's terminal (closed,
    /// revoked): the terminal failed, not the tree lock.
    Terminal(std::io::Error),
}

impl fmt::Display for DebugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DebugError::DoubleLock(owner) => write!(
                f,
                "double lock request: {owner} already holds or waits for the tree lock"
            ),
            DebugError::Barred(actor) => {
                write!(f, "debug lock blocked for {actor}: it is being torn down")
            }
            DebugError::Request(e) => write!(f, "tree lock request failed: {e}"),
            DebugError::Link(e) => write!(f, "the link to the root failed: {e}"),
            DebugError::Cancelled => f.write_str("the lock dialog was cancelled"),
            DebugError::Protocol(e) => write!(f, "lock dialog protocol violation: {e}"),
            DebugError::NoHost => {
                f.write_str("no debugger host in this process (install one: debug::install)")
            }
            DebugError::NoRoot => f.write_str("the host knows no root to ask for the tree lock"),
            DebugError::Unsupported(what) => f.write_str(what),
            DebugError::BlockingOnExecutor => f.write_str(
                "pause_blocking! on a thread that runs the actor's tasks would hang them: \
                 use `pause!().await` there (pause_blocking! is for plain threads)",
            ),
            DebugError::Terminal(e) => write!(f, "the REPL's terminal failed: {e}"),
        }
    }
}

impl std::error::Error for DebugError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DebugError::Terminal(e) => Some(e),
            DebugError::Link(e) => Some(&**e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_failed_link_and_terminal_keep_their_cause() {
        let cause = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "root gone");
        let link = DebugError::Link(Box::new(cause));
        assert_eq!(link.to_string(), "the link to the root failed: root gone");
        let source = link.source().expect("the host's error");
        let io = source.downcast_ref::<std::io::Error>().expect("as it was");
        assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);
        let terminal = DebugError::Terminal(std::io::ErrorKind::NotConnected.into());
        assert!(terminal.source().is_some());
        assert!(DebugError::NoHost.source().is_none());
    }
}

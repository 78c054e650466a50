//! The debugger: the tree-wide TTY lock and the dialog that arbitrates it.
//!
//! - [`lock`]: the root's [`Lock`](lock::Lock), a strict-FIFO ticket queue;
//! - [`tty`]: the lock dialog on both sides (the root's handler
//!   [`tty::lock_stdio_for_peer`], a subactor's
//!   [`tty::request_root_stdio_lock`]), written against the
//!   [`tty::LockDialog`] seam that `ipc::Context` implements and a host's
//!   own IPC can implement instead; [`tty::acquire_debug_lock`] and
//!   [`tty::maybe_wait_for_debugger`].

pub mod crash;
pub mod lock;
pub mod pause;
pub mod repl;
pub mod sigint;
pub mod status;
pub mod tty;

use std::fmt;

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
    /// The other side cancelled the lock dialog.
    Cancelled,
    /// The peer broke the lock dialog's protocol.
    Protocol(String),
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
            DebugError::Cancelled => f.write_str("the lock dialog was cancelled"),
            DebugError::Protocol(e) => write!(f, "lock dialog protocol violation: {e}"),
            DebugError::Terminal(e) => write!(f, "the REPL's terminal failed: {e}"),
        }
    }
}

impl std::error::Error for DebugError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DebugError::Terminal(e) => Some(e),
            _ => None,
        }
    }
}

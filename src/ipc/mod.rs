//! Inter-process communication between actors: transports, the
//! authenticating handshake, `Channel` (one connection, many dialogs) and
//! `Context` (one dialog).
//!
//! This is the reference implementation of the message-stream seam that
//! the debugger's lock dialog is written against; a host actor system
//! with its own IPC provides that seam instead and skips this module.

pub mod auth;
mod channel;
mod context;
mod dialog_error;
pub(crate) mod flag;
pub(crate) mod random;
pub mod transport;

pub use channel::{CancelWatch, Channel, Incoming, IncomingDialogs, Side};
pub use context::{Context, DialogError};
pub use transport::{Addr, Listener, Stream, Transport};

//! Why a dialog did not give what was asked of it.

use std::fmt;
use std::sync::Arc;

use crate::codec::CodecError;
use crate::msg::RemoteError;

/// Why a dialog did not give what was asked of it.
#[derive(Debug)]
#[non_exhaustive]
pub enum DialogError {
    /// The peer's handler failed; its error, boxed.
    Remote(RemoteError),
    /// The dialog was cancelled by the peer.
    Cancelled,
    /// The connection closed; why.
    Closed(Arc<str>),
    /// A payload could not be decoded, or is outside the dialog's spec.
    Codec(CodecError),
    /// A message arrived out of order (e.g. a result before `started`).
    Protocol(String),
}

impl fmt::Display for DialogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialogError::Remote(e) => e.fmt(f),
            DialogError::Cancelled => f.write_str("dialog cancelled by the peer"),
            DialogError::Closed(reason) => write!(f, "connection closed: {reason}"),
            DialogError::Codec(e) => e.fmt(f),
            DialogError::Protocol(e) => write!(f, "protocol violation: {e}"),
        }
    }
}

impl std::error::Error for DialogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DialogError::Remote(e) => Some(e),
            DialogError::Codec(e) => Some(e),
            _ => None,
        }
    }
}

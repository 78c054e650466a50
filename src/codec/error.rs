//! What can be wrong with bytes from a peer, or with a payload under the
//! spec in force: every failure of the codec is one of these.

use std::fmt;
use std::io;

/// Everything that can be wrong with bytes from a peer, or with a payload
/// under the current spec.
#[derive(Debug)]
#[non_exhaustive]
pub enum CodecError {
    /// The length prefix claims more than the limit; nothing was allocated.
    Oversize {
        /// Length the prefix claimed.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// The input ended before the frame or value did.
    Truncated {
        /// Bytes the frame needed.
        needed: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// Nesting deeper than the limit.
    TooDeep {
        /// The limit in force.
        limit: usize,
    },
    /// Not CBOR, or not the shape of any message.
    Malformed {
        /// Byte offset of the problem inside the CBOR value, when known.
        offset: Option<usize>,
        /// What was wrong.
        reason: String,
    },
    /// A complete value was followed by more bytes.
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// A well-formed payload that the dialog's spec does not allow.
    MsgType(MsgTypeError),
    /// A value could not be encoded (only from the encode side).
    Encode(String),
    /// The transport failed.
    Io(io::Error),
}

/// A well-formed payload that is not allowed where it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgTypeError {
    /// Name of the spec in force ([`PldSpec::name`](super::PldSpec::name)).
    pub spec: &'static str,
    /// What the receiver expected there.
    pub expected: String,
    /// What arrived: the payload's tag, or the kind of CBOR value.
    pub got: String,
    /// The decoder's own words, when the tag was allowed but the body was
    /// not of the expected shape.
    pub detail: Option<String>,
}

impl fmt::Display for MsgTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "payload not allowed under pld spec `{}`: expected {}, got {}",
            self.spec, self.expected, self.got
        )?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for MsgTypeError {}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Oversize { len, max } => {
                write!(f, "frame of {len} bytes exceeds the {max}-byte limit")
            }
            CodecError::Truncated { needed, got } => {
                write!(f, "truncated input: needed {needed} bytes, got {got}")
            }
            CodecError::TooDeep { limit } => write!(f, "value nested deeper than {limit} levels"),
            CodecError::Malformed {
                offset: Some(at),
                reason,
            } => write!(f, "malformed message at byte {at}: {reason}"),
            CodecError::Malformed {
                offset: None,
                reason,
            } => {
                write!(f, "malformed message: {reason}")
            }
            CodecError::TrailingBytes { extra } => {
                write!(f, "{extra} trailing bytes after a complete value")
            }
            CodecError::MsgType(e) => e.fmt(f),
            CodecError::Encode(e) => write!(f, "cannot encode: {e}"),
            CodecError::Io(e) => write!(f, "transport error: {e}"),
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CodecError::MsgType(e) => Some(e),
            CodecError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for CodecError {
    fn from(e: io::Error) -> Self {
        CodecError::Io(e)
    }
}

impl From<MsgTypeError> for CodecError {
    fn from(e: MsgTypeError) -> Self {
        CodecError::MsgType(e)
    }
}

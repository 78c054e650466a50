//! Length-prefixed CBOR frames, bounded decoding and the per-task payload
//! spec.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of
//! CBOR holding one [`Msg`]. Decoding never trusts the peer: the length is
//! checked against [`Codec::max_frame`] before anything is allocated,
//! nesting is bounded by [`Codec::max_depth`] (ciborium overflows the stack
//! without one), and bytes after the value are refused. Every failure is a
//! [`CodecError`] saying what was wrong.
//!
//! Payloads ([`Pld`]) are decoded separately, under a *payload spec*
//! ([`PldSpec`]): a dialog's own, or the one the task layer binds to the
//! running task ([`crate::task::with_pld_spec`]), never a process-wide
//! one.

use std::fmt;
use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;
use smol::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::msg::{short_type_name, LockMsg, Msg, Pld};

mod error;
mod scan;

pub use error::{CodecError, MsgTypeError};

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// ciborium's scratch for strings and byte strings while decoding, on the
/// stack: its default is 4 KiB, zeroed on every decode.
const SCRATCH: usize = 256;

/// Which payloads a dialog accepts.
///
/// A restrictive spec lists the wire tags it allows; a tagged payload is
/// the CBOR form of an externally tagged serde enum (a one-entry map from
/// the variant name to its body, or the bare name for a unit variant).
/// [`PldSpec::ANY`] accepts every payload and is in force outside any
/// [`crate::task::with_pld_spec`] scope.
///
/// ```
/// use smol_devx::codec::PldSpec;
/// static ONLY_STATUS: PldSpec = PldSpec::new("OnlyStatus", &["LockStatus"]);
/// assert!(ONLY_STATUS.allows("LockStatus"));
/// assert!(!ONLY_STATUS.allows("LockRelease"));
/// assert!(PldSpec::ANY.allows("anything"));
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct PldSpec {
    name: &'static str,
    tags: Option<&'static [&'static str]>,
}

impl PldSpec {
    /// Every payload is allowed: the default.
    pub const ANY: PldSpec = PldSpec {
        name: "Any",
        tags: None,
    };

    /// The lock dialog's spec: [`LockMsg`] only.
    pub const LOCK: PldSpec = PldSpec::new("LockMsg", LockMsg::TAGS);

    /// A spec allowing exactly the payloads tagged with one of `tags`.
    pub const fn new(name: &'static str, tags: &'static [&'static str]) -> Self {
        Self {
            name,
            tags: Some(tags),
        }
    }

    /// The spec's name, used in errors.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether a payload tagged `tag` may cross a dialog under this spec.
    pub fn allows(&self, tag: &str) -> bool {
        self.tags.is_none_or(|tags| tags.contains(&tag))
    }

    /// Checks the raw payload's tag; `Ok` when allowed.
    fn check(&'static self, raw: &[u8]) -> Result<(), MsgTypeError> {
        let Some(tags) = self.tags else {
            return Ok(());
        };
        // The usual payload, a variant with data: a one-entry map keyed by
        // a short tag, matched as bytes (the tags are ASCII).
        if let [0xa1, head, rest @ ..] = raw {
            let len = usize::from(head & 0x1f);
            if head & 0xe0 == 0x60
                && len < 24
                && rest
                    .get(..len)
                    .is_some_and(|t| tags.iter().any(|tag| tag.as_bytes() == t))
            {
                return Ok(());
            }
        }
        match peek(raw) {
            Peeked::Tag(tag) if tags.contains(&tag) => Ok(()),
            got => Err(MsgTypeError {
                spec: self.name,
                expected: tags.join(" | "),
                got: got.to_string(),
                detail: None,
            }),
        }
    }
}

/// Encodes one payload value.
pub fn encode_pld<T: Serialize + ?Sized>(value: &T) -> Result<Pld, CodecError> {
    // Room for a lock message without regrowing.
    let mut raw = Vec::with_capacity(128);
    encode_value(value, &mut raw)?;
    Ok(Pld::from_raw(raw))
}

/// Appends `value` as CBOR.
fn encode_value<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    ciborium::ser::into_writer(value, &mut *out).map_err(|e| {
        out.truncate(start);
        CodecError::Encode(e.to_string())
    })
}

/// A lock message as a payload. Every lock message encodes: its fields
/// are strings and integers.
#[cfg_attr(not(feature = "runtime"), allow(dead_code))] // the runtime's dialogs use it
pub(crate) fn encode_lock_msg(msg: &LockMsg) -> Pld {
    encode_pld(msg).expect("a lock message is strings and integers")
}

/// Frame and nesting limits, and the encode/decode operations under them.
///
/// ```
/// use smol_devx::codec::{Codec, CodecError};
/// let codec = Codec::default().with_max_frame(64);
/// let claims_4gib = [0xff, 0xff, 0xff, 0xff];
/// assert!(matches!(codec.decode_frame(&claims_4gib), Err(CodecError::Oversize { .. })));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    max_frame: usize,
    max_depth: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Self {
            max_frame: Self::DEFAULT_MAX_FRAME,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}

impl Codec {
    /// 1 MiB.
    pub const DEFAULT_MAX_FRAME: usize = 1 << 20;
    /// Deep enough for any message of this crate and ordinary app data,
    /// shallow enough for a 2 MiB worker-thread stack.
    pub const DEFAULT_MAX_DEPTH: usize = 128;
    /// ciborium's own recursion bound, which stays in force underneath.
    pub const MAX_DEPTH_CAP: usize = 256;

    /// Sets the largest frame body accepted or sent (capped at `u32::MAX`,
    /// what the prefix can say).
    pub fn with_max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes.min(u32::MAX as usize);
        self
    }

    /// Sets the nesting bound of envelopes and payloads, at most
    /// [`Codec::MAX_DEPTH_CAP`].
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth.min(Self::MAX_DEPTH_CAP);
        self
    }

    /// The largest frame body accepted or sent.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The nesting bound.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }

    /// Encodes `msg` as one frame, prefix included.
    pub fn encode(&self, msg: &Msg) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(msg, &mut out)?;
        Ok(out)
    }

    /// Appends `msg` as one frame to `out`. A message larger than
    /// [`Codec::max_frame`] is refused here, so the peer never has to.
    pub fn encode_into(&self, msg: &Msg, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        out.extend_from_slice(&[0; PREFIX_LEN]);
        if let Err(e) = encode_value(msg, out) {
            out.truncate(start);
            return Err(e);
        }
        let len = out.len() - start - PREFIX_LEN;
        if len > self.max_frame {
            out.truncate(start);
            return Err(CodecError::Oversize {
                len: len as u64,
                max: self.max_frame,
            });
        }
        out[start..start + PREFIX_LEN].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }

    /// Checks a length prefix against the limit.
    fn body_len(&self, prefix: [u8; PREFIX_LEN]) -> Result<usize, CodecError> {
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max_frame {
            return Err(CodecError::Oversize {
                len: len as u64,
                max: self.max_frame,
            });
        }
        if len == 0 {
            return Err(CodecError::Malformed {
                offset: None,
                reason: "empty frame".into(),
            });
        }
        Ok(len)
    }

    /// Decodes the first frame of `buf`; returns the message and the bytes
    /// it used. Bytes after the frame are left for the next call.
    pub fn decode_frame(&self, buf: &[u8]) -> Result<(Msg, usize), CodecError> {
        let Some((prefix, rest)) = buf.split_first_chunk::<PREFIX_LEN>() else {
            return Err(CodecError::Truncated {
                needed: PREFIX_LEN,
                got: buf.len(),
            });
        };
        let len = self.body_len(*prefix)?;
        let body = rest.get(..len).ok_or(CodecError::Truncated {
            needed: PREFIX_LEN + len,
            got: buf.len(),
        })?;
        Ok((self.decode_body(body)?, PREFIX_LEN + len))
    }

    /// Decodes one frame body (no prefix): exactly one message, nothing
    /// after it.
    pub fn decode_body(&self, body: &[u8]) -> Result<Msg, CodecError> {
        self.decode_exact(body).map_err(|e| match e {
            // The envelope has one shape; anything else is not a message.
            DecodeFailure::Semantic { offset, reason } => CodecError::Malformed {
                offset,
                reason: format!("not a dialog message: {reason}"),
            },
            DecodeFailure::Codec(e) => e,
        })
    }

    /// Decodes a payload as `T` under `spec`: a payload the spec does not
    /// allow, or one that is not a `T`, is a [`CodecError::MsgType`].
    /// A dialog passes its own spec; [`crate::task::decode_pld`] passes
    /// the running task's.
    pub fn decode_pld<T: DeserializeOwned>(
        &self,
        spec: &'static PldSpec,
        pld: &Pld,
    ) -> Result<T, CodecError> {
        let raw = pld.as_bytes();
        spec.check(raw)?;
        self.decode_exact(raw).map_err(|e| match e {
            DecodeFailure::Semantic { reason, .. } => CodecError::MsgType(MsgTypeError {
                spec: spec.name,
                expected: short_type_name::<T>().to_owned(),
                got: peek(raw).to_string(),
                detail: Some(reason),
            }),
            DecodeFailure::Codec(e) => e,
        })
    }

    fn decode_exact<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, DecodeFailure> {
        use ciborium::de::Error;
        // The structural pass bounds nesting and finds the value's end, so
        // ciborium only ever sees one complete, shallow value.
        let end = scan::value_len(bytes, self.max_depth).map_err(DecodeFailure::Codec)?;
        if end < bytes.len() {
            return Err(DecodeFailure::Codec(CodecError::TrailingBytes {
                extra: bytes.len() - end,
            }));
        }
        // Strings longer than this scratch take ciborium's allocating path;
        // a lock message's names and uuids fit.
        let mut scratch = [0u8; SCRATCH];
        ciborium::de::from_reader_with_buffer(bytes, &mut scratch).map_err(|e| match e {
            Error::Io(_) => DecodeFailure::Codec(CodecError::Truncated {
                needed: bytes.len() + 1,
                got: bytes.len(),
            }),
            Error::Syntax(at) => DecodeFailure::Codec(CodecError::Malformed {
                offset: Some(at),
                reason: "invalid CBOR (bad UTF-8 or value)".into(),
            }),
            Error::RecursionLimitExceeded => DecodeFailure::Codec(CodecError::TooDeep {
                limit: self.max_depth,
            }),
            Error::Semantic(offset, reason) => DecodeFailure::Semantic { offset, reason },
        })
    }

    /// Reads one frame from `reader` into `buf` (reused across calls) and
    /// decodes it. `Ok(None)` is a clean end of stream between frames.
    pub async fn read_msg<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Msg>, CodecError> {
        let mut prefix = [0u8; PREFIX_LEN];
        match read_full(reader, &mut prefix).await? {
            0 => return Ok(None),
            PREFIX_LEN => {}
            got => {
                return Err(CodecError::Truncated {
                    needed: PREFIX_LEN,
                    got,
                })
            }
        }
        let len = self.body_len(prefix)?;
        buf.clear();
        // The buffer grows with the bytes that arrive, a chunk ahead at
        // most, never with the length the peer claims: a thousand peers
        // that each announce a large frame and send nothing commit
        // nothing.
        while buf.len() < len {
            let filled = buf.len();
            buf.resize(filled + (len - filled).min(READ_CHUNK), 0);
            let got = read_full(reader, &mut buf[filled..]).await?;
            if filled + got < buf.len() {
                return Err(CodecError::Truncated {
                    needed: PREFIX_LEN + len,
                    got: PREFIX_LEN + filled + got,
                });
            }
        }
        self.decode_body(buf).map(Some)
    }

    /// [`Codec::read_msg`] from a buffered reader: a frame that is whole
    /// in the reader's buffer (the usual case: one read brings one or
    /// more frames) is decoded where it lies, without copying it out or
    /// the two reads of the prefix and the body; any other goes the
    /// [`Codec::read_msg`] way. The same frames, errors and end of stream
    /// either way.
    pub async fn read_msg_buffered<R: AsyncBufRead + Unpin>(
        &self,
        reader: &mut R,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Msg>, CodecError> {
        let buffered = reader.fill_buf().await?;
        if let Some((prefix, rest)) = buffered.split_first_chunk::<PREFIX_LEN>() {
            let len = self.body_len(*prefix)?;
            if let Some(body) = rest.get(..len) {
                let msg = self.decode_body(body);
                reader.consume(PREFIX_LEN + len);
                return msg.map(Some);
            }
        }
        self.read_msg(reader, buf).await
    }

    /// Encodes `msg` into `buf` (reused across calls) and writes it as one
    /// frame to `writer`, then flushes.
    pub async fn write_msg<W: AsyncWrite + Unpin>(
        &self,
        writer: &mut W,
        msg: &Msg,
        buf: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        buf.clear();
        self.encode_into(msg, buf)?;
        writer.write_all(buf).await?;
        writer.flush().await?;
        Ok(())
    }
}

/// How far ahead of the bytes received [`Codec::read_msg`] grows its
/// buffer.
const READ_CHUNK: usize = 64 * 1024;

/// Reads until `buf` is full or the stream ends; returns the bytes read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A decode failure before it is known whether a shape mismatch means a
/// malformed envelope or a payload outside the spec.
enum DecodeFailure {
    Semantic {
        offset: Option<usize>,
        reason: String,
    },
    Codec(CodecError),
}

/// What the head of a raw payload is, read without decoding the rest.
#[derive(Debug, PartialEq, Eq)]
enum Peeked<'a> {
    /// An externally tagged value: one-entry map with a text key, or text.
    Tag(&'a str),
    /// Any other CBOR value, by kind.
    Kind(&'static str),
}

impl fmt::Display for Peeked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peeked::Tag(tag) => write!(f, "`{tag}`"),
            Peeked::Kind(kind) => f.write_str(kind),
        }
    }
}

/// Reads a CBOR item head: major type and argument (`None` = indefinite
/// length). Returns the head and the bytes after it.
fn head(bytes: &[u8]) -> Option<(u8, Option<u64>, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    let major = first >> 5;
    let (arg, rest) = match first & 0x1f {
        small @ 0..=23 => (Some(u64::from(small)), rest),
        24 => (Some(u64::from(*rest.first()?)), rest.get(1..)?),
        25 => {
            let (b, rest) = rest.split_first_chunk::<2>()?;
            (Some(u64::from(u16::from_be_bytes(*b))), rest)
        }
        26 => {
            let (b, rest) = rest.split_first_chunk::<4>()?;
            (Some(u64::from(u32::from_be_bytes(*b))), rest)
        }
        27 => {
            let (b, rest) = rest.split_first_chunk::<8>()?;
            (Some(u64::from_be_bytes(*b)), rest)
        }
        31 => (None, rest),
        _ => return None,
    };
    Some((major, arg, rest))
}

/// A definite-length text string at the head of `bytes`.
fn text(bytes: &[u8]) -> Option<&str> {
    let (3, Some(len), rest) = head(bytes)? else {
        return None;
    };
    std::str::from_utf8(rest.get(..usize::try_from(len).ok()?)?).ok()
}

fn peek(raw: &[u8]) -> Peeked<'_> {
    let mut raw = raw;
    // ciborium decodes an enum through any CBOR tags around it.
    let (major, arg, rest) = loop {
        match head(raw) {
            Some((6, _, inner)) => raw = inner,
            Some(item) => break item,
            None => return Peeked::Kind("invalid CBOR"),
        }
    };
    match (major, arg) {
        (5, Some(1)) => text(rest).map_or(Peeked::Kind("map"), Peeked::Tag),
        (3, _) => text(raw).map_or(Peeked::Kind("text"), Peeked::Tag),
        (0 | 1, _) => Peeked::Kind("integer"),
        (2, _) => Peeked::Kind("bytes"),
        (4, _) => Peeked::Kind("array"),
        (5, _) => Peeked::Kind("map"),
        _ => Peeked::Kind("simple value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_allows_exactly_its_tags() {
        let spec = &PldSpec::LOCK;
        let release = encode_pld(&LockMsg::LockRelease(crate::msg::LockRelease {
            subactor_uid: crate::msg::ActorUid::new("a", "1"),
            cid: 1,
        }))
        .unwrap();
        assert!(spec.check(release.as_bytes()).is_ok());
        // Wrapped in a CBOR tag: read through it, as ciborium does.
        let mut tagged = vec![0xc6];
        tagged.extend_from_slice(release.as_bytes());
        assert!(spec.check(&tagged).is_ok());
        for other in [
            &b"\xa1\x68LockNope\xf6"[..],
            b"\xa1\x64Lock\xf6",
            b"\xa1\x6bLockRequesT\xf6",
            b"\xa2\x6bLockRequest\xf6\x61x\xf6",
            b"\xa1",
            b"",
        ] {
            let err = spec.check(other).unwrap_err();
            assert_eq!(err.spec, "LockMsg", "{other:02x?}");
        }
    }

    #[test]
    fn peek_reads_tags_and_kinds() {
        let tagged = encode_pld(&LockMsg::LockRelease(crate::msg::LockRelease {
            subactor_uid: crate::msg::ActorUid::new("a", "1"),
            cid: 1,
        }))
        .unwrap();
        assert_eq!(peek(tagged.as_bytes()), Peeked::Tag("LockRelease"));
        assert_eq!(
            peek(encode_pld(&5u8).unwrap().as_bytes()),
            Peeked::Kind("integer")
        );
        assert_eq!(
            peek(encode_pld("Unit").unwrap().as_bytes()),
            Peeked::Tag("Unit")
        );
        assert_eq!(peek(&[]), Peeked::Kind("invalid CBOR"));
        // Map head claiming a 2^64-byte key: no panic, no allocation.
        assert_eq!(
            peek(&[0xa1, 0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Peeked::Kind("map")
        );
    }
}

//! Wire messages: the dialog envelope, the lock payload spec and the boxed
//! remote error.
//!
//! Every message is a plain serde type; [`crate::codec`] turns them into
//! length-prefixed CBOR frames. Payloads ([`Pld`]) stay raw CBOR inside the
//! envelope so that each dialog can decode them under its own payload spec
//! (see [`crate::codec::PldSpec`]).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Dialog (context) id: unique per connection.
pub type Cid = u64;

/// Version of the envelope carried in [`Hello`]; peers refuse a mismatch.
pub const PROTOCOL_VERSION: u32 = 1;

/// Identity of an actor: its name and a unique id, like tractor's
/// `(name, uuid)` tuple.
///
/// ```
/// let uid = smol_devx::msg::ActorUid::new("root", "1f78");
/// assert_eq!(uid.to_string(), "('root', '1f78')");
/// ```
///
/// The parts are shared strings: a uid is copied into many messages and
/// records per lock dialog, and a copy is a reference count, not two
/// allocations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorUid {
    /// Human-given actor name (`root`, `breakpoint_forever`, ...).
    pub name: Arc<str>,
    /// Unique id of this actor instance.
    pub uuid: Arc<str>,
}

impl ActorUid {
    /// Builds a uid from its two parts.
    pub fn new(name: impl Into<Arc<str>>, uuid: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            uuid: uuid.into(),
        }
    }
}

impl fmt::Display for ActorUid {
    // Tuple form so that users of tractor's output find the same text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "('{}', '{}')", self.name, self.uuid)
    }
}

/// Identity of a task inside an actor: `(task name, task id)`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskUid {
    /// Task name as given at spawn.
    pub name: Arc<str>,
    /// Task id, unique within its actor process.
    pub id: u64,
}

impl TaskUid {
    /// Builds a task uid from its two parts.
    pub fn new(name: impl Into<Arc<str>>, id: u64) -> Self {
        Self {
            name: name.into(),
            id,
        }
    }
}

/// A payload as it travels: raw CBOR of one value, decoded only by the
/// dialog that receives it, under that dialog's payload spec.
///
/// Build one with [`crate::codec::encode_pld`], read it with
/// [`crate::codec::Codec::decode_pld`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Pld(Vec<u8>);

impl Pld {
    /// Wraps bytes that are already CBOR. They are checked only when decoded.
    pub fn from_raw(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The raw CBOR bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Pld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pld({} bytes)", self.0.len())
    }
}

// A CBOR byte string rather than serde's default sequence of integers: one
// memcpy each way, and the nesting of the payload does not count against
// the envelope's.
impl Serialize for Pld {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Pld {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Pld;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CBOR byte string holding a payload")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Pld, E> {
                Ok(Pld(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Pld, E> {
                Ok(Pld(v))
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// First message on every connection, in both directions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Who is speaking.
    pub uid: ActorUid,
    /// The per-tree secret that proves the peer belongs to the tree.
    pub token: String,
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u32,
}

/// The dialog envelope: everything that crosses a connection is one of
/// these. All but [`Msg::Hello`] belong to the dialog named by `cid`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Msg {
    /// Connection handshake (not part of any dialog).
    Hello(Hello),
    /// Open dialog `cid`, running `handler` in the peer with `pld` as its
    /// argument.
    Start {
        /// Dialog id, chosen by the opener.
        cid: Cid,
        /// Name of the handler to run in the peer.
        handler: String,
        /// The handler's argument.
        pld: Pld,
    },
    /// The handler is running; `pld` is its first value.
    Started {
        /// Dialog id.
        cid: Cid,
        /// The started value.
        pld: Pld,
    },
    /// One item on the dialog's bidirectional stream.
    Yield {
        /// Dialog id.
        cid: Cid,
        /// The item.
        pld: Pld,
    },
    /// The sender will send no more stream items.
    Stop {
        /// Dialog id.
        cid: Cid,
    },
    /// The handler finished; `pld` is its final result.
    Return {
        /// Dialog id.
        cid: Cid,
        /// The result.
        pld: Pld,
    },
    /// The handler failed.
    Error {
        /// Dialog id.
        cid: Cid,
        /// The boxed failure.
        error: RemoteError,
    },
    /// Cancel the dialog (either side may send it).
    Cancel {
        /// Dialog id.
        cid: Cid,
    },
}

impl Msg {
    /// The dialog this message belongs to; `None` for the handshake.
    pub fn cid(&self) -> Option<Cid> {
        match self {
            Msg::Hello(_) => None,
            Msg::Start { cid, .. }
            | Msg::Started { cid, .. }
            | Msg::Yield { cid, .. }
            | Msg::Stop { cid }
            | Msg::Return { cid, .. }
            | Msg::Error { cid, .. }
            | Msg::Cancel { cid } => Some(*cid),
        }
    }

    /// The variant's name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Hello(_) => "Hello",
            Msg::Start { .. } => "Start",
            Msg::Started { .. } => "Started",
            Msg::Yield { .. } => "Yield",
            Msg::Stop { .. } => "Stop",
            Msg::Return { .. } => "Return",
            Msg::Error { .. } => "Error",
            Msg::Cancel { .. } => "Cancel",
        }
    }
}

/// Sub -> root: the `Start` argument of the lock dialog.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LockRequest {
    /// The actor asking for the terminal.
    pub subactor_uid: ActorUid,
    /// The task in that actor that will run the REPL.
    pub task_uid: TaskUid,
}

/// Root -> sub: `locked: true` as the dialog's started value once the sub
/// owns the terminal, `locked: false` as its final result after release.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LockStatus {
    /// The actor the status is about.
    pub subactor_uid: ActorUid,
    /// The lock dialog.
    pub cid: Cid,
    /// Whether that actor holds the tree lock.
    pub locked: bool,
}

/// Sub -> root on the dialog's stream: the REPL is done, release the lock.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LockRelease {
    /// The releasing actor (must be the holder).
    pub subactor_uid: ActorUid,
    /// The lock dialog (must be the holding dialog).
    pub cid: Cid,
}

/// The lock payload spec as one type: every payload of a lock dialog is
/// one of these, tagged with the variant name on the wire (serde's
/// external tagging). An unknown tag is an error, never another variant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum LockMsg {
    /// See [`LockRequest`].
    LockRequest(LockRequest),
    /// See [`LockStatus`].
    LockStatus(LockStatus),
    /// See [`LockRelease`].
    LockRelease(LockRelease),
}

impl LockMsg {
    /// The wire tags of the variants, which [`crate::codec::PldSpec::LOCK`]
    /// allows.
    pub const TAGS: &'static [&'static str] = &["LockRequest", "LockStatus", "LockRelease"];

    /// This message's wire tag.
    pub fn tag(&self) -> &'static str {
        match self {
            LockMsg::LockRequest(_) => Self::TAGS[0],
            LockMsg::LockStatus(_) => Self::TAGS[1],
            LockMsg::LockRelease(_) => Self::TAGS[2],
        }
    }
}

/// One link of an error's `source()` chain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorCause {
    /// Type name of the cause, when known.
    pub type_name: String,
    /// Its message.
    pub message: String,
}

/// A failure boxed for travel: it keeps the original type name, message,
/// source actor and backtrace text intact across any number of hops, and
/// records every actor that relayed it.
///
/// It is one pointer wide (the fields live behind a `Box`, reached
/// through `Deref`), so `Result`s carrying it stay small.
///
/// ```
/// use smol_devx::msg::{ActorUid, RemoteError};
///
/// let err = RemoteError::new("NameError", "doggypants", ActorUid::new("name_error", "a1"))
///     .relayed_by(ActorUid::new("spawner", "b2"))
///     .relayed_by(ActorUid::new("root", "c3"));
/// assert_eq!(err.type_name, "NameError");
/// assert_eq!(&*err.src_uid.name, "name_error");
/// assert_eq!(&*err.relay_uid().name, "root");
/// ```
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct RemoteError(Box<RemoteErrorData>);

/// A place in the source: where a failure was raised.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// The source file, as the compiler named it.
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
}

impl From<&std::panic::Location<'_>> for Site {
    fn from(at: &std::panic::Location<'_>) -> Self {
        Site {
            file: at.file().to_owned(),
            line: at.line(),
            col: at.column(),
        }
    }
}

impl Site {
    /// Reads `file:line:col`, as a backtrace's `at` lines and panic
    /// messages show a place (the file may hold colons itself).
    pub fn parse(text: &str) -> Option<Site> {
        let mut parts = text.rsplitn(3, ':');
        let col = parts.next()?.parse().ok()?;
        let line = parts.next()?.parse().ok()?;
        let file = parts.next()?.to_owned();
        Some(Site { file, line, col })
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// The fields of a [`RemoteError`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RemoteErrorData {
    /// Type name of the original error (`NameError`, `Quit`, `panic`...).
    pub type_name: String,
    /// Display text of the original error.
    pub message: String,
    /// The actor where the error was raised.
    pub src_uid: ActorUid,
    /// Rendered backtrace of the original failure, taken where it was
    /// raised; empty when none was.
    pub backtrace: String,
    /// Where the original failure was raised, when it knows
    /// ([`crate::Report`], a panic).
    #[serde(default)]
    pub site: Option<Site>,
    /// The original error's `source()` chain, outermost first.
    pub causes: Vec<ErrorCause>,
    /// Actors that relayed the error upward, in order, after `src_uid`.
    pub relay_path: Vec<ActorUid>,
}

impl std::ops::Deref for RemoteError {
    type Target = RemoteErrorData;
    fn deref(&self) -> &RemoteErrorData {
        &self.0
    }
}

impl std::ops::DerefMut for RemoteError {
    fn deref_mut(&mut self) -> &mut RemoteErrorData {
        &mut self.0
    }
}

impl RemoteError {
    /// Boxes a failure by its parts.
    pub fn new(
        type_name: impl Into<String>,
        message: impl Into<String>,
        src_uid: ActorUid,
    ) -> Self {
        Self(Box::new(RemoteErrorData {
            type_name: type_name.into(),
            message: message.into(),
            src_uid,
            backtrace: String::new(),
            site: None,
            causes: Vec::new(),
            relay_path: Vec::new(),
        }))
    }

    /// Boxes a Rust error: its short type name, message and `source()`
    /// chain.
    ///
    /// ```
    /// use smol_devx::msg::{ActorUid, RemoteError};
    /// let io = std::io::Error::other("disk on fire");
    /// let boxed = RemoteError::from_error(&io, ActorUid::new("a", "1"));
    /// assert_eq!(boxed.type_name, "Error");
    /// assert_eq!(boxed.message, "disk on fire");
    /// ```
    pub fn from_error<E: std::error::Error + 'static>(err: &E, src_uid: ActorUid) -> Self {
        Self::from_dyn(err, short_type_name::<E>(), src_uid)
    }

    /// [`RemoteError::from_error`] for an error whose type is erased:
    /// its type name is given.
    pub fn from_dyn(
        err: &(dyn std::error::Error + 'static),
        type_name: &str,
        src_uid: ActorUid,
    ) -> Self {
        let mut boxed = Self::new(type_name, err.to_string(), src_uid);
        let mut source = err.source();
        while let Some(cause) = source {
            boxed.causes.push(ErrorCause {
                // `dyn Error` erases the type; the message is what is left.
                type_name: String::new(),
                message: cause.to_string(),
            });
            source = cause.source();
        }
        boxed
    }

    /// Attaches rendered backtrace text.
    pub fn with_backtrace(mut self, backtrace: impl Into<String>) -> Self {
        self.backtrace = backtrace.into();
        self
    }

    /// Records one more hop on the way up.
    pub fn relayed_by(mut self, uid: ActorUid) -> Self {
        self.relay_path.push(uid);
        self
    }

    /// The actor that sent it last: the newest relay, or the source.
    pub fn relay_uid(&self) -> &ActorUid {
        self.relay_path.last().unwrap_or(&self.src_uid)
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteActorError: {} raised {}: {}",
            self.src_uid, self.type_name, self.message
        )?;
        if !self.relay_path.is_empty() {
            let hops: Vec<String> = self.relay_path.iter().map(ToString::to_string).collect();
            write!(f, " (relayed by {})", hops.join(" -> "))?;
        }
        for cause in &self.causes {
            write!(f, "\n  caused by: {}", cause.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for RemoteError {}

/// `a::b::Foo<c::Bar>` -> `Foo<c::Bar>`: the name a user wrote, without
/// the module path that `type_name` adds.
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let head_end = full.find('<').unwrap_or(full.len());
    let start = full[..head_end].rfind("::").map_or(0, |i| i + 2);
    &full[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_round_trip_as_plain_text() {
        let uid = ActorUid::new("sub", "x".repeat(100));
        let bytes = crate::codec::encode_pld(&uid).unwrap();
        assert_eq!(
            crate::codec::Codec::default()
                .decode_pld::<ActorUid>(&crate::codec::PldSpec::ANY, &bytes)
                .unwrap(),
            uid
        );
        let not_text = crate::codec::encode_pld(&(serde_bytes_like(), "u")).unwrap();
        assert!(crate::codec::Codec::default()
            .decode_pld::<ActorUid>(&crate::codec::PldSpec::ANY, &not_text)
            .is_err());
    }

    /// A CBOR byte string where a uid's name should be text.
    fn serde_bytes_like() -> ciborium::Value {
        ciborium::Value::Bytes(vec![0xff, 0xfe])
    }

    #[test]
    fn short_type_names() {
        struct Local;
        assert_eq!(short_type_name::<Local>(), "Local");
        assert_eq!(
            short_type_name::<Vec<String>>(),
            "Vec<alloc::string::String>"
        );
        assert_eq!(short_type_name::<u8>(), "u8");
    }

    #[test]
    fn from_error_keeps_the_source_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Outer(std::io::Error::other("inner"));
        let boxed = RemoteError::from_error(&err, ActorUid::new("x", "1"));
        assert_eq!(boxed.type_name, "Outer");
        assert_eq!(boxed.causes.len(), 1);
        assert_eq!(boxed.causes[0].message, "inner");
        assert!(boxed.to_string().contains("caused by: inner"));
    }

    #[test]
    fn msg_cid_and_kind() {
        let hello = Msg::Hello(Hello {
            uid: ActorUid::new("a", "1"),
            token: "t".into(),
            version: PROTOCOL_VERSION,
        });
        assert_eq!(hello.cid(), None);
        assert_eq!(hello.kind(), "Hello");
        assert_eq!(Msg::Cancel { cid: 9 }.cid(), Some(9));
        assert_eq!(Msg::Stop { cid: 3 }.kind(), "Stop");
    }

    #[test]
    fn sites_read_back_from_their_display() {
        let site = Site {
            file: "/work/my:app/src/main.rs".into(),
            line: 17,
            col: 16,
        };
        assert_eq!(Site::parse(&site.to_string()), Some(site));
        assert_eq!(Site::parse("src/main.rs:17"), None);
        assert_eq!(Site::parse("src/main.rs:x:16"), None);
    }
}

//! Proving a peer belongs to the tree: the handshake that opens every
//! connection, with the per-tree secret token.
//!
//! The connecting side speaks first. The accepting side checks the token
//! (in constant time), the protocol version and, on Unix sockets, that
//! the peer runs as the same user, before it answers: a stranger learns
//! nothing, not even the listener's identity.

use std::fmt;
use std::time::Duration;

use smol::future::FutureExt;

use crate::codec::{Codec, CodecError};
use crate::ipc::transport::Stream;
use crate::msg::{ActorUid, Hello, Msg, PROTOCOL_VERSION};

/// How long a peer may take to say hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest frame a peer may send before it proved it belongs to the
/// tree: a `Hello` is well under 200 bytes.
pub const HELLO_MAX_FRAME: usize = 4096;

/// Compares secrets without an early exit, so timing says nothing about
/// how much of a guess was right.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Why a handshake failed. The connection is dropped in every case.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's bytes were not a valid frame.
    Codec(CodecError),
    /// The peer closed before saying hello.
    Closed,
    /// The first message was not `Hello`.
    NotHello(&'static str),
    /// The token did not match this tree's.
    BadToken(ActorUid),
    /// The peer speaks another protocol version.
    Version {
        /// Who.
        peer: ActorUid,
        /// Their version.
        version: u32,
    },
    /// The peer runs as another user.
    WrongUser(u32),
    /// The peer said nothing in time.
    Timeout,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Codec(e) => write!(f, "bad handshake frame: {e}"),
            HandshakeError::Closed => f.write_str("peer closed before the handshake"),
            HandshakeError::NotHello(kind) => write!(f, "expected Hello, got {kind}"),
            HandshakeError::BadToken(peer) => write!(f, "wrong tree token from {peer}"),
            HandshakeError::Version { peer, version } => write!(
                f,
                "{peer} speaks protocol {version}, this actor {PROTOCOL_VERSION}"
            ),
            HandshakeError::WrongUser(uid) => write!(f, "peer runs as uid {uid}, not ours"),
            HandshakeError::Timeout => write!(f, "no Hello within {HANDSHAKE_TIMEOUT:?}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<CodecError> for HandshakeError {
    fn from(e: CodecError) -> Self {
        HandshakeError::Codec(e)
    }
}

async fn read_hello(
    stream: &mut Stream,
    codec: &Codec,
    token: &str,
) -> Result<ActorUid, HandshakeError> {
    let mut buf = Vec::new();
    let codec = codec.with_max_frame(HELLO_MAX_FRAME);
    let hello = match codec.read_msg(stream, &mut buf).await? {
        None => return Err(HandshakeError::Closed),
        Some(Msg::Hello(hello)) => hello,
        Some(other) => return Err(HandshakeError::NotHello(other.kind())),
    };
    if !same_secret(&hello.token, token) {
        return Err(HandshakeError::BadToken(hello.uid));
    }
    if hello.version != PROTOCOL_VERSION {
        return Err(HandshakeError::Version {
            peer: hello.uid,
            version: hello.version,
        });
    }
    Ok(hello.uid)
}

fn hello(me: &ActorUid, token: &str) -> Msg {
    Msg::Hello(Hello {
        uid: me.clone(),
        token: token.to_owned(),
        version: PROTOCOL_VERSION,
    })
}

async fn timed<T>(
    fut: impl std::future::Future<Output = Result<T, HandshakeError>>,
) -> Result<T, HandshakeError> {
    fut.or(async {
        smol::Timer::after(HANDSHAKE_TIMEOUT).await;
        Err(HandshakeError::Timeout)
    })
    .await
}

/// The connecting side: say hello, then check the answer.
pub async fn client_handshake(
    stream: &mut Stream,
    me: &ActorUid,
    token: &str,
    codec: &Codec,
) -> Result<ActorUid, HandshakeError> {
    timed(async {
        codec
            .write_msg(stream, &hello(me, token), &mut Vec::new())
            .await?;
        read_hello(stream, codec, token).await
    })
    .await
}

/// The accepting side: check the peer's user and hello, and only then
/// answer.
pub async fn server_handshake(
    stream: &mut Stream,
    peer_user: Option<u32>,
    me: &ActorUid,
    token: &str,
    codec: &Codec,
) -> Result<ActorUid, HandshakeError> {
    if let Some(user) = peer_user {
        if user != rustix::process::getuid().as_raw() {
            return Err(HandshakeError::WrongUser(user));
        }
    }
    timed(async {
        let peer = read_hello(stream, codec, token).await?;
        codec
            .write_msg(stream, &hello(me, token), &mut Vec::new())
            .await?;
        Ok(peer)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret("abcd", "abcd"));
        assert!(!same_secret("abcd", "abce"));
        assert!(!same_secret("abcd", "abc"));
    }
}

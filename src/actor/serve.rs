//! Connections: dialing another actor of the tree, accepting peers, and
//! serving the dialogs each connection brings, each in its own task.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use smol::future::FutureExt;

use crate::ipc::auth::{client_handshake, server_handshake};
use crate::ipc::{Addr, Channel, Incoming, IncomingDialogs, Listener, Side};
use crate::msg::{Msg, RemoteError};
use crate::task::{self, lock, Instrument};

use super::cancel;
use super::error;
use super::handle::Actor;
use super::refusals;

/// Dialing and connecting are an actor's own, but live with serving:
/// every connection it makes is served like an accepted one.
impl Actor {
    /// The connection to the root, made on first use and kept (the
    /// parent's, when the parent is the root). Subactors only.
    pub async fn root_channel(&self) -> Result<Channel, RemoteError> {
        if self.is_root() {
            return Err(RemoteError::new(
                "NotASubactor",
                "the root has no connection to itself",
                self.uid().clone(),
            ));
        }
        let mut cached = self.inner.root_chan.lock().await;
        if let Some(chan) = cached.as_ref().filter(|c| c.is_connected()) {
            return Ok(chan.clone());
        }
        let chan = match self.parent() {
            Some(parent) if self.inner.parent_addr.as_ref() == Some(&self.inner.root_addr) => {
                parent.clone()
            }
            _ => self.connect(&self.inner.root_addr).await?,
        };
        *cached = Some(chan.clone());
        Ok(chan)
    }

    /// Connects to another actor of the tree (the root, say) as a peer.
    pub async fn connect(&self, addr: &Addr) -> Result<Channel, RemoteError> {
        let (chan, incoming) = self
            .dial(addr)
            .await
            .map_err(|e| RemoteError::new("ConnectError", e, self.uid().clone()))?;
        serve_dialogs(self.clone(), chan.clone(), incoming);
        Ok(chan)
    }

    /// Connects to `addr` and proves this actor belongs to the tree; the
    /// caller serves the dialogs the peer opens.
    pub(super) async fn dial(&self, addr: &Addr) -> Result<(Channel, IncomingDialogs), String> {
        let inner = &self.inner;
        let mut stream = crate::ipc::transport::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let peer = client_handshake(&mut stream, &inner.uid, &inner.token, &inner.codec)
            .await
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        Ok(Channel::start(
            stream,
            inner.uid.clone(),
            peer,
            Side::Client,
            inner.codec,
        ))
    }
}

/// Accepts connections for the actor's whole life. A peer that fails the
/// handshake is logged and dropped; children being spawned are handed to
/// their nursery; any other authenticated peer is served.
pub(super) async fn accept_loop(actor: Actor, listener: Listener) {
    let handshakes = Arc::new(async_lock::Semaphore::new(MAX_HANDSHAKES));
    let who = actor.uid().to_string();
    let refused = refusals::Refusals::new(who.clone(), "refused a connection");
    let failed = refusals::Refusals::new(who, "accept failed");
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        let (mut stream, user) = match listener.accept().await {
            Ok(conn) => {
                backoff = ACCEPT_BACKOFF;
                conn
            }
            Err(e) => {
                failed.note(e.to_string());
                // Out of file descriptors, say: each retry would fail the
                // same way until some close, so wait longer each time.
                smol::Timer::after(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_AT_MOST);
                continue;
            }
        };
        let Some(slot) = handshakes.try_acquire_arc() else {
            log::debug!(
                "{}: {MAX_HANDSHAKES} connections in their handshake already: one more closed",
                actor.uid()
            );
            continue;
        };
        let (actor, refused) = (actor.clone(), refused.clone());
        task::spawn("handshake", async move {
            let inner = &actor.inner;
            let shaken =
                server_handshake(&mut stream, user, &inner.uid, &inner.token, &inner.codec).await;
            drop(slot);
            let peer = match shaken {
                Ok(peer) => peer,
                Err(e) => {
                    refused.note(e.to_string());
                    return;
                }
            };
            let (chan, incoming) = Channel::start(
                stream,
                inner.uid.clone(),
                peer.clone(),
                Side::Server,
                inner.codec,
            );
            let waiting = lock(&inner.pending_spawns).remove(&*peer.uuid);
            match waiting {
                Some(nursery) => {
                    let _ = nursery.send((chan, incoming)).await;
                }
                None => {
                    log::debug!("{}: peer {peer} connected", inner.uid);
                    serve_dialogs(actor.clone(), chan, incoming);
                }
            }
        })
        .detach();
    }
}

/// The first wait after a failed accept; it doubles with each failure in
/// a row, up to [`ACCEPT_BACKOFF_AT_MOST`].
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
const ACCEPT_BACKOFF_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);

/// How many accepted connections may be in their handshake at once.
/// Before it a peer is a stranger: each costs a task and a socket (its
/// frames are bounded by [`HELLO_MAX_FRAME`](crate::ipc::auth::HELLO_MAX_FRAME)),
/// and a flood of strangers must not grow the actor without bound.
const MAX_HANDSHAKES: usize = 256;

/// Serves the dialogs a peer opens, each in its own task.
pub(super) fn serve_dialogs(actor: Actor, chan: Channel, incoming: IncomingDialogs) {
    let name = format!("serve {}", chan.peer());
    incoming.serve_each(name, move |dialog| {
        let name = dialog_task_name(&dialog, &chan);
        task::spawn(name, run_dialog(actor.clone(), chan.clone(), dialog, false)).detach();
    });
}

/// `handler #cid from peer`: what a task dump shows for a served dialog.
pub(super) fn dialog_task_name(dialog: &Incoming, chan: &Channel) -> String {
    use std::fmt::Write;
    // Sized once and written piecewise: `format!` grew the string twice
    // and went through `core::fmt` for every part, per lock dialog.
    let peer = &chan.peer().name;
    let mut name = String::with_capacity(dialog.handler.len() + peer.len() + 28);
    name.push_str(&dialog.handler);
    let _ = write!(name, " #{}", dialog.cid);
    name.push_str(" from ");
    name.push_str(peer);
    name
}

/// Runs one handler to its end, a peer's cancel or the connection's loss,
/// and reports the outcome to the peer. A failure of the actor's main
/// entry goes through the crash hook first. Returns whether it succeeded.
pub(super) async fn run_dialog(
    actor: Actor,
    chan: Channel,
    mut dialog: Incoming,
    is_main: bool,
) -> bool {
    let cid = dialog.cid;
    let here = actor.uid().clone();
    let Some(handler) = actor.inner.handlers.get(&dialog.handler) else {
        let error = RemoteError::new(
            "UnknownHandler",
            format!("no handler named {:?}", dialog.handler),
            here,
        );
        log::warn!("{}: {} asked for {error}", actor.uid(), chan.peer());
        let _ = chan.send(&Msg::Error { cid, error }).await;
        return false;
    };
    let watch = dialog.take_cancel_watch();
    let args = std::mem::take(&mut dialog.args);
    let ctx = chan.accept(dialog, handler.spec);
    let token = cancel::Token::register();
    // Its panics are caught here and shown in the crash REPL or up the
    // tree, not printed over whichever REPL owns the terminal.
    let work =
        crate::debug::panic::ShownLater::new(token.scope((handler.run)(actor.clone(), ctx, args)));
    let work = AssertUnwindSafe(work).catch_unwind();
    let mut work = std::pin::pin!(work.instrument("handler"));
    let first = async { Some((&mut work).await) }
        .or(async {
            match &watch {
                Some(watch) => watch.cancelled().await,
                None => smol::future::pending().await,
            }
            None
        })
        .await;
    let outcome = match first {
        Some(done) => Some(done),
        // A handler inside `until_cancelled` is told, and ends by itself
        // after its teardown; any other is dropped here.
        None if token.cancel() => {
            log::info!(
                "{}: handler {cid} cancelled: waiting for its teardown",
                actor.uid()
            );
            Some(work.await)
        }
        None => None,
    };
    drop(watch);
    let reply = match outcome {
        Some(Ok(Ok(pld))) => Msg::Return { cid, pld },
        Some(Ok(Err(error))) => Msg::Error { cid, error },
        Some(Err(panic)) => Msg::Error {
            cid,
            error: error::box_panic(&*panic, &here),
        },
        None => Msg::Error {
            cid,
            error: RemoteError::new(error::CANCELLED_TYPE, "cancelled by the peer", here),
        },
    };
    let ok = matches!(reply, Msg::Return { .. });
    if let Msg::Error { error, .. } = &reply {
        if is_main && error.type_name != error::CANCELLED_TYPE {
            actor.crashed(error.to_string(), || error.clone()).await;
        }
        if error.type_name != error::CANCELLED_TYPE {
            log::info!("{}: handler {cid} failed: {error}", actor.uid());
        }
    }
    let _ = chan.send(&reply).await;
    ok
}

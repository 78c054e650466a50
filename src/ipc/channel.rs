//! `Channel`: one authenticated connection carrying many dialogs,
//! multiplexed by dialog id, with one reader task.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::codec::Codec;
use crate::ipc::dialog_error::DialogError;
use crate::ipc::transport::Stream;
use crate::msg::{ActorUid, Cid, Msg, Pld};
use async_channel::{unbounded, Receiver, Sender};

use crate::ipc::flag::Flag;
use crate::task::lock;

/// Which end of the connection this is: it decides the parity of the
/// dialog ids this end opens, so both ends can open dialogs freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The end that connected.
    Client,
    /// The end that accepted.
    Server,
}

/// A dialog the peer opened, waiting for its handler.
pub struct Incoming {
    /// The handler the peer asked for.
    pub handler: String,
    /// Its argument, still raw: the handler decodes it under its spec.
    pub args: Pld,
    /// The dialog, for `started`, streaming and the result.
    pub cid: Cid,
    pub(crate) rx: Receiver<Msg>,
    cancel: Option<CancelWatch>,
}

impl Incoming {
    /// The dialog's cancel watch, for whoever runs the handler. It is
    /// registered when the dialog arrives, so no cancel can slip past it;
    /// left here, it is dropped with the `Incoming`.
    pub fn take_cancel_watch(&mut self) -> Option<CancelWatch> {
        self.cancel.take()
    }
}

/// The dialogs a connection's peer opens, in the order they arrive.
pub struct IncomingDialogs(Receiver<Incoming>);

impl IncomingDialogs {
    /// The next dialog; `None` once the connection has ended and every
    /// dialog it brought was taken. Once this is dropped, dialogs that
    /// arrive are forgotten: this end keeps nothing of them, and their
    /// openers get no answer.
    pub async fn recv(&self) -> Option<Incoming> {
        self.0.recv().await.ok()
    }

    /// Hands each dialog to `serve`, in order, from a task of its own
    /// that ends with the connection. `serve` should only pass the
    /// dialog on (spawn its handler), never wait.
    pub fn serve_each(self, name: String, mut serve: impl FnMut(Incoming) + Send + 'static) {
        crate::task::spawn(name, async move {
            while let Some(dialog) = self.recv().await {
                serve(dialog);
            }
        })
        .detach();
    }
}

/// Tells a served dialog's runner that the peer cancelled it (or that the
/// connection closed), even while the handler does not read the dialog.
/// Dropping it stops the watch.
pub struct CancelWatch {
    flag: Flag,
    chan: Channel,
    cid: Cid,
}

impl CancelWatch {
    /// Returns once the peer cancels the dialog or the connection closes.
    pub async fn cancelled(&self) {
        self.flag.wait().await;
    }
}

impl Drop for CancelWatch {
    fn drop(&mut self) {
        self.chan.state().cancels.remove(&self.cid);
    }
}

/// One connection to a peer actor. Clones share it.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

struct Inner {
    local: ActorUid,
    peer: ActorUid,
    codec: Codec,
    stream: Stream,
    writer: smol::lock::Mutex<(Stream, Vec<u8>)>,
    state: Mutex<State>,
    next_cid: AtomicU64,
}

#[derive(Default)]
struct State {
    dialogs: HashMap<u64, Sender<Msg>>,
    cancels: HashMap<u64, Flag>,
    closed: Option<Arc<str>>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel(to {})", self.inner.peer)
    }
}

impl Channel {
    /// Starts serving an authenticated stream: spawns its reader task and
    /// returns the channel and the dialogs the peer opens.
    pub fn start(
        stream: Stream,
        local: ActorUid,
        peer: ActorUid,
        side: Side,
        codec: Codec,
    ) -> (Channel, IncomingDialogs) {
        let first = match side {
            Side::Client => 1,
            Side::Server => 2,
        };
        let chan = Channel {
            inner: Arc::new(Inner {
                local,
                peer,
                codec,
                stream: stream.clone(),
                writer: smol::lock::Mutex::new((stream.clone(), Vec::new())),
                state: Mutex::new(State::default()),
                next_cid: AtomicU64::new(first),
            }),
        };
        let (incoming_tx, incoming_rx) = unbounded();
        let name = format!("read {}", chan.inner.peer);
        crate::task::spawn(name, chan.clone().read_loop(stream, incoming_tx)).detach();
        (chan, IncomingDialogs(incoming_rx))
    }

    /// The actor at the other end.
    pub fn peer(&self) -> &ActorUid {
        &self.inner.peer
    }

    /// This actor.
    pub fn local(&self) -> &ActorUid {
        &self.inner.local
    }

    /// How many dialogs this end still tracks (open mailboxes and cancel
    /// watches): zero on an idle connection, or something leaks.
    pub fn live_dialogs(&self) -> usize {
        let state = self.state();
        let watched_only = state
            .cancels
            .keys()
            .filter(|cid| !state.dialogs.contains_key(cid));
        state.dialogs.len() + watched_only.count()
    }

    /// Whether the connection still carries messages.
    pub fn is_connected(&self) -> bool {
        self.state().closed.is_none()
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<Arc<str>> {
        self.state().closed.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The lock guards plain maps; a panic elsewhere cannot leave them
        // half-updated, so a poisoned lock is still good.
        lock(&self.inner.state)
    }

    /// Closes the connection: every dialog on it fails with `reason`.
    pub fn close(&self, reason: &str) {
        self.mark_closed(reason);
        self.inner.stream.shutdown();
    }

    fn mark_closed(&self, reason: &str) {
        let mut state = self.state();
        if state.closed.is_none() {
            state.closed = Some(reason.into());
        }
        // Dropping the senders ends every dialog's queue.
        state.dialogs.clear();
        for (_, watch) in state.cancels.drain() {
            watch.raise();
        }
    }

    /// A fresh id for a dialog this end opens (odd for the client side,
    /// even for the server's: the two ends never pick the same).
    pub(crate) fn next_cid(&self) -> Cid {
        self.inner.next_cid.fetch_add(2, Ordering::Relaxed)
    }

    pub(crate) fn register(&self, cid: Cid) -> Result<Receiver<Msg>, DialogError> {
        let mut state = self.state();
        if let Some(reason) = &state.closed {
            return Err(DialogError::Closed(reason.clone()));
        }
        let (tx, rx) = unbounded();
        state.dialogs.insert(cid, tx);
        Ok(rx)
    }

    pub(crate) fn forget(&self, cid: Cid) {
        self.state().dialogs.remove(&cid);
    }

    /// Sends one message.
    pub(crate) async fn send(&self, msg: &Msg) -> Result<(), DialogError> {
        if let Some(reason) = self.close_reason() {
            return Err(DialogError::Closed(reason));
        }
        let mut writer = self.inner.writer.lock().await;
        let (stream, buf) = &mut *writer;
        if let Err(e) = self.inner.codec.write_msg(stream, msg, buf).await {
            let reason = format!("write to {} failed: {e}", self.inner.peer);
            drop(writer);
            self.close(&reason);
            return Err(DialogError::Closed(reason.into()));
        }
        Ok(())
    }

    pub(crate) fn codec(&self) -> &Codec {
        &self.inner.codec
    }

    async fn read_loop(self, stream: Stream, incoming: Sender<Incoming>) {
        // Buffered: one read syscall brings in the prefix, the body and
        // whatever frames follow, instead of one read per prefix and body.
        let mut stream = smol::io::BufReader::with_capacity(64 * 1024, stream);
        let mut buf = Vec::new();
        let reason = loop {
            let msg = match self
                .inner
                .codec
                .read_msg_buffered(&mut stream, &mut buf)
                .await
            {
                Ok(Some(msg)) => msg,
                Ok(None) => break "peer closed the connection".to_owned(),
                Err(e) => {
                    let reason = format!("bad frame from {}: {e}", self.inner.peer);
                    log::warn!("closing connection: {reason}");
                    break reason;
                }
            };
            if let Err(reason) = self.route(msg, &incoming) {
                log::warn!("closing connection to {}: {reason}", self.inner.peer);
                break reason;
            }
        };
        log::debug!("connection to {} ended: {reason}", self.inner.peer);
        self.close(&reason);
    }

    /// Hands one message to its dialog; a protocol violation is an error
    /// that closes the connection.
    fn route(&self, msg: Msg, incoming: &Sender<Incoming>) -> Result<(), String> {
        match msg {
            Msg::Hello(_) => Err("Hello after the handshake".into()),
            Msg::Start { cid, handler, pld } => {
                let (rx, cancel) = {
                    let mut state = self.state();
                    if state.dialogs.contains_key(&cid) {
                        return Err(format!("dialog {cid} opened twice"));
                    }
                    let (tx, rx) = unbounded();
                    let cancel = Flag::new();
                    state.dialogs.insert(cid, tx);
                    state.cancels.insert(cid, cancel.clone());
                    (rx, cancel)
                };
                let incoming_dialog = Incoming {
                    handler,
                    args: pld,
                    cid,
                    rx,
                    cancel: Some(CancelWatch {
                        flag: cancel,
                        chan: self.clone(),
                        cid,
                    }),
                };
                if incoming.try_send(incoming_dialog).is_err() {
                    // Nobody serves this connection's dialogs.
                    self.forget(cid);
                    log::debug!("no server for dialogs from {}", self.inner.peer);
                }
                Ok(())
            }
            msg => {
                let Some(cid) = msg.cid() else {
                    unreachable!("only Hello has no cid")
                };
                let tx = {
                    let mut state = self.state();
                    if let Msg::Cancel { .. } = msg {
                        if let Some(watch) = state.cancels.remove(&cid) {
                            watch.raise();
                        }
                    }
                    state.dialogs.get(&cid).cloned()
                };
                match tx {
                    Some(tx) => {
                        // A dialog that ended meanwhile drops it.
                        let _ = tx.try_send(msg);
                    }
                    // A message racing the end of its dialog (a cancel
                    // crossing a result): nothing is waiting for it.
                    None => log::debug!(
                        "{} for finished dialog {cid} from {}",
                        msg.kind(),
                        self.inner.peer
                    ),
                }
                Ok(())
            }
        }
    }
}

//! [`LockDialog`]: one lock dialog between a subactor and the root, seen
//! from either end, over whatever IPC the host has.
//!
//! The dialog carries the lock messages of DESIGN's spec in order: the
//! subactor's `LockRequest` opens it (the host delivers it with the
//! opening, see [`Host::open_lock_dialog`](super::host::Host::open_lock_dialog)),
//! the root answers `started(LockStatus { locked: true })` once it is the
//! subactor's turn, the subactor sends `LockRelease` as a stream item,
//! and the root ends the dialog with `LockStatus { locked: false }`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::DebugError;
use crate::msg::{ActorUid, Cid, LockMsg, LockStatus};

/// Tells whether a lock holder's connection is alive.
pub type Liveness = Arc<dyn Fn() -> bool + Send + Sync>;

/// A boxed future that may move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One lock dialog, implemented by a host over its own IPC (the crate's
/// runtime implements it for its `ipc::Context`). Each method is what one
/// end does; an end never calls the other end's methods.
///
/// A host whose messages travel as CBOR or anything else converts them to
/// [`LockMsg`] here; the root's logic ([`lock_stdio_for_peer`]) and the
/// subactor's ([`acquire_debug_lock`]) are the debugger's.
///
/// [`lock_stdio_for_peer`]: super::lock_dialog::lock_stdio_for_peer
/// [`acquire_debug_lock`]: super::lock_dialog::acquire_debug_lock
///
/// ```
/// use smol_devx::debug::dialog::LockDialog;
/// use smol_devx::debug::DebugError;
/// use smol_devx::msg::{ActorUid, LockMsg, LockStatus};
///
/// /// One end of a dialog over two in-process channels.
/// struct Chan {
///     peer: ActorUid,
///     tx: async_channel::Sender<LockMsg>,
///     rx: async_channel::Receiver<LockMsg>,
/// }
///
/// impl LockDialog for Chan {
///     fn peer(&self) -> ActorUid { self.peer.clone() }
///     fn cid(&self) -> u64 { 1 }
///     async fn send_started(&mut self, s: LockStatus) -> Result<(), DebugError> {
///         self.send(LockMsg::LockStatus(s)).await
///     }
///     async fn wait_started(&mut self) -> Result<LockMsg, DebugError> {
///         self.rx.recv().await.map_err(|_| DebugError::Request("root gone".into()))
///     }
///     async fn send(&mut self, msg: LockMsg) -> Result<(), DebugError> {
///         self.tx.send(msg).await.map_err(|_| DebugError::Request("peer gone".into()))
///     }
///     async fn recv(&mut self) -> Result<Option<LockMsg>, DebugError> {
///         Ok(self.rx.recv().await.ok())
///     }
///     async fn result(&mut self) -> Result<LockMsg, DebugError> {
///         self.wait_started().await
///     }
/// }
/// ```
pub trait LockDialog: Send {
    /// The actor at the other end.
    fn peer(&self) -> ActorUid;
    /// The dialog's id (unique among the dialogs of one peer).
    fn cid(&self) -> Cid;
    /// Root: the dialog's `started` value.
    fn send_started(
        &mut self,
        status: LockStatus,
    ) -> impl Future<Output = Result<(), DebugError>> + Send;
    /// Subactor: waits for the `started` value.
    fn wait_started(&mut self) -> impl Future<Output = Result<LockMsg, DebugError>> + Send;
    /// Either side: one stream item.
    fn send(&mut self, msg: LockMsg) -> impl Future<Output = Result<(), DebugError>> + Send;
    /// Either side: the next stream item; `None` when the stream ended
    /// (the peer dropped its end).
    fn recv(&mut self) -> impl Future<Output = Result<Option<LockMsg>, DebugError>> + Send;
    /// Subactor: waits for the dialog's final result.
    fn result(&mut self) -> impl Future<Output = Result<LockMsg, DebugError>> + Send;
    /// Root: tells, at any later time, whether the peer is still
    /// connected; ctrl-c finds stale holders with it. The default says
    /// always.
    fn liveness(&self) -> Liveness {
        std::sync::Arc::new(|| true)
    }
    /// Subactor: the request was abandoned before its end (its task was
    /// cancelled). Tells the root and resolves once the root has ended its
    /// side, so that the next request of the same task cannot overtake it
    /// and be refused as a double one. The default just drops the dialog:
    /// enough for a host whose root sees a dropped end as the stream's
    /// end ([`LockDialog::recv`] gives `None`).
    fn abandon(self) -> impl Future<Output = ()> + Send + 'static
    where
        Self: Sized + 'static,
    {
        drop(self);
        async {}
    }
}

/// The object-safe form of [`LockDialog`], behind [`BoxedDialog`].
trait Erased: Send {
    fn peer(&self) -> ActorUid;
    fn cid(&self) -> Cid;
    fn send_started(&mut self, status: LockStatus) -> BoxFuture<'_, Result<(), DebugError>>;
    fn wait_started(&mut self) -> BoxFuture<'_, Result<LockMsg, DebugError>>;
    fn send(&mut self, msg: LockMsg) -> BoxFuture<'_, Result<(), DebugError>>;
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<LockMsg>, DebugError>>;
    fn result(&mut self) -> BoxFuture<'_, Result<LockMsg, DebugError>>;
    fn liveness(&self) -> Liveness;
    fn abandon(self: Box<Self>) -> BoxFuture<'static, ()>;
}

impl<D: LockDialog + 'static> Erased for D {
    fn peer(&self) -> ActorUid {
        LockDialog::peer(self)
    }
    fn cid(&self) -> Cid {
        LockDialog::cid(self)
    }
    fn send_started(&mut self, status: LockStatus) -> BoxFuture<'_, Result<(), DebugError>> {
        Box::pin(LockDialog::send_started(self, status))
    }
    fn wait_started(&mut self) -> BoxFuture<'_, Result<LockMsg, DebugError>> {
        Box::pin(LockDialog::wait_started(self))
    }
    fn send(&mut self, msg: LockMsg) -> BoxFuture<'_, Result<(), DebugError>> {
        Box::pin(LockDialog::send(self, msg))
    }
    fn recv(&mut self) -> BoxFuture<'_, Result<Option<LockMsg>, DebugError>> {
        Box::pin(LockDialog::recv(self))
    }
    fn result(&mut self) -> BoxFuture<'_, Result<LockMsg, DebugError>> {
        Box::pin(LockDialog::result(self))
    }
    fn liveness(&self) -> Liveness {
        LockDialog::liveness(self)
    }
    fn abandon(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(LockDialog::abandon(*self))
    }
}

/// Any [`LockDialog`], boxed: what a [`Host`](super::host::Host) hands
/// the debugger when it opens a dialog with the root.
pub struct BoxedDialog(Box<dyn Erased>);

impl BoxedDialog {
    /// Boxes `dialog`.
    pub fn new(dialog: impl LockDialog + 'static) -> Self {
        Self(Box::new(dialog))
    }
}

impl LockDialog for BoxedDialog {
    fn peer(&self) -> ActorUid {
        self.0.peer()
    }
    fn cid(&self) -> Cid {
        self.0.cid()
    }
    fn send_started(
        &mut self,
        status: LockStatus,
    ) -> impl Future<Output = Result<(), DebugError>> + Send {
        self.0.send_started(status)
    }
    fn wait_started(&mut self) -> impl Future<Output = Result<LockMsg, DebugError>> + Send {
        self.0.wait_started()
    }
    fn send(&mut self, msg: LockMsg) -> impl Future<Output = Result<(), DebugError>> + Send {
        self.0.send(msg)
    }
    fn recv(&mut self) -> impl Future<Output = Result<Option<LockMsg>, DebugError>> + Send {
        self.0.recv()
    }
    fn result(&mut self) -> impl Future<Output = Result<LockMsg, DebugError>> + Send {
        self.0.result()
    }
    fn liveness(&self) -> Liveness {
        self.0.liveness()
    }
    fn abandon(self) -> impl Future<Output = ()> + Send + 'static {
        self.0.abandon()
    }
}

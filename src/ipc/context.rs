//! `Context`: one dialog between two actors. The opener starts it with a
//! handler name; the handler answers `started`, both sides may stream
//! items, and the handler ends it with a result or an error. Either side
//! may cancel.
//!
//! Every payload of a dialog is decoded under the pld spec the dialog was
//! opened (or accepted) with, passed to the codec explicitly. A payload
//! outside the spec fails the dialog with a typed error, is reported to
//! the peer, and closes the connection.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{encode_pld, PldSpec};
use crate::ipc::channel::{Channel, Incoming};
pub use crate::ipc::dialog_error::DialogError;
use crate::msg::{ActorUid, Cid, Msg, Pld, RemoteError};

/// Dialogs over a channel are contexts: opened here, or accepted from
/// the peer.
impl Channel {
    /// Opens a dialog running `handler` in the peer with `args`; its
    /// payloads are decoded under `spec`.
    pub async fn open(
        &self,
        handler: &str,
        args: Pld,
        spec: &'static PldSpec,
    ) -> Result<Context, DialogError> {
        let cid = self.next_cid();
        let rx = self.register(cid)?;
        let ctx = Context::new(self.clone(), cid, rx, spec, handler.to_owned());
        self.send(&Msg::Start {
            cid,
            handler: handler.to_owned(),
            pld: args,
        })
        .await?;
        Ok(ctx)
    }

    /// Accepts a dialog the peer opened, decoding its payloads under
    /// `spec`.
    pub fn accept(&self, incoming: Incoming, spec: &'static PldSpec) -> Context {
        Context::new(
            self.clone(),
            incoming.cid,
            incoming.rx,
            spec,
            incoming.handler,
        )
    }
}

/// One dialog, from either side. Dropping it forgets the dialog locally
/// (late messages for it are ignored); use [`Context::cancel`] to tell
/// the peer.
pub struct Context {
    chan: Channel,
    cid: Cid,
    rx: async_channel::Receiver<Msg>,
    spec: &'static PldSpec,
    handler: String,
    /// A final message seen while streaming, kept for `result`.
    last: Option<Msg>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Context({} #{} with {})",
            self.handler,
            self.cid,
            self.chan.peer()
        )
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        self.chan.forget(self.cid);
    }
}

impl Context {
    pub(crate) fn new(
        chan: Channel,
        cid: Cid,
        rx: async_channel::Receiver<Msg>,
        spec: &'static PldSpec,
        handler: String,
    ) -> Self {
        Self {
            chan,
            cid,
            rx,
            spec,
            handler,
            last: None,
        }
    }

    /// The dialog id.
    pub fn cid(&self) -> Cid {
        self.cid
    }

    /// The actor at the other end.
    pub fn peer(&self) -> &ActorUid {
        self.chan.peer()
    }

    /// The connection the dialog runs on.
    pub fn channel(&self) -> &Channel {
        &self.chan
    }

    /// The handler this dialog runs.
    pub fn handler(&self) -> &str {
        &self.handler
    }

    /// The pld spec the dialog decodes under.
    pub fn spec(&self) -> &'static PldSpec {
        self.spec
    }

    /// Decodes a payload under the dialog's spec. A payload the spec or
    /// the expected type refuses is reported to the peer and closes the
    /// connection: a peer that breaks the dialog's contract is not talked
    /// to again.
    pub async fn decode<T: DeserializeOwned>(&self, pld: &Pld) -> Result<T, DialogError> {
        let codec = *self.chan.codec();
        let decoded = codec.decode_pld::<T>(self.spec, pld);
        match decoded {
            Ok(value) => Ok(value),
            Err(e) => {
                let reason = format!(
                    "dialog {} ({}) from {}: {e}",
                    self.cid,
                    self.handler,
                    self.chan.peer()
                );
                log::warn!("refusing payload, closing the connection: {reason}");
                // Tell the peer why before hanging up; it may be gone already.
                let error = RemoteError::new("MsgTypeError", e.to_string(), self.local_uid());
                let _ = self.send_error(error).await;
                self.chan.close(&reason);
                Err(DialogError::Codec(e))
            }
        }
    }

    fn local_uid(&self) -> ActorUid {
        self.chan.local().clone()
    }

    fn encode<T: Serialize>(value: &T) -> Result<Pld, DialogError> {
        encode_pld(value).map_err(DialogError::Codec)
    }

    async fn next(&mut self) -> Result<Msg, DialogError> {
        if let Some(msg) = self.last.take() {
            return Ok(msg);
        }
        self.rx.recv().await.map_err(|_| {
            DialogError::Closed(
                self.chan
                    .close_reason()
                    .unwrap_or_else(|| "dialog forgotten".into()),
            )
        })
    }

    /// Opener: waits for the handler's `started` value.
    pub async fn started<T: DeserializeOwned>(&mut self) -> Result<T, DialogError> {
        match self.next().await? {
            Msg::Started { pld, .. } => self.decode(&pld).await,
            other => Err(self.unexpected(other, "Started")),
        }
    }

    /// Handler: reports that it runs, with a first value.
    pub async fn send_started<T: Serialize>(&self, value: &T) -> Result<(), DialogError> {
        self.send_started_pld(Self::encode(value)?).await
    }

    /// [`send_started`](Self::send_started) with the value encoded
    /// already.
    pub(crate) async fn send_started_pld(&self, pld: Pld) -> Result<(), DialogError> {
        self.chan.send(&Msg::Started { cid: self.cid, pld }).await
    }

    /// Sends one stream item.
    pub async fn send<T: Serialize>(&self, item: &T) -> Result<(), DialogError> {
        self.send_pld(Self::encode(item)?).await
    }

    /// [`send`](Self::send) with the item encoded already.
    pub(crate) async fn send_pld(&self, pld: Pld) -> Result<(), DialogError> {
        self.chan.send(&Msg::Yield { cid: self.cid, pld }).await
    }

    /// Receives one stream item; `None` when the peer stopped the stream
    /// or the dialog ended (its result stays available to `result`).
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, DialogError> {
        match self.next().await? {
            Msg::Yield { pld, .. } => self.decode(&pld).await.map(Some),
            Msg::Stop { .. } => Ok(None),
            last @ (Msg::Return { .. } | Msg::Error { .. }) => {
                self.last = Some(last);
                Ok(None)
            }
            other => Err(self.unexpected(other, "Yield")),
        }
    }

    /// Tells the peer no more items will come.
    pub async fn stop(&self) -> Result<(), DialogError> {
        self.chan.send(&Msg::Stop { cid: self.cid }).await
    }

    /// Opener: waits for the dialog's final result, skipping stream items
    /// nobody read.
    pub async fn result<T: DeserializeOwned>(&mut self) -> Result<T, DialogError> {
        let pld = self.result_raw().await?;
        self.decode(&pld).await
    }

    /// Like [`Context::result`], leaving the payload undecoded.
    pub async fn result_raw(&mut self) -> Result<Pld, DialogError> {
        loop {
            match self.next().await? {
                Msg::Return { pld, .. } => return Ok(pld),
                Msg::Yield { .. } | Msg::Stop { .. } | Msg::Started { .. } => continue,
                other => return Err(self.unexpected(other, "Return")),
            }
        }
    }

    /// Waits until the peer cancels this dialog or the connection closes
    /// (for a handler that serves until told to stop).
    pub async fn cancelled(&mut self) -> DialogError {
        loop {
            match self.next().await {
                Ok(Msg::Cancel { .. }) => return DialogError::Cancelled,
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    }

    /// Asks the peer to cancel the dialog.
    pub async fn cancel(&self) -> Result<(), DialogError> {
        self.chan.send(&Msg::Cancel { cid: self.cid }).await
    }

    /// Handler: ends the dialog with a result.
    pub async fn send_return(&self, pld: Pld) -> Result<(), DialogError> {
        self.chan.send(&Msg::Return { cid: self.cid, pld }).await
    }

    /// Handler: ends the dialog with an error.
    pub async fn send_error(&self, error: RemoteError) -> Result<(), DialogError> {
        self.chan
            .send(&Msg::Error {
                cid: self.cid,
                error,
            })
            .await
    }

    fn unexpected(&self, msg: Msg, wanted: &str) -> DialogError {
        match msg {
            Msg::Error { error, .. } => DialogError::Remote(error),
            Msg::Cancel { .. } => DialogError::Cancelled,
            other => DialogError::Protocol(format!(
                "dialog {} ({}): expected {wanted}, got {}",
                self.cid,
                self.handler,
                other.kind()
            )),
        }
    }
}

//! [`Portal`]: the way to a child's handlers.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{encode_pld, PldSpec};
use crate::ipc::{Channel, Context, DialogError};
use crate::msg::ActorUid;

/// The way to a child's handlers: opens dialogs on its connection.
#[derive(Clone, Debug)]
pub struct Portal {
    pub(super) chan: Channel,
}

impl Portal {
    /// The child's identity.
    pub fn uid(&self) -> &ActorUid {
        self.chan.peer()
    }

    /// Opens a dialog with the child's handler `handler`.
    pub async fn open<A: Serialize>(
        &self,
        handler: &str,
        args: &A,
        spec: &'static PldSpec,
    ) -> Result<Context, DialogError> {
        let args = encode_pld(args).map_err(DialogError::Codec)?;
        self.chan.open(handler, args, spec).await
    }

    /// Runs the child's handler `handler` and returns its result.
    pub async fn run<A: Serialize, R: DeserializeOwned>(
        &self,
        handler: &str,
        args: &A,
    ) -> Result<R, DialogError> {
        self.open(handler, args, &PldSpec::ANY)
            .await?
            .result()
            .await
    }
}

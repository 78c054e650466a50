//! The payload spec bound to a task: the lock dialog's task and an
//! application task of the same actor decode side by side, each under
//! its own [`PldSpec`], through a task-local, never a process-wide
//! setting.

use std::future::Future;

use serde::de::DeserializeOwned;

use super::local::Scope;
use crate::codec::{Codec, CodecError, PldSpec};
use crate::msg::Pld;

crate::task_local! {
    static PLD_SPEC: &'static PldSpec;
}

/// Runs `fut` with `spec` as the payload spec of every [`decode_pld`] it
/// does.
///
/// The binding lives in the future, not in the process: other tasks keep
/// theirs, and it is gone the moment `fut` completes or is dropped.
///
/// ```
/// use smol_devx::codec::{encode_pld, PldSpec};
/// use smol_devx::msg::{LockMsg, LockRelease, ActorUid};
/// use smol_devx::task::{decode_pld, with_pld_spec};
///
/// let release = LockMsg::LockRelease(LockRelease {
///     subactor_uid: ActorUid::new("sub", "1"),
///     cid: 3,
/// });
/// let pld = encode_pld(&release).unwrap();
/// let got: LockMsg = smol::block_on(with_pld_spec(&PldSpec::LOCK, async {
///     decode_pld(&pld)
/// }))
/// .unwrap();
/// assert_eq!(got, release);
/// // Under the lock spec, a payload that is not a lock message is refused.
/// let other = encode_pld(&5u32).unwrap();
/// let refused = smol::block_on(with_pld_spec(&PldSpec::LOCK, async {
///     decode_pld::<u32>(&other)
/// }));
/// assert!(refused.is_err());
/// ```
pub fn with_pld_spec<F: Future>(spec: &'static PldSpec, fut: F) -> Scope<&'static PldSpec, F> {
    PLD_SPEC.scope(spec, fut)
}

/// The payload spec of the running task: the innermost [`with_pld_spec`]
/// around it, or [`PldSpec::ANY`].
pub fn current_pld_spec() -> &'static PldSpec {
    PLD_SPEC.get().unwrap_or(&PldSpec::ANY)
}

/// Decodes a payload under the running task's spec, with the default
/// limits. See [`Codec::decode_pld`].
pub fn decode_pld<T: DeserializeOwned>(pld: &Pld) -> Result<T, CodecError> {
    Codec::default().decode_pld(current_pld_spec(), pld)
}

//! Where a host comes in: one call per process, before anything can
//! prompt.

use super::host::{self, AlreadyInstalled, Host};

/// Installs this process's host, once: snapshots the terminal mode (in
/// the root, see [`terminal`](super::terminal)) and starts watching
/// ctrl-c, SIGTERM and SIGHUP (see [`sigint`](super::sigint)).
///
/// ```no_run
/// use smol_devx::debug::dialog::{BoxFuture, BoxedDialog};
/// use smol_devx::debug::host::Host;
/// use smol_devx::debug::DebugError;
/// use smol_devx::msg::{ActorUid, LockRequest};
///
/// /// A process with no tree around it: the root of itself.
/// struct Alone;
///
/// impl Host for Alone {
///     fn uid(&self) -> ActorUid {
///         ActorUid::new("cli", "1")
///     }
///     fn is_root(&self) -> bool {
///         true
///     }
///     fn open_lock_dialog(
///         &self,
///         _: LockRequest,
///     ) -> BoxFuture<'static, Result<BoxedDialog, DebugError>> {
///         Box::pin(async { Err(DebugError::NoRoot) })
///     }
/// }
///
/// smol_devx::debug::install(Alone).expect("the first host of this process");
/// ```
pub fn install(host: impl Host) -> Result<(), AlreadyInstalled> {
    let is_root = host.is_root();
    host::set(host)?;
    if is_root {
        super::terminal::snapshot();
    }
    super::sigint::watch();
    Ok(())
}

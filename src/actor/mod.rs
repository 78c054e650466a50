//! The actor tree: a root process that spawns subactor processes (which
//! may spawn their own), each with an identity, a listening address, a
//! connection to its parent and the address of the root.
//!
//! A program declares its entry functions and dialog handlers on a
//! [`Runtime`] and calls [`Runtime::run`] from `main`. The same executable
//! is the root when started by a user and a subactor when re-executed by
//! its parent: `run` tells the two apart by the environment and
//! dispatches.
//!
//! ```no_run
//! use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
//! use smol_devx::msg::RemoteError;
//!
//! async fn double(_actor: Actor, x: u64) -> Result<u64, std::io::Error> {
//!     Ok(2 * x)
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     Runtime::new()
//!         .entry("double", double)
//!         .run(|actor| async move {
//!             let mut nursery = Nursery::new(&actor);
//!             let child = nursery.run_in_actor(ActorSpec::new("double"), &21u64).await?;
//!             nursery.join().await?;
//!             assert_eq!(nursery.result::<u64>(child)?, 42);
//!             Ok::<_, RemoteError>(())
//!         })
//! }
//! ```

pub mod cancel;
pub mod debugger;
mod error;
mod handle;
mod nursery;
mod portal;
mod process;
mod refusals;
mod runtime;
mod serve;

pub use error::CANCELLED_TYPE;
pub use handle::{Actor, BootHook, CrashHook, ExitHook, LiveChild, TeardownHook, CANCELLED_EXIT};
pub use nursery::{ActorSpec, ChildId, Nursery};
pub use portal::Portal;
pub use runtime::Runtime;

/// Environment a parent passes to a subactor.
pub mod env {
    /// The entry (handler name) the subactor runs; its presence makes a
    /// process a subactor.
    pub const ENTRY: &str = "SMOL_DEVX_ENTRY";
    /// The subactor's name.
    pub const NAME: &str = "SMOL_DEVX_NAME";
    /// The subactor's uuid.
    pub const UUID: &str = "SMOL_DEVX_UUID";
    /// The parent's address.
    pub const PARENT: &str = "SMOL_DEVX_PARENT";
    /// The root's address.
    pub const ROOT: &str = "SMOL_DEVX_ROOT";
    /// The per-tree secret. A root started with it set uses it (tests,
    /// hosts that hand it out); otherwise the root makes a fresh one.
    pub const TOKEN: &str = "SMOL_DEVX_TOKEN";
    /// `1` when the subactor runs in debug mode.
    pub const DEBUG: &str = "SMOL_DEVX_DEBUG";
    /// `tcp` to use TCP on loopback instead of Unix sockets.
    pub const TRANSPORT: &str = "SMOL_DEVX_TRANSPORT";

    use std::sync::Mutex;

    use crate::task::lock;

    static PASSED_ON: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

    /// Sets `key=value` in the environment of every subactor this process
    /// spawns from now on (and, through them, of their own children when
    /// they pass it on). A later value for the same key replaces the
    /// earlier one. This process's own environment is left alone:
    /// changing it while threads run is unsound in libc.
    pub fn pass_on(key: &str, value: &str) {
        let mut vars = lock(&PASSED_ON);
        vars.retain(|(k, _)| k != key);
        vars.push((key.to_owned(), value.to_owned()));
    }

    /// The variables given to [`pass_on`].
    pub(crate) fn passed_on() -> Vec<(String, String)> {
        lock(&PASSED_ON).clone()
    }
}

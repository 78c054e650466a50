//! Scenario 8: the root fails while its children are in, or queued for,
//! their crash REPLs. `Nursery::abort` waits until no one holds or waits
//! for the terminal before it tears the tree down, then the root opens
//! its own crash REPL.
//!
//! `cargo run --example multi_subactor_root_errors`, then `c` at each
//! prompt.

use std::time::Duration;

use smol_devx::actor::debugger::install;
use smol_devx::actor::{ActorSpec, Nursery, Runtime};
use smol_devx::msg::RemoteError;

mod common;
use common::{name_error, spawn_error};

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("name_error", name_error)
        .entry("spawn_error", spawn_error)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            nursery
                .run_in_actor(ActorSpec::new("name_error"), &())
                .await?;
            nursery
                .run_in_actor(ActorSpec::new("spawn_error"), &())
                .await?;
            // The children are failing meanwhile: the root fails too.
            smol::Timer::after(Duration::from_millis(1000)).await;
            let err = RemoteError::new("AssertionError", "assert 0", root.uid().clone());
            Err::<(), _>(nursery.abort(err).await)
        })
}

//! Scenario 5: a subactor's entry fails. Its own crash REPL opens first;
//! after `c`, the error goes to the root boxed as a RemoteActorError,
//! and the root's crash REPL shows it; after `c` there the program exits
//! non-zero.
//!
//! `cargo run --example subactor_error`, then `c`, `c`.

use smol_devx::actor::debugger::install;
use smol_devx::actor::{ActorSpec, Nursery, Runtime};
use smol_devx::msg::RemoteError;

mod common;
use common::name_error;

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("name_error", name_error)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            nursery
                .run_in_actor(ActorSpec::new("name_error"), &())
                .await?;
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

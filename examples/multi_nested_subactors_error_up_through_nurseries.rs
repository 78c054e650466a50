//! Scenario 9: an error three nurseries down climbs to the root. Each
//! actor on the way opens its crash REPL on it, innermost first, and
//! each boxed error still names its source, `name_error`.
//!
//! `cargo run --example multi_nested_subactors_error_up_through_nurseries`,
//! then `c` at each of the five prompts.

use smol_devx::actor::debugger::install;
use smol_devx::actor::{ActorSpec, Nursery, Runtime};
use smol_devx::msg::RemoteError;

mod common;
use common::{name_error, spawn_until};

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("name_error", name_error)
        .entry("spawn_until", spawn_until)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            let spawner = ActorSpec::new("spawn_until").name("spawner0");
            nursery.run_in_actor(spawner, &2u32).await?;
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

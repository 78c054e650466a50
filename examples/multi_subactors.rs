//! The main demo (scenario 6): three subactors of one root share one
//! terminal. `breakpoint_forever` pauses in a loop, `name_error` crashes,
//! `spawn_error` spawns `name_error_1`, which crashes too. The tree lock
//! hands the terminal to one actor at a time, in request order; each
//! header says who waits.
//!
//! `cargo run --example multi_subactors`, then at each `(devx)` prompt:
//! `c` hands the terminal on; `p round`, `bt`, `l` or `lock` look around.
//! Crash REPLs come first from the actors that failed, innermost first.
//! The root waits for the debugger before it tears anything down, so
//! once both crashes were shown, `q` in `breakpoint_forever` lets the
//! root open its own crash REPL on the first failure; `c` there ends it.

use smol_devx::actor::debugger::install;
use smol_devx::actor::{ActorSpec, Nursery, Runtime};
use smol_devx::msg::RemoteError;

mod common;
use common::{breakpoint_forever, name_error, spawn_error};

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("breakpoint_forever", breakpoint_forever)
        .entry("name_error", name_error)
        .entry("spawn_error", spawn_error)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            for entry in ["breakpoint_forever", "name_error", "spawn_error"] {
                nursery.run_in_actor(ActorSpec::new(entry), &()).await?;
            }
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

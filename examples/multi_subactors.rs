//! The main demo: three subactors of one root share one terminal. Each
//! pauses; the tree lock hands the terminal to one at a time, in request
//! order, and each REPL's header says who waits.
//!
//! `cargo run --example multi_subactors`, then at each `(devx)` prompt:
//! `c` hands the terminal on, `p round` shows a captured value, `bt` the
//! backtrace, `lock` the lock's state. `breakpoint_forever` pauses
//! forever: `q` there ends the demo (its parent, the root, reports the
//! quit and cancels the rest).
//!
//! Scenario 6 of SCENARIOS.md also has crashing children (`name_error`,
//! `spawn_error`); they join this demo with crash handling.

use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::pause::PauseError;
use smol_devx::debug::tty::install;
use smol_devx::msg::RemoteError;

async fn breakpoint_forever(_actor: Actor, _: ()) -> Result<(), PauseError> {
    for round in 0u32.. {
        smol_devx::pause!(round).await?;
    }
    Ok(())
}

async fn pause_twice(_actor: Actor, _: ()) -> Result<(), PauseError> {
    for round in 0u32..2 {
        smol_devx::pause!(round).await?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("breakpoint_forever", breakpoint_forever)
        .entry("pause_twice", pause_twice)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            nursery
                .run_in_actor(ActorSpec::new("breakpoint_forever"), &())
                .await?;
            for name in ["pauser_a", "pauser_b"] {
                nursery
                    .run_in_actor(ActorSpec::new("pause_twice").name(name), &())
                    .await?;
            }
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

//! Inspecting a paused actor without capturing anything first. The root
//! spawns `inspector`, whose entry calls `fn_with_state()`, which pauses
//! with nothing captured. `locals` lists `name`, `nums` and `port`; `p
//! port` prints 8080; `up` moves to the entry's frame (its own locals),
//! `down` comes back; `c` ends the program.
//!
//! `cargo run --example locals`, then `locals`, `p port`, `up`, `locals`,
//! `down`, `c`. The values come from gdb (rust-gdb when installed).

use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::pause::PauseError;
use smol_devx::msg::RemoteError;

/// Holds some state across its pause.
async fn fn_with_state() -> Result<Vec<i32>, PauseError> {
    let name = String::from("devx");
    let nums = vec![1, 2, 3];
    let port: u16 = 8080;
    smol_devx::pause!().await?;
    println!("{name} serves {} numbers on port {port}", nums.len());
    Ok(nums)
}

/// `inspector`'s entry.
async fn inspector(_actor: Actor, rounds: u32) -> Result<usize, PauseError> {
    let mut total = 0;
    for _ in 0..rounds {
        total += fn_with_state().await?.len();
    }
    Ok(total)
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("inspector", inspector)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            nursery
                .run_in_actor(ActorSpec::new("inspector"), &1u32)
                .await?;
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

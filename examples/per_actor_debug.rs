//! Scenario 12: debug mode for one child only. The root and `crash_boi`
//! run without it; `debugged_boi` runs with it. Both fail: only
//! `debugged_boi` opens a crash REPL, and the root waits for it before
//! tearing the tree down; `crash_boi`'s error ends the program.
//!
//! `cargo run --example per_actor_debug`, then `c`.

use std::time::Duration;

use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::msg::RemoteError;

async fn fail(actor: Actor, after_ms: u64) -> Result<(), std::io::Error> {
    smol::Timer::after(Duration::from_millis(after_ms)).await;
    Err(std::io::Error::other(format!(
        "{} gave up",
        actor.uid().name
    )))
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new())
        .entry("fail", fail)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            let debugged = ActorSpec::new("fail").name("debugged_boi").debug_mode(true);
            nursery.run_in_actor(debugged, &0u64).await?;
            let plain = ActorSpec::new("fail").name("crash_boi");
            nursery.run_in_actor(plain, &300u64).await?;
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

//! Scenario 11: the root fails right after spawning a child that never
//! asks for the terminal. No waiting for it: the root's crash REPL opens
//! at once, the child is killed and reaped, and the program exits
//! non-zero.
//!
//! `cargo run --example fast_error_in_root_after_spawn`, then `c`.

use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::msg::RemoteError;

async fn sleep_forever(_actor: Actor, _: ()) -> Result<(), RemoteError> {
    smol::future::pending().await
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("sleep_forever", sleep_forever)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            let child = nursery
                .run_in_actor(ActorSpec::new("sleep_forever"), &())
                .await?;
            println!("sleep_forever pid {}", nursery.pid(child));
            Err(RemoteError::new(
                "AssertionError",
                "the root gave up right after spawning",
                root.uid().clone(),
            ))
        })
}

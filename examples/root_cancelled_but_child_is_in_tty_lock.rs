//! Scenario 10: the root cancels its nursery while a child is in a REPL.
//! The cancel waits for the debugger, and ctrl-c does not end the REPL
//! either; after `c`, the child is cancelled and the teardown completes.
//!
//! `cargo run --example root_cancelled_but_child_is_in_tty_lock`, press
//! ctrl-c a few times at the prompt, then `c`.

use std::time::Duration;

use smol::future;
use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::lock::Lock;
use smol_devx::debug::pause::PauseError;
use smol_devx::msg::RemoteError;
use smol_devx::task::Instrument;

async fn bp_then_hang(actor: Actor, _: ()) -> Result<(), PauseError> {
    println!("{} pid {}", actor.uid().name, std::process::id());
    smol_devx::pause!().await?;
    println!("{} released the terminal", actor.uid().name);
    future::pending::<()>()
        .instrument("wait to be cancelled")
        .await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("bp_then_hang", bp_then_hang)
        .run(|root| async move {
            println!("root pid {}", std::process::id());
            let mut nursery = Nursery::new(&root);
            nursery
                .run_in_actor(ActorSpec::new("bp_then_hang"), &())
                .await?;
            // Cancel while the child holds the terminal.
            while Lock::root().holder().is_none() {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
            println!("root: cancelling the nursery");
            nursery.cancel().await;
            println!("root: teardown complete");
            Ok::<_, RemoteError>(())
        })
}

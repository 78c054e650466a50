//! Scenario 18: the child holding the tree lock is killed (SIGKILL)
//! while a sibling waits. The root says which actor died, releases the
//! lock, puts the terminal back in the mode it found it in (the dead
//! REPL left it raw), and the waiter's prompt appears.
//!
//! `cargo run --example stale_lock`, then `kill -9 <holder pid>` from
//! another terminal, `c` in the waiter's REPL.

use std::time::Duration;

use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::lock::Lock;
use smol_devx::debug::pause::PauseError;
use smol_devx::msg::RemoteError;

async fn bp(actor: Actor, _: ()) -> Result<(), PauseError> {
    println!("{} pid {}", actor.uid().name, std::process::id());
    smol_devx::pause!().await?;
    println!("{} released the terminal", actor.uid().name);
    Ok(())
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    // Only the children debug: the root's own failure (its child was
    // killed) is reported, not debugged.
    install(Runtime::new())
        .entry("bp", bp)
        .run(|root| async move {
            println!("root pid {}", std::process::id());
            let mut nursery = Nursery::new(&root);
            let spec = |name| ActorSpec::new("bp").name(name).debug_mode(true);
            nursery.run_in_actor(spec("holder"), &()).await?;
            // The waiter asks only once the holder holds: a fixed order.
            while Lock::root().holder().is_none() {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
            nursery.run_in_actor(spec("waiter"), &()).await?;
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

//! Scenario 17: ctrl-c at a live prompt leaves the session alive and
//! re-prints the prompt; once the REPL is released, one ctrl-c ends the
//! whole tree cleanly.
//!
//! `cargo run --example ctrlc_in_tree -- root` pauses in the root (with a
//! child alive); `-- grandchild` pauses two levels down (root → `middle`
//! → `leaf`). Press ctrl-c at the prompt as often as you like, `c` to
//! go on, then ctrl-c once: every actor ends and the root exits with 130.

use smol::future;
use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::pause::PauseError;
use smol_devx::msg::RemoteError;
use smol_devx::task::Instrument;

fn hello(actor: &Actor) {
    println!("{} pid {}", actor.uid().name, std::process::id());
}

async fn sleeper(actor: Actor, _: ()) -> Result<(), RemoteError> {
    hello(&actor);
    future::pending::<()>().instrument("sleep forever").await;
    Ok(())
}

async fn leaf(actor: Actor, _: ()) -> Result<(), PauseError> {
    hello(&actor);
    smol_devx::pause!().await?;
    println!("released in {}", actor.uid().name);
    future::pending::<()>().instrument("after the pause").await;
    Ok(())
}

async fn middle(actor: Actor, _: ()) -> Result<(), RemoteError> {
    hello(&actor);
    let mut nursery = Nursery::new(&actor);
    nursery.run_in_actor(ActorSpec::new("leaf"), &()).await?;
    nursery.join().await
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    let in_root = std::env::args().nth(1).as_deref() != Some("grandchild");
    install(Runtime::new().debug_mode(true))
        .entry("sleeper", sleeper)
        .entry("middle", middle)
        .entry("leaf", leaf)
        .run(|root| async move {
            hello(&root);
            let mut nursery = Nursery::new(&root);
            if in_root {
                nursery.run_in_actor(ActorSpec::new("sleeper"), &()).await?;
                smol_devx::pause!().await.map_err(|e| {
                    RemoteError::new("PauseError", e.to_string(), root.uid().clone())
                })?;
                println!("released in root");
            } else {
                nursery.run_in_actor(ActorSpec::new("middle"), &()).await?;
            }
            nursery.join().await
        })
}

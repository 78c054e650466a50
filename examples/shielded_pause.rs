//! Scenario 14: a pause inside the teardown of an actor being cancelled.
//!
//! The root cancels `cancelled_worker` while it works. The worker's work
//! runs in `until_cancelled`, so instead of being dropped it is told, and
//! its teardown pauses: the REPL opens and works although the actor is
//! cancelled, and the root's cancel (with its SIGTERM/SIGKILL escalation)
//! waits for it. After `c` the teardown ends and so does the tree.
//!
//! With `-- nested`, the canceller is `middle`, a subactor between the
//! root and the worker: its escalation asks the root whether anyone is in
//! the debugger (tractor leaves this to the root alone, its issue 320).
//!
//! With `-- ctrlc`, nothing is cancelled until you press ctrl-c: the
//! root then cancels the whole tree, and the worker's teardown REPL opens
//! all the same; after `c` the tree ends (exit code 130).
//!
//! `cargo run --example shielded_pause`, then `c`.

use std::time::Duration;

use smol::future;
use smol_devx::actor::cancel::{until_cancelled, Cancelled};
use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::msg::RemoteError;
use smol_devx::task::Instrument;

async fn cancelled_worker(actor: Actor, _: ()) -> Result<(), Cancelled> {
    println!("{} pid {}", actor.uid().name, std::process::id());
    let work = future::pending::<()>().instrument("working");
    let Err(cancelled) = until_cancelled(work).await else {
        return Ok(());
    };
    println!("INSIDE CANCELLED TEARDOWN");
    let step = "teardown";
    if let Err(e) = smol_devx::pause!(step).await {
        eprintln!("the teardown pause failed: {e}");
    }
    println!("teardown done");
    Err(cancelled)
}

/// Spawns the worker, cancels it, and says when it is gone.
async fn cancel_a_worker(actor: Actor, _: ()) -> Result<(), RemoteError> {
    let me = &actor.uid().name;
    println!("{me} pid {}", std::process::id());
    let mut nursery = Nursery::new(&actor).grace(Duration::from_millis(500));
    nursery
        .run_in_actor(ActorSpec::new("cancelled_worker"), &())
        .await?;
    println!("{me}: cancelling the worker");
    nursery.cancel().await;
    println!("{me}: the worker is gone");
    Ok(())
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    let nested = std::env::args().any(|a| a == "nested");
    install(Runtime::new().debug_mode(true))
        .entry("cancelled_worker", cancelled_worker)
        .entry("middle", cancel_a_worker)
        .run(|root| async move {
            if std::env::args().any(|a| a == "ctrlc") {
                println!("root pid {}", std::process::id());
                let mut nursery = Nursery::new(&root);
                nursery
                    .run_in_actor(ActorSpec::new("cancelled_worker"), &())
                    .await?;
                println!("root: waiting for ctrl-c");
                return nursery.join().await;
            }
            if !nested {
                return cancel_a_worker(root, ()).await;
            }
            println!("root pid {}", std::process::id());
            let mut nursery = Nursery::new(&root);
            nursery.run_in_actor(ActorSpec::new("middle"), &()).await?;
            nursery.join().await
        })
}

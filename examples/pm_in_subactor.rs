//! Scenario 13: `post_mortem` on demand. The child opens one in its own
//! error handler, then re-raises, which opens its automatic crash REPL;
//! the root opens one on the RemoteActorError it receives, then fails
//! with it, which opens the root's automatic crash REPL. Four REPLs.
//!
//! `cargo run --example pm_in_subactor`, then `c` four times.

use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::pause::post_mortem;
use smol_devx::msg::RemoteError;

mod common;
use common::NameError;

async fn name_error(_actor: Actor, _: ()) -> Result<(), NameError> {
    let err = NameError("doggypants");
    // An error handler that looks before it re-raises.
    if let Err(e) = post_mortem(&err).await {
        eprintln!("no post-mortem: {e}");
    }
    Err(err)
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("name_error", name_error)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            nursery
                .run_in_actor(ActorSpec::new("name_error"), &())
                .await?;
            if let Err(e) = nursery.join().await {
                if let Err(pm) = post_mortem(&e).await {
                    eprintln!("no post-mortem: {pm}");
                }
                return Err(e);
            }
            Ok::<_, RemoteError>(())
        })
}

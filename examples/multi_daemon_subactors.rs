//! Scenario 7: a daemon subactor pauses inside a stream loop while its
//! sibling crashes. Prompts from the two take turns; once the crash was
//! shown, `q` at the daemon's pause ends its stream, the root (which
//! waited for the debugger) tears the daemon down cleanly and opens its
//! own crash REPL on the sibling's error.
//!
//! `cargo run --example multi_daemon_subactors`, then `c` at each prompt
//! until the crash was shown, `q` at the daemon's next pause, `c` at the
//! root's.

use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::codec::PldSpec;
use smol_devx::debug::pause::PauseError;
use smol_devx::ipc::Context;
use smol_devx::msg::RemoteError;

mod common;
use common::name_error;

/// The daemon's entry: serve dialogs until cancelled.
async fn serve(_actor: Actor, _: ()) -> Result<(), RemoteError> {
    smol::future::pending().await
}

/// A stream the root reads: a pause before each item.
async fn bp_stream(_actor: Actor, ctx: Context, _: ()) -> Result<(), PauseError> {
    ctx.send_started(&()).await.ok();
    for round in 0u32.. {
        smol_devx::pause!(round).await?;
        if ctx.send(&round).await.is_err() {
            break;
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("serve", serve)
        .entry("name_error", name_error)
        .handler("bp_stream", &PldSpec::ANY, bp_stream)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            let daemon = nursery
                .start_actor(ActorSpec::new("serve").name("bp_forever"), &())
                .await?;
            let portal = nursery.portal(daemon);
            // Read the daemon's stream on the side, until it ends.
            let reader = smol::spawn(async move {
                if let Ok(mut stream) = portal.open("bp_stream", &(), &PldSpec::ANY).await {
                    let _ = stream.started::<()>().await;
                    while let Ok(Some(_round)) = stream.recv::<u32>().await {}
                }
            });
            nursery
                .run_in_actor(ActorSpec::new("name_error"), &())
                .await?;
            let joined = nursery.join().await;
            reader.cancel().await;
            joined
        })
}

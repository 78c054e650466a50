//! A nursery dropped (as a `?` or a timeout would) while its child is in
//! a REPL: the child is not killed; once the debugger is free it is.
//!
//! `cargo run --example nursery_dropped_in_repl`: the child pauses, the
//! root drops its nursery; type `c` (the child pauses again, alive), then
//! `q`.

use std::time::Duration;

use smol_devx::actor::debugger::install;
use smol_devx::actor::{ActorSpec, Nursery, Runtime};
use smol_devx::debug::lock::Lock;
use smol_devx::debug::lock_dialog::maybe_wait_for_debugger;
use smol_devx::msg::RemoteError;

mod common;
use common::breakpoint_forever;

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("breakpoint_forever", breakpoint_forever)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            nursery
                .run_in_actor(ActorSpec::new("breakpoint_forever"), &())
                .await?;
            while Lock::root().holder().is_none() {
                smol::Timer::after(Duration::from_millis(10)).await;
            }
            drop(nursery);
            println!("nursery dropped");
            // The root goes on; the child is killed once the debugger is
            // free.
            while !root.children().is_empty() || maybe_wait_for_debugger().await {
                smol::Timer::after(Duration::from_millis(50)).await;
            }
            println!("root done");
            Ok::<_, RemoteError>(())
        })
}

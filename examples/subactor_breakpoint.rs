//! Scenario 4: a subactor pauses in a loop; each `c` goes round again,
//! `q` fails it with a quit, which its parent (the root) receives boxed
//! as a remote error naming `breakpoint_forever`.
//!
//! `cargo run --example subactor_breakpoint`, then `c`, `c`, `c`, `q`.

use smol_devx::actor::debugger::install;
use smol_devx::actor::{ActorSpec, Nursery, Runtime};
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
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

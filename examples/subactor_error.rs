//! Scenario 5: a subactor's entry fails. Its own crash REPL opens first;
//! after `c`, the error goes to the root boxed as a RemoteActorError,
//! and the root's crash REPL shows it; after `c` there the program exits
//! non-zero.
//!
//! `cargo run --example subactor_error`, then `c`, `c`.

use std::fmt;

use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::tty::install;
use smol_devx::msg::RemoteError;

#[derive(Debug)]
struct NameError(&'static str);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name '{}' is not defined", self.0)
    }
}

impl std::error::Error for NameError {}

async fn name_error(_actor: Actor, _: ()) -> Result<(), NameError> {
    Err(NameError("doggypants"))
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
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

//! Scenario 3: the root's body fails; its crash REPL opens on the error
//! where it was raised (runtime frames hidden), and after `q` (or `c`) the program exits
//! with the original failure.
//!
//! `cargo run --example root_actor_error`, then `bt` and `q`.

use std::fmt;

use smol_devx::actor::debugger::install;
use smol_devx::actor::Runtime;
use smol_devx::Report;

#[derive(Debug)]
struct AssertionError(&'static str);

impl fmt::Display for AssertionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "assertion failed: {}", self.0)
    }
}

impl std::error::Error for AssertionError {}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .run(|_root| async { Err::<(), Report>(AssertionError("assert 0").into()) })
}

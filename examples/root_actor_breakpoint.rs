//! Scenario 1: the root pauses once; `c` continues and the program ends.
//!
//! `cargo run --example root_actor_breakpoint`, then type `c` at the
//! `(devx)` prompt (or set `SMOL_DEVX_REPL_SCRIPT="p answer;c"`).

use smol_devx::actor::debugger::install;
use smol_devx::actor::Runtime;
use smol_devx::debug::pause::PauseError;

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true)).run(|_root| async {
        let answer = 42;
        println!("before the pause");
        smol_devx::pause!(answer).await?;
        println!("after the pause");
        Ok::<_, PauseError>(())
    })
}

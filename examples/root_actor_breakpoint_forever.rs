//! Scenario 2: the root pauses in a loop; each `c` goes round again, `q`
//! ends the program with a non-zero exit naming the quit.
//!
//! `cargo run --example root_actor_breakpoint_forever`, then `c`, `c`,
//! `c`, `q`.

use smol_devx::actor::debugger::install;
use smol_devx::actor::Runtime;
use smol_devx::debug::pause::PauseError;

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true)).run(|_root| async {
        for round in 0u32.. {
            smol_devx::pause!(round).await?;
        }
        Ok::<_, PauseError>(())
    })
}

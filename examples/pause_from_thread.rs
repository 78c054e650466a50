//! `pause_blocking!` from a plain thread of a subactor (part of scenario
//! 15): the thread stops in the REPL while the actor keeps serving.
//!
//! `cargo run --example pause_from_thread`, then `p step` and `c`.

use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::pause::PauseError;
use smol_devx::msg::RemoteError;

async fn worker(_actor: Actor, _: ()) -> Result<(), PauseError> {
    let thread = std::thread::spawn(|| {
        let step = "halfway";
        smol_devx::pause_blocking!(step)?;
        println!("thread done");
        Ok::<_, PauseError>(())
    });
    smol::unblock(move || thread.join().expect("the thread ends")).await
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("worker", worker)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            nursery.run_in_actor(ActorSpec::new("worker"), &()).await?;
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

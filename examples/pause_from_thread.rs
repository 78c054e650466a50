//! `pause_blocking!` from a plain thread of a subactor (part of scenario
//! 15): the thread stops in the REPL while the actor keeps serving.
//!
//! `cargo run --example pause_from_thread`, then `p step` and `c`.
//! With `-- --on-executor` the subactor calls `pause_blocking!` on its
//! own executor thread instead, which is refused at once (a crash REPL
//! says why).

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

/// The mistake: `pause_blocking!` where `pause!().await` belongs.
async fn worker_on_executor(_actor: Actor, _: ()) -> Result<(), PauseError> {
    let step = "on the executor";
    smol_devx::pause_blocking!(step)
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("worker", worker)
        .entry("worker_on_executor", worker_on_executor)
        .run(|root| async move {
            let entry = if std::env::args().any(|a| a == "--on-executor") {
                "worker_on_executor"
            } else {
                "worker"
            };
            let mut nursery = Nursery::new(&root);
            nursery.run_in_actor(ActorSpec::new(entry), &()).await?;
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

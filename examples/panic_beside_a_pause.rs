//! A panic in one actor while another actor's REPL owns the terminal.
//! `pauser` pauses; once it holds the tree lock, `panicker` panics. The
//! panic's message is not printed over `pauser`'s REPL: after `c` there,
//! `panicker`'s crash REPL shows it, with its line (`l`); then the
//! root's crash REPL, on the boxed panic.
//!
//! `cargo run --example panic_beside_a_pause`, then `c`, `l`, `c`, `c`.

use std::time::Duration;

use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::lock_dialog::lock_queue;
use smol_devx::debug::pause::PauseError;
use smol_devx::msg::RemoteError;

async fn pauser(_actor: Actor, _: ()) -> Result<(), PauseError> {
    let round = 1;
    smol_devx::pause!(round).await
}

async fn panicker(_actor: Actor, _: ()) -> Result<(), RemoteError> {
    // Once another actor's REPL holds the terminal.
    while !matches!(lock_queue().await, Ok((Some(_), _))) {
        smol::Timer::after(Duration::from_millis(20)).await;
    }
    let empty: Vec<u32> = Vec::new();
    let index = std::hint::black_box(3);
    println!("{}", empty[index]);
    Ok(())
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("pauser", pauser)
        .entry("panicker", panicker)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            nursery.run_in_actor(ActorSpec::new("pauser"), &()).await?;
            nursery
                .run_in_actor(ActorSpec::new("panicker"), &())
                .await?;
            nursery.join().await
        })
}

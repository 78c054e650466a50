//! Pieces several examples share: the error the failing actors raise,
//! the failing entries themselves and the pausing one (as tractor's
//! example scripts do).

#![allow(dead_code)] // each example uses a part

use std::fmt;

use smol_devx::actor::{Actor, ActorSpec, Nursery};
use smol_devx::debug::pause::PauseError;
use smol_devx::msg::RemoteError;

/// The error of the failing actors, named like Python's.
#[derive(Debug)]
pub struct NameError(pub &'static str);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name '{}' is not defined", self.0)
    }
}

impl std::error::Error for NameError {}

/// An entry that says `<name> pid <pid>`, then pauses forever, counting
/// its rounds.
pub async fn breakpoint_forever(actor: Actor, _: ()) -> Result<(), PauseError> {
    println!("{} pid {}", actor.uid().name, std::process::id());
    for round in 0u32.. {
        smol_devx::pause!(round).await?;
    }
    Ok(())
}

/// An entry that fails at once.
pub async fn name_error(_actor: Actor, _: ()) -> Result<(), NameError> {
    Err(NameError("doggypants"))
}

/// An entry that spawns `name_error_1`, which fails, and fails with it.
pub async fn spawn_error(actor: Actor, _: ()) -> Result<(), RemoteError> {
    let mut nursery = Nursery::new(&actor);
    let child = ActorSpec::new("name_error").name("name_error_1");
    nursery.run_in_actor(child, &()).await?;
    nursery.join().await
}

/// An entry that spawns the next level (`spawn_until_<depth - 1>`), or
/// `name_error` at depth 0: its error climbs back through every level.
pub async fn spawn_until(actor: Actor, depth: u32) -> Result<(), RemoteError> {
    let mut nursery = Nursery::new(&actor);
    if depth == 0 {
        nursery
            .run_in_actor(ActorSpec::new("name_error"), &())
            .await?;
    } else {
        let next = ActorSpec::new("spawn_until").name(&format!("spawn_until_{}", depth - 1));
        nursery.run_in_actor(next, &(depth - 1)).await?;
    }
    nursery.join().await
}

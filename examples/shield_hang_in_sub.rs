//! Scenario 16: a subactor hangs on purpose; `kill -USR1 <root pid>`
//! shows where every actor of the tree is waiting.
//!
//! The root runs `hang_in_sub`, which spawns `sleeper` and then awaits
//! forever; `sleeper` awaits forever too. Each actor prints `ready <name>
//! pid <pid>` once it runs. With `--blocked`, `hang_in_sub` also spawns
//! `blocked`, whose actor thread is stuck in a blocking call: it cannot
//! answer, and the root's gathered dump marks it missing; its own dump
//! (in its log) shows the task that blocks it.
//!
//! ```text
//! cargo run --example shield_hang_in_sub &
//! kill -USR1 $(pgrep -o shield_hang)    # as often as you like
//! ```
//!
//! Every actor writes its task tree to stderr and to
//! `$TMPDIR/smol-devx-<pid>.log`, parent before child; the root adds one
//! gathered dump of the whole tree to its log and writes it as JSON to
//! `$TMPDIR/smol-devx-tree-<root pid>.json`. The tree ends when the
//! root's stdin closes (ctrl-d).

use std::time::Duration;

use smol::future;
use smol_devx::actor::debugger::install_stack_on_sig;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::msg::RemoteError;
use smol_devx::stack_on_sig::enable_stack_on_sig;
use smol_devx::task::Instrument;

fn ready(actor: &Actor) {
    println!("ready {} pid {}", actor.uid().name, std::process::id());
}

async fn hang_in_sub(actor: Actor, blocked: bool) -> Result<(), RemoteError> {
    let mut nursery = Nursery::new(&actor).grace(Duration::from_millis(300));
    nursery.run_in_actor(ActorSpec::new("sleeper"), &()).await?;
    if blocked {
        nursery.run_in_actor(ActorSpec::new("blocked"), &()).await?;
    }
    ready(&actor);
    future::pending::<()>()
        .instrument("hang on purpose (shielded)")
        .await;
    nursery.join().await
}

async fn sleeper(actor: Actor, _: ()) -> Result<(), RemoteError> {
    ready(&actor);
    future::pending::<()>().instrument("sleep forever").await;
    Ok(())
}

async fn blocked(actor: Actor, _: ()) -> Result<(), RemoteError> {
    ready(&actor);
    // Blocks the actor's own thread: none of its tasks run, so it cannot
    // answer the root's gather; its SIGUSR1 watcher runs on another thread
    // and still dumps, showing this task stuck in its poll.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    enable_stack_on_sig().expect("watch SIGUSR1");
    let blocked_too = std::env::args().any(|a| a == "--blocked");
    install_stack_on_sig(Runtime::new())
        .entry("hang_in_sub", hang_in_sub)
        .entry("sleeper", sleeper)
        .entry("blocked", blocked)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root).grace(Duration::from_millis(300));
            nursery
                .run_in_actor(ActorSpec::new("hang_in_sub"), &blocked_too)
                .await?;
            ready(&root);
            let stdin_closed =
                smol::unblock(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()));
            let _ = stdin_closed.instrument("stdin open").await;
            println!("stdin closed: cancelling the tree");
            nursery.cancel().await;
            Ok::<_, RemoteError>(())
        })
}

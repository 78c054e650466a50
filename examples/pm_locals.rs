//! `post_mortem` where the error is held: the crash REPL's `bt` starts
//! where the error was raised (`parse_port`, returned since), and the
//! handler that called `post_mortem` is still on the stack, so `up` then
//! `locals` shows its variables. The root spawns `checker`, whose entry
//! parses a port, shows the failure, and goes on with a default.
//!
//! `cargo run --example pm_locals`, then `locals`, `up`, `locals`, `c`.

use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::pause::{post_mortem, PauseError};
use smol_devx::msg::RemoteError;
use smol_devx::Report;

/// The port of a service, from its configuration text.
fn parse_port(text: &str) -> Result<u16, Report> {
    let port = text.trim().parse::<u16>()?;
    Ok(port)
}

/// `checker`'s entry: a bad port is shown in a crash REPL, then replaced.
async fn checker(_actor: Actor, text: String) -> Result<u16, PauseError> {
    let fallback: u16 = 8080;
    let port = match parse_port(&text) {
        Ok(port) => port,
        Err(report) => {
            post_mortem(&report).await?;
            fallback
        }
    };
    Ok(port)
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("checker", checker)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            let text = String::from("eighty");
            nursery
                .run_in_actor(ActorSpec::new("checker"), &text)
                .await?;
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

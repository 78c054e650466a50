//! A failure returned through `?`, as most Rust failures are. The root
//! spawns `loader`, whose entry calls `load_config()`, which calls
//! `parse_port("eighty")`, which fails on the line with `?`. Returning
//! `smol_devx::Report` records that line and a backtrace taken there: the
//! crash REPL in `loader` opens on it (`bt` starts in `parse_port`, `l`
//! shows the line), and so does the root's, on the same remote site.
//!
//! `cargo run --example crash_site`, then `bt`, `l`, `c`, `c`.

use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::msg::RemoteError;
use smol_devx::Report;

/// The port of a service, from its configuration text.
fn parse_port(text: &str) -> Result<u16, Report> {
    let port = text.trim().parse::<u16>()?;
    Ok(port)
}

/// The service's configuration.
fn load_config() -> Result<u16, Report> {
    let port = parse_port("eighty")?;
    Ok(port)
}

/// `loader`'s entry.
async fn loader(_actor: Actor, _: ()) -> Result<u16, Report> {
    load_config()
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    install(Runtime::new().debug_mode(true))
        .entry("loader", loader)
        .run(|root| async move {
            let mut nursery = Nursery::new(&root);
            nursery.run_in_actor(ActorSpec::new("loader"), &()).await?;
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

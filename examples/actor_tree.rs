//! The actor tree on its own, without the debugger: spawn, results,
//! errors climbing nested nurseries, one-cancels-all, daemons.
//!
//! `cargo run --example actor_tree -- <scenario>` with one of:
//! `return`, `nested_error`, `one_cancels_all`, `stubborn`, `panic`, `daemon`,
//! `debug_modes`,
//! `tree_forever` and `tree_stuck` (until killed), `serve` (until stdin
//! closes). The multi-process tests in `tests/actor_tree.rs` drive it.

use std::time::Duration;

use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::codec::PldSpec;
use smol_devx::ipc::Context;
use smol_devx::msg::RemoteError;

mod common;
use common::NameError;

type Res<T> = Result<T, RemoteError>;

/// Every actor says who and where it is, so tests can follow its pid.
fn hello(actor: &Actor) {
    println!("{} pid {}", actor.uid().name, std::process::id());
}

async fn double(actor: Actor, x: u64) -> Res<u64> {
    hello(&actor);
    Ok(2 * x)
}

async fn name_error(actor: Actor, _: ()) -> Result<(), NameError> {
    hello(&actor);
    Err(NameError("doggypants"))
}

/// Spawns the next level until `depth` reaches 0, where it spawns
/// `name_error`; errors climb back through every level.
async fn spawn_until(actor: Actor, depth: u32) -> Res<()> {
    hello(&actor);
    common::spawn_until(actor, depth).await
}

async fn sleep_forever(actor: Actor, _: ()) -> Res<()> {
    hello(&actor);
    smol::future::pending().await
}

async fn panicker(actor: Actor, _: ()) -> Res<()> {
    hello(&actor);
    panic!("the panicker panicked");
}

/// Blocks its thread: a cancel message can never be acted on.
async fn block_forever(actor: Actor, _: ()) -> Res<()> {
    hello(&actor);
    std::thread::sleep(Duration::from_secs(3600));
    Ok(())
}

async fn fail_after(actor: Actor, ms: u64) -> Result<(), NameError> {
    hello(&actor);
    smol::Timer::after(Duration::from_millis(ms)).await;
    Err(NameError("late"))
}

/// A daemon's entry: serve dialogs until cancelled.
async fn serve_forever(actor: Actor, _: ()) -> Res<()> {
    hello(&actor);
    smol::future::pending().await
}

async fn echo(_: Actor, ctx: Context, text: String) -> Res<String> {
    ctx.send_started(&()).await.map_err(box_here)?;
    Ok(text)
}

/// Sleeps forever, and spawns a child running `grandchild_entry`.
async fn sleeper_with_child(actor: Actor, grandchild_entry: String) -> Res<()> {
    hello(&actor);
    let mut nursery = Nursery::new(&actor);
    nursery
        .run_in_actor(ActorSpec::new(&grandchild_entry).name("grandchild"), &())
        .await?;
    nursery.join().await
}

/// Says whether debug mode is on here, then (when asked) spawns one
/// child that inherits it and says so too.
async fn report_debug(actor: Actor, spawn_child: bool) -> Res<()> {
    println!("debug {} {}", actor.uid().name, actor.debug_mode());
    if spawn_child {
        let mut nursery = Nursery::new(&actor);
        let name = format!("{}_child", actor.uid().name);
        nursery
            .run_in_actor(ActorSpec::new("report_debug").name(&name), &false)
            .await?;
        nursery.join().await?;
    }
    Ok(())
}

fn box_here(e: impl std::error::Error + Send + Sync + 'static) -> RemoteError {
    RemoteError::from_error(&e, smol_devx::msg::ActorUid::new("?", "?"))
}

/// The only payloads the root's `ping` handler accepts.
static PING_ONLY: PldSpec = PldSpec::new("PingOnly", &["Ping"]);

#[derive(serde::Serialize, serde::Deserialize)]
enum PingMsg {
    Ping(u32),
}

async fn ping(_: Actor, _: Context, PingMsg::Ping(n): PingMsg) -> Res<u32> {
    Ok(n + 1)
}

/// Spawns `siblings`, then one child that fails, and reports how the
/// nursery ended.
async fn siblings_of_a_failure<const N: usize>(
    nursery: &mut Nursery,
    siblings: [ActorSpec; N],
) -> Res<()> {
    for sibling in siblings {
        nursery.run_in_actor(sibling, &()).await?;
    }
    nursery
        .run_in_actor(ActorSpec::new("fail_after"), &300u64)
        .await?;
    let err = nursery.join().await.expect_err("fail_after fails");
    println!("joined with {} from {}", err.type_name, err.src_uid.name);
    Ok(())
}

async fn root(actor: Actor, scenario: String) -> Res<()> {
    println!("root pid {} listening {}", std::process::id(), actor.addr());
    let mut nursery = Nursery::new(&actor).grace(Duration::from_millis(500));
    match scenario.as_str() {
        "return" => {
            let child = nursery
                .run_in_actor(ActorSpec::new("double"), &21u64)
                .await?;
            nursery.join().await?;
            println!("result {}", nursery.result::<u64>(child)?);
        }
        "nested_error" => {
            nursery
                .run_in_actor(ActorSpec::new("spawn_until").name("spawner0"), &2u32)
                .await?;
            if let Err(e) = nursery.join().await {
                let hops: Vec<_> = e.relay_path.iter().map(|uid| &*uid.name).collect();
                println!(
                    "error type={} src={} msg={} relay={}",
                    e.type_name,
                    e.src_uid.name,
                    e.message,
                    hops.join(",")
                );
                return Err(e);
            }
        }
        "one_cancels_all" => {
            let sleepers =
                ["sleeper_a", "sleeper_b"].map(|name| ActorSpec::new("sleep_forever").name(name));
            siblings_of_a_failure(&mut nursery, sleepers).await?;
        }
        "stubborn" => {
            siblings_of_a_failure(&mut nursery, [ActorSpec::new("block_forever")]).await?
        }
        "panic" => {
            nursery
                .run_in_actor(ActorSpec::new("panicker"), &())
                .await?;
            let err = nursery.join().await.expect_err("panicker panics");
            println!(
                "joined with {} from {}: {}",
                err.type_name, err.src_uid.name, err.message
            );
        }
        "daemon" => {
            let daemon = nursery
                .start_actor(ActorSpec::new("serve_forever").name("echo_daemon"), &())
                .await?;
            let portal = nursery.portal(daemon);
            for i in 0..3 {
                let reply: String = portal
                    .run("echo", &format!("hello {i}"))
                    .await
                    .map_err(box_here)?;
                println!("echo {reply}");
            }
            nursery.cancel().await;
            println!("daemon cancelled");
        }
        "debug_modes" => {
            println!("debug root {}", actor.debug_mode());
            let inherit = ActorSpec::new("report_debug").name("inherits");
            let off = ActorSpec::new("report_debug")
                .name("overridden")
                .debug_mode(false);
            nursery.run_in_actor(inherit, &true).await?;
            nursery.run_in_actor(off, &true).await?;
            nursery.join().await?;
        }
        "tree_forever" | "tree_stuck" => {
            let grandchild = match scenario.as_str() {
                "tree_forever" => "sleep_forever",
                _ => "block_forever",
            };
            nursery
                .run_in_actor(
                    ActorSpec::new("sleeper_with_child").name("child"),
                    &grandchild,
                )
                .await?;
            println!("spawned");
            nursery.join().await?;
        }
        "serve" => {
            // Serves its daemon child until stdin closes, echoing all the
            // while: peers may come and go meanwhile.
            let stdin_closed =
                smol::unblock(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()));
            let daemon = nursery
                .start_actor(ActorSpec::new("serve_forever").name("echo_daemon"), &())
                .await?;
            let portal = nursery.portal(daemon);
            let echo_loop = async {
                for i in 0.. {
                    let reply: String = portal
                        .run("echo", &format!("{i}"))
                        .await
                        .map_err(box_here)?;
                    println!("echo ok {reply}");
                    smol::Timer::after(Duration::from_millis(50)).await;
                }
                Ok(())
            };
            smol::future::or(echo_loop, async {
                let _ = stdin_closed.await;
                Ok::<_, RemoteError>(())
            })
            .await?;
            nursery.cancel().await;
            println!("served");
        }
        other => {
            return Err(RemoteError::new(
                "Usage",
                format!("unknown scenario {other:?}"),
                actor.uid().clone(),
            ));
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    let scenario = std::env::args().nth(1).unwrap_or_else(|| "return".into());
    Runtime::new()
        .debug_mode(scenario == "debug_modes")
        .entry("double", double)
        .entry("name_error", name_error)
        .entry("spawn_until", spawn_until)
        .entry("sleep_forever", sleep_forever)
        .entry("sleeper_with_child", sleeper_with_child)
        .entry("fail_after", fail_after)
        .entry("block_forever", block_forever)
        .entry("panicker", panicker)
        .entry("serve_forever", serve_forever)
        .entry("report_debug", report_debug)
        .handler("echo", &PldSpec::ANY, echo)
        .handler("ping", &PING_ONLY, ping)
        .run(|actor| root(actor, scenario))
}

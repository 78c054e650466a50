//! `cargo bench --bench ipc`: the actor tree's IPC against its physical
//! floor, measured in one run:
//! - raw ping-pong of a lock-sized frame over a Unix socketpair between
//!   two threads (the floor for any dialog);
//! - a dialog round trip (open, started, result) over the same kind of
//!   socket, through `Channel` and `Context`;
//! - spawn of one subactor process to its first result;
//! - idle RSS of the root and of one subactor.
//!
//! The bench binary is itself an actor program: its subactors are this
//! executable, re-executed.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{header, measure, raw_ping_pong, Stats};
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::codec::{encode_pld, Codec, PldSpec};
use smol_devx::ipc::{Channel, Side, Stream};
use smol_devx::msg::{ActorUid, LockMsg, LockStatus, RemoteError};

fn dialog_round_trip() -> Stats {
    let (a, b) = smol::net::unix::UnixStream::pair().unwrap();
    let (client_uid, server_uid) = (ActorUid::new("client", "c"), ActorUid::new("server", "s"));
    let codec = Codec::default();
    let (client, _) = Channel::start(
        Stream::Unix(a),
        client_uid.clone(),
        server_uid.clone(),
        Side::Client,
        codec,
    );
    let (server, incoming) =
        Channel::start(Stream::Unix(b), server_uid, client_uid, Side::Server, codec);
    let status = LockMsg::LockStatus(LockStatus {
        subactor_uid: ActorUid::new("breakpoint_forever", "5b1c6a7e-2f0d-4d43-9a55-0c1f3e6b8d21"),
        cid: 17,
        locked: true,
    });
    let handler_status = status.clone();
    smol::spawn(async move {
        while let Some(dialog) = incoming.recv().await {
            let ctx = server.accept(dialog, &PldSpec::LOCK);
            ctx.send_started(&handler_status).await.unwrap();
            ctx.send_return(encode_pld(&handler_status).unwrap())
                .await
                .unwrap();
        }
    })
    .detach();
    let args = encode_pld(&status).unwrap();
    smol::block_on(async {
        measure(
            "dialog round trip (open, started, result)",
            200,
            200,
            || {
                smol::block_on(async {
                    let mut ctx = client
                        .open("lock", args.clone(), &PldSpec::LOCK)
                        .await
                        .unwrap();
                    black_box(ctx.started::<LockMsg>().await.unwrap());
                    black_box(ctx.result::<LockMsg>().await.unwrap());
                })
            },
        )
    })
}

async fn double(_: Actor, x: u64) -> Result<u64, RemoteError> {
    Ok(2 * x)
}

async fn idle(_: Actor, _: ()) -> Result<(), RemoteError> {
    smol::future::pending().await
}

/// Spawns one subactor to its first result, `samples` times.
async fn spawn_to_result(actor: &Actor, samples: usize) -> Stats {
    let mut per_op = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        let mut nursery = Nursery::new(actor);
        let child = nursery
            .run_in_actor(ActorSpec::new("double"), &21u64)
            .await
            .unwrap();
        nursery.join().await.unwrap();
        assert_eq!(nursery.result::<u64>(child).unwrap(), 42);
        per_op.push(start.elapsed().as_nanos() as f64);
    }
    Stats::from_samples("spawn subactor to first result (+ reap)", per_op)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() -> std::process::ExitCode {
    Runtime::new()
        .entry("double", double)
        .entry("idle", idle)
        .run(|actor| async move {
            header("ipc");
            let raw = raw_ping_pong();
            raw.report(None);
            let two_raw = raw.scaled("two raw ping-pongs", 2.0);
            // Off the actor's thread: the measuring loop blocks its thread,
            // and the channels' tasks must run elsewhere (on smol's executor).
            smol::unblock(dialog_round_trip)
                .await
                .report(Some(&two_raw));
            let spawn = spawn_to_result(&actor, 50).await;
            spawn.report(None);

            let mut nursery = Nursery::new(&actor);
            let child = nursery.start_actor(ActorSpec::new("idle"), &()).await?;
            smol::Timer::after(Duration::from_millis(300)).await;
            println!(
                "idle RSS: root {} KiB, subactor {} KiB",
                rss_kib(std::process::id()),
                rss_kib(nursery.pid(child))
            );
            nursery.cancel().await;
            Ok::<_, RemoteError>(())
        })
}

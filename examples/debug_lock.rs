//! The tree-wide TTY lock without a REPL, under contention and faults.
//!
//! `cargo run --example debug_lock -- <scenario> [args]` with one of:
//! - `contend N ROUNDS FILE`: N subactors each take the lock ROUNDS times
//!   and write begin/end markers to FILE inside it;
//! - `holder_killed`: a holder that never releases, a waiter behind it
//!   (the test SIGKILLs the holder);
//! - `waiter_killed`: a holder, two waiters (the test SIGKILLs the first);
//! - `double`: one task asks twice;
//! - `double_pause`: one task awaits two `pause!()`s at once (run it with
//!   `SMOL_DEVX_REPL_SCRIPT=c`);
//! - `wait_for_debugger`: the root waits for a holder to release;
//! - `asked`: the root waits while a subactor asks who holds the lock;
//! - `asked_forever`: a subactor asks without end: the root waits for it
//!   a bounded time only, then stops it;
//! - `cancel_at_each_poll`: requests abandoned after k polls, k = 0..30;
//! - `async_std`: a subactor takes the lock from async-std's executor;
//! - `status`: a subactor enters and releases through `DebugStatus`;
//! - `serve`: only the root, serving lock dialogs until stdin closes.
//!
//! The multi-process tests in `tests/debug_lock.rs` drive it.

use std::io::Write;
use std::time::Duration;

use smol::future;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::lock::Lock;
use smol_devx::debug::lock_dialog::{
    acquire_debug_lock, lock_queue, maybe_wait_for_debugger, request_root_stdio_lock,
};
use smol_devx::debug::pause::PauseError;
use smol_devx::debug::status::DebugStatus;
use smol_devx::debug::DebugError;
use smol_devx::msg::{RemoteError, TaskUid};

type Res<T> = Result<T, DebugError>;

fn main_task() -> TaskUid {
    TaskUid::new("main", 1)
}

fn say(actor: &Actor, what: &str) {
    println!("{} pid {} {what}", actor.uid().name, std::process::id());
}

fn append(file: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

async fn contend(actor: Actor, (rounds, file): (u32, String)) -> Res<()> {
    let me = actor.uid().name.clone();
    for i in 0..rounds {
        let lock = acquire_debug_lock(main_task()).await?;
        append(&file, &format!("B {me} {i}"));
        smol::Timer::after(Duration::from_micros(200)).await;
        append(&file, &format!("E {me} {i}"));
        lock.release().await?;
    }
    Ok(())
}

/// Holds the lock for `ms` milliseconds.
async fn hold_for(actor: Actor, ms: u64) -> Res<()> {
    let lock = acquire_debug_lock(main_task()).await?;
    say(&actor, "locked");
    smol::Timer::after(Duration::from_millis(ms)).await;
    say(&actor, "releasing");
    lock.release().await
}

/// Asks the root who holds the lock every 50 ms for `ms`, as a subactor
/// waiting out its children's REPLs does.
async fn keep_asking(_: Actor, ms: u64) -> Res<()> {
    let until = std::time::Instant::now() + Duration::from_millis(ms);
    while std::time::Instant::now() < until {
        lock_queue().await?;
        smol::Timer::after(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Starts a subactor asking about the lock for `ms`, and waits for the
/// debugger until that holds the root back (before the first question,
/// nothing is in debug and the root does not wait).
async fn wait_while_asked(nursery: &mut Nursery, ms: u64) -> Result<(), RemoteError> {
    nursery
        .run_in_actor(ActorSpec::new("keep_asking"), &ms)
        .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut waited = false;
    while !waited && std::time::Instant::now() < deadline {
        waited = maybe_wait_for_debugger().await;
        smol::Timer::after(Duration::from_millis(10)).await;
    }
    println!("waited while asked {waited}");
    Ok(())
}

async fn hold_forever(actor: Actor, _: ()) -> Res<()> {
    let _lock = acquire_debug_lock(main_task()).await?;
    say(&actor, "locked");
    future::pending().await
}

async fn take_once(actor: Actor, _: ()) -> Res<()> {
    say(&actor, "requesting");
    let lock = acquire_debug_lock(main_task()).await?;
    say(&actor, "locked");
    lock.release().await
}

/// Holds the lock until the root's queue shows exactly `expect` waiters
/// (by name), then releases.
async fn hold_until_queue(actor: Actor, expect: Vec<String>) -> Res<()> {
    let lock = acquire_debug_lock(main_task()).await?;
    say(&actor, "locked");
    loop {
        let (_, waiters) = lock_queue().await?;
        let names: Vec<String> = waiters.into_iter().map(|u| u.name.to_string()).collect();
        if names == expect {
            break;
        }
        smol::Timer::after(Duration::from_millis(5)).await;
    }
    say(&actor, &format!("sees queue {expect:?}"));
    lock.release().await
}

async fn ask_twice(actor: Actor, _: ()) -> Res<()> {
    let first = acquire_debug_lock(main_task()).await?;
    match acquire_debug_lock(main_task()).await {
        Err(e @ DebugError::DoubleLock(_)) => say(&actor, &format!("refused: {e}")),
        Err(e) => return Err(e),
        Ok(_) => panic!("a second grant to the same task"),
    }
    first.release().await?;
    say(&actor, "released");
    Ok(())
}

/// One task awaiting two pauses at once: the second is refused as a
/// double request (the lock's owner is the task), the first opens its
/// REPL (scripted: `SMOL_DEVX_REPL_SCRIPT`).
async fn pause_twice(actor: Actor, _: ()) -> Res<()> {
    let (first, second) = smol::future::zip(smol_devx::pause!(), smol_devx::pause!()).await;
    match (first, second) {
        (Ok(()), Err(PauseError::Refused(e @ DebugError::DoubleLock(_)))) => {
            say(&actor, &format!("second pause refused: {e}"));
            Ok(())
        }
        other => panic!("expected one REPL and one refusal, got {other:?}"),
    }
}

/// Takes and releases the lock from a plain thread driven by async-std's
/// executor: the request is not tied to smol.
async fn on_async_std(actor: Actor, _: ()) -> Res<()> {
    let on_thread = actor.clone();
    smol::unblock(move || {
        async_std::task::block_on(async {
            let lock = acquire_debug_lock(TaskUid::new("async-std", 7)).await?;
            say(&on_thread, "locked under async-std");
            lock.release().await
        })
    })
    .await?;
    say(&actor, "released under async-std");
    Ok(())
}

/// Enters and leaves through `DebugStatus`, saying what it records.
async fn through_status(actor: Actor, _: ()) -> Res<()> {
    let status = DebugStatus::get();
    status.enter(main_task()).await?;
    say(
        &actor,
        &format!("holding {:?}", status.snapshot().holding.map(|t| t.name)),
    );
    match status.enter(main_task()).await {
        Err(DebugError::DoubleLock(_)) => say(&actor, "second enter refused"),
        other => panic!("second enter: {:?}", other.map(|_| ())),
    }
    status.release().await?;
    status.release().await?; // nothing held: nothing happens
    status.wait_request_finished().await;
    say(&actor, &format!("after release {:?}", status.snapshot()));
    Ok(())
}

async fn cancel_at_each_poll(actor: Actor, _: ()) -> Res<()> {
    for k in 0..30 {
        let mut request = Box::pin(request_root_stdio_lock(main_task()));
        let mut got = None;
        for _ in 0..k {
            if let Some(result) = future::poll_once(&mut request).await {
                got = Some(result?);
                break;
            }
            smol::Timer::after(Duration::from_micros(300)).await;
        }
        drop(request);
        if let Some(lock) = got {
            lock.release().await?;
        }
        // Whatever state the abandoned request was in, the lock is ours
        // again at once.
        let lock = request_root_stdio_lock(main_task()).await?;
        lock.release().await?;
    }
    say(&actor, "survived 30 abandoned requests");
    Ok(())
}

async fn wait_for_waiters(n: usize) {
    while Lock::root().waiters().len() != n {
        smol::Timer::after(Duration::from_millis(2)).await;
    }
}

async fn root(actor: Actor, args: Vec<String>) -> Result<(), RemoteError> {
    println!("root pid {}", std::process::id());
    let mut nursery = Nursery::new(&actor);
    match args.first().map(String::as_str) {
        Some("contend") => {
            let n: usize = args[1].parse().unwrap();
            let rounds: u32 = args[2].parse().unwrap();
            for i in 0..n {
                let spec = ActorSpec::new("contend").name(&format!("locker_{i}"));
                nursery
                    .run_in_actor(spec, &(rounds, args[3].clone()))
                    .await?;
            }
            nursery.join().await?;
            let (grants, out_of_order) = Lock::root().grant_stats();
            println!("grants {grants} out_of_order {out_of_order}");
        }
        Some("holder_killed") => {
            let mut holders = Nursery::new(&actor);
            holders
                .run_in_actor(ActorSpec::new("hold_forever").name("holder"), &())
                .await?;
            while Lock::root().holder().is_none() {
                smol::Timer::after(Duration::from_millis(2)).await;
            }
            nursery
                .run_in_actor(ActorSpec::new("take_once").name("waiter"), &())
                .await?;
            wait_for_waiters(1).await;
            println!("waiter queued");
            nursery.join().await?;
            let err = holders.join().await.expect_err("the holder was killed");
            println!("holder ended: {}", err.type_name);
        }
        Some("waiter_killed") => {
            let mut doomed = Nursery::new(&actor);
            let holder = ActorSpec::new("hold_until_queue").name("holder");
            nursery.run_in_actor(holder, &vec!["w2".to_owned()]).await?;
            while Lock::root().holder().is_none() {
                smol::Timer::after(Duration::from_millis(2)).await;
            }
            doomed
                .run_in_actor(ActorSpec::new("take_once").name("w1"), &())
                .await?;
            wait_for_waiters(1).await;
            nursery
                .run_in_actor(ActorSpec::new("take_once").name("w2"), &())
                .await?;
            wait_for_waiters(2).await;
            println!("queued w1 w2");
            nursery.join().await?;
            let _ = doomed.join().await;
        }
        Some("double") => {
            nursery
                .run_in_actor(ActorSpec::new("ask_twice"), &())
                .await?;
            nursery.join().await?;
        }
        Some("double_pause") => {
            nursery
                .run_in_actor(ActorSpec::new("pause_twice"), &())
                .await?;
            nursery.join().await?;
        }
        Some("wait_for_debugger") => {
            // Nothing in debug: no wait at all.
            println!("idle wait {}", maybe_wait_for_debugger().await);
            nursery
                .run_in_actor(ActorSpec::new("hold_for"), &300u64)
                .await?;
            while Lock::root().holder().is_none() {
                smol::Timer::after(Duration::from_millis(2)).await;
            }
            let waited = maybe_wait_for_debugger().await;
            println!("waited {waited}, in use after: {}", Lock::root().in_use());
            nursery.join().await?;
        }
        Some("asked") => {
            wait_while_asked(&mut nursery, 1_000).await?;
            nursery.join().await?;
            // Questions over and more than their window gone by.
            smol::Timer::after(Duration::from_millis(500)).await;
            println!("after the questions {}", maybe_wait_for_debugger().await);
        }
        Some("asked_forever") => {
            wait_while_asked(&mut nursery, 600_000).await?;
            // Still asked, but that hold is spent.
            println!("waited again {}", maybe_wait_for_debugger().await);
            nursery.cancel().await;
            println!("asker stopped");
        }
        Some("status") => {
            nursery
                .run_in_actor(ActorSpec::new("through_status"), &())
                .await?;
            nursery.join().await?;
        }
        Some("async_std") => {
            nursery
                .run_in_actor(ActorSpec::new("on_async_std"), &())
                .await?;
            nursery.join().await?;
        }
        Some("cancel_at_each_poll") => {
            nursery
                .run_in_actor(ActorSpec::new("cancel_at_each_poll"), &())
                .await?;
            nursery.join().await?;
        }
        Some("serve") => {
            // Serves lock dialogs to whoever connects, until stdin closes.
            println!("listening {}", actor.addr());
            let _ =
                smol::unblock(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink())).await;
        }
        other => {
            return Err(RemoteError::new(
                "Usage",
                format!("unknown scenario {other:?}"),
                actor.uid().clone(),
            ));
        }
    }
    println!("lock in use at exit: {}", Lock::root().in_use());
    Ok(())
}

fn main() -> std::process::ExitCode {
    smol_devx::log::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    smol_devx::actor::debugger::install(Runtime::new())
        .entry("contend", contend)
        .entry("hold_forever", hold_forever)
        .entry("hold_for", hold_for)
        .entry("keep_asking", keep_asking)
        .entry("take_once", take_once)
        .entry("hold_until_queue", hold_until_queue)
        .entry("ask_twice", ask_twice)
        .entry("pause_twice", pause_twice)
        .entry("cancel_at_each_poll", cancel_at_each_poll)
        .entry("on_async_std", on_async_std)
        .entry("through_status", through_status)
        .run(|actor| root(actor, args))
}

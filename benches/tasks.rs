//! `cargo bench --bench tasks`: what task tracking costs, against the
//! same work untracked in the same run:
//! - an instrumented await inside a tracked task (ready at the first
//!   poll, and ready at the second), against the bare await;
//! - an instrumented await outside any tracked task;
//! - a tracked spawn on a 1- and a 2-thread executor, against `spawn`,
//!   both from a tracked task;
//! - capturing and rendering 10,000 parked tasks three spans deep, as
//!   text and as JSON, alone and as the root's gathered dump; and the
//!   capture with the caches evicted first, as a program's dump meets it.

mod common;

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{header, measure, Stats};
use smol::future;
use smol_devx::msg::ActorUid;
use smol_devx::stack_on_sig::ActorDump;
use smol_devx::task::{self, Instrument, TaskTree};

/// Pending once (waking itself), then ready: an await that takes two
/// polls without any I/O.
struct TwoPolls(bool);

impl Future for TwoPolls {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

const AWAITS: u32 = 10_000;
const SAMPLES: usize = 200;

/// Runs `body` inside a tracked task (or not), which awaits `AWAITS`
/// times; the time per await.
fn per_await<F: Future<Output = ()>>(tracked: bool, body: &mut impl FnMut() -> F) -> f64 {
    let start = Instant::now();
    if tracked {
        future::block_on(task::track("bench", body()));
    } else {
        future::block_on(body());
    }
    start.elapsed().as_nanos() as f64 / f64::from(AWAITS)
}

/// Times a bare and an instrumented form of one operation, sample by
/// sample in alternation so that both see the same machine (it drifts by
/// 2x within minutes); reports both and the added cost, whose median is
/// taken over the per-sample differences. Each closure returns ns per op.
fn ab(what: &str, unit: &str, mut bare: impl FnMut() -> f64, mut other: impl FnMut() -> f64) {
    let warm_until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < warm_until {
        bare();
        other();
    }
    let (mut b, mut o, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let (x, y) = (bare(), other());
        b.push(x);
        o.push(y);
        added.push(y - x);
    }
    let base = Stats::from_samples(&format!("{what}, bare"), b);
    base.report(None);
    Stats::from_samples(&format!("{what}, {unit}"), o).report(Some(&base));
    Stats::from_samples(&format!("{what}: added by {unit}"), added).report(None);
}

fn compare<F: Future<Output = ()>, G: Future<Output = ()>>(
    what: &str,
    tracked: bool,
    mut bare: impl FnMut() -> F,
    mut instrumented: impl FnMut() -> G,
) {
    ab(
        what,
        "instrument",
        || per_await(tracked, &mut bare),
        || per_await(tracked, &mut instrumented),
    );
}

fn await_benches() {
    if let Ok(form) = std::env::var("TASKS_BENCH_PROFILE_AWAIT") {
        // For `valgrind --tool=callgrind` (instruction counts do not
        // drift with the machine): TASKS_BENCH_ROUNDS x 10k awaits of one
        // form, nothing else. Forms: bare1, inst1, bare2, inst2 (inside a
        // tracked task), out-bare1, out-inst1 (outside any).
        let rounds: u32 = std::env::var("TASKS_BENCH_ROUNDS").map_or(1000, |r| r.parse().unwrap());
        macro_rules! awaits {
            ($await:expr) => {
                async {
                    for i in 0..AWAITS {
                        black_box($await(i).await);
                    }
                }
            };
        }
        let one = |i: u32| black_box(async move { i });
        let two = |_: u32| black_box(TwoPolls(false));
        for _ in 0..rounds {
            match form.as_str() {
                "bare1" => future::block_on(task::track("bench", awaits!(one))),
                "inst1" => {
                    future::block_on(task::track("bench", awaits!(|i| one(i).instrument("one"))))
                }
                "bare2" => future::block_on(task::track("bench", awaits!(two))),
                "inst2" => {
                    future::block_on(task::track("bench", awaits!(|i| two(i).instrument("two"))))
                }
                "out-bare1" => future::block_on(awaits!(one)),
                "out-inst1" => future::block_on(awaits!(|i| one(i).instrument("out"))),
                other => panic!("unknown form {other}"),
            }
        }
        return;
    }
    compare(
        "await, 1 poll, tracked task",
        true,
        || async {
            for i in 0..AWAITS {
                black_box(black_box(async move { i }).await);
            }
        },
        || async {
            for i in 0..AWAITS {
                black_box(black_box(async move { i }).instrument("one").await);
            }
        },
    );
    compare(
        "await, 2 polls, tracked task",
        true,
        || async {
            for _ in 0..AWAITS {
                black_box(TwoPolls(false)).await;
            }
        },
        || async {
            for _ in 0..AWAITS {
                black_box(TwoPolls(false)).instrument("two").await;
            }
        },
    );
    compare(
        "await, 1 poll, untracked",
        false,
        || async {
            for i in 0..AWAITS {
                black_box(black_box(async move { i }).await);
            }
        },
        || async {
            for i in 0..AWAITS {
                black_box(black_box(async move { i }).instrument("out").await);
            }
        },
    );
}

const SPAWNS: u32 = 1_000;

/// Spawns `SPAWNS` empty tasks (tracked or not) on `ex` and awaits
/// them; ns per spawn. The spawner is a tracked task in both forms, as
/// every task of an actor is. `help`: whether this thread runs `ex`'s
/// tasks too, or leaves them all to the others.
fn spawns(ex: &smol::Executor<'_>, tracked: bool, help: bool) -> f64 {
    let start = Instant::now();
    let spawner = task::track("spawner", async {
        let mut tasks = Vec::with_capacity(SPAWNS as usize);
        for i in 0..SPAWNS {
            tasks.push(if tracked {
                task::spawn_on(ex, "spawned", async move { black_box(i) })
            } else {
                ex.spawn(async move { black_box(i) })
            });
        }
        for t in tasks {
            black_box(t.await);
        }
    });
    if help {
        future::block_on(ex.run(spawner));
    } else {
        future::block_on(spawner);
    }
    start.elapsed().as_nanos() as f64 / f64::from(SPAWNS)
}

/// Spawn + join on an executor run by `threads` threads (the spawning one
/// included).
fn spawn_benches() {
    if let Ok(form) = std::env::var("TASKS_BENCH_PROFILE_SPAWN") {
        // For callgrind, as the await forms: TASKS_BENCH_ROUNDS x 1,000
        // spawns on one thread, `bare` or `tracked`.
        let rounds: u32 = std::env::var("TASKS_BENCH_ROUNDS").map_or(100, |r| r.parse().unwrap());
        let ex = smol::Executor::new();
        for _ in 0..rounds {
            spawns(&ex, form == "tracked", true);
        }
        return;
    }
    // The last: every task runs and ends on the other thread, the case
    // where a record crosses cores each time.
    for (threads, help) in [(1, true), (2, true), (2, false)] {
        let ex = smol::Executor::new();
        let (stop, stopped) = async_channel::bounded::<()>(1);
        std::thread::scope(|s| {
            for _ in 1..threads {
                let stopped = stopped.clone();
                let ex = &ex;
                s.spawn(move || future::block_on(ex.run(stopped.recv())));
            }
            let what = if help {
                format!("spawn + join, {threads} thread(s)")
            } else {
                "spawn + join, run on the other thread".to_owned()
            };
            ab(
                &what,
                "tracking",
                || spawns(&ex, false, help),
                || spawns(&ex, true, help),
            );
            drop(stop);
        });
    }
}

fn dump_benches() {
    const PARKED: usize = 10_000;
    let mut parked: Vec<_> = (0..PARKED)
        .map(|_| {
            Box::pin(task::track(
                "parked",
                future::pending::<()>()
                    .instrument("innermost")
                    .instrument("middle")
                    .instrument("outermost"),
            ))
        })
        .collect();
    for t in &mut parked {
        assert!(future::block_on(future::poll_once(t)).is_none());
    }
    let tree = TaskTree::capture();
    assert!(tree.len() >= PARKED);
    let text = tree.to_text();
    let json = tree.to_json();
    println!(
        "10k parked tasks: {} lines of text ({} KiB), {} KiB of JSON",
        text.lines().count(),
        text.len() / 1024,
        json.len() / 1024
    );
    if let Ok(what) = std::env::var("TASKS_BENCH_PROFILE_DUMP") {
        // For `perf record`: one step only (capture, text, json, or
        // capture+text, capture+json), a while.
        let tree = TaskTree::capture();
        for _ in 0..300 {
            match what.as_str() {
                "text" => drop(black_box(tree.to_text())),
                "json" => drop(black_box(tree.to_json())),
                "capture+text" => drop(black_box(TaskTree::capture().to_text())),
                "capture+json" => drop(black_box(TaskTree::capture().to_json())),
                _ => drop(black_box(TaskTree::capture())),
            }
        }
        return;
    }
    // Freed, as a long-running program frees its dumps: glibc then keeps
    // heap of that size instead of returning it after every dump, and the
    // figures below are the steady state of a program that dumps again.
    // Page faults per dump are printed beside them: on this VM one costs
    // ~6 us, so a dump that faults its ~4 MiB in afresh (a program's
    // first) takes several ms more.
    drop((text, json));
    // The root's gathered dump of a tree whose one actor holds the 10k.
    let gathered = ActorDump {
        actor: ActorUid::new("root", "bench"),
        pid: std::process::id(),
        tasks: Some(tree.clone()),
        missing: None,
        children: Vec::new(),
    };
    let dumps: [(&str, &dyn Fn()); 7] = [
        ("capture 10k parked tasks, 3 spans deep", &|| {
            black_box(TaskTree::capture());
        }),
        ("capture + render as text", &|| {
            black_box(TaskTree::capture().to_text());
        }),
        ("of which render as text", &|| {
            black_box(tree.to_text());
        }),
        ("capture + render as JSON", &|| {
            black_box(TaskTree::capture().to_json());
        }),
        ("of which render as JSON", &|| {
            black_box(tree.to_json());
        }),
        ("gathered dump of those, as text", &|| {
            black_box(gathered.to_string());
        }),
        ("gathered dump of those, as JSON", &|| {
            black_box(gathered.to_json());
        }),
    ];
    // What a program's dump meets: task records and buffers not in any
    // cache. Evicting costs the same with or without the capture after
    // it, so the pairs' difference is the cold capture alone.
    let (mut plain, mut before_capture) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    ab(
        "capture, 8 MiB of caches evicted first",
        "capture",
        || timed(|| evict(&mut plain)),
        || {
            timed(|| {
                evict(&mut before_capture);
                black_box(TaskTree::capture());
            })
        },
    );
    for (what, dump) in dumps {
        let stats = measure(what, 1, 50, dump);
        let before = page_faults();
        for _ in 0..20 {
            dump();
        }
        let faults = (page_faults() - before) / 20;
        stats.report(None);
        println!("{:<44} {faults} page faults per dump", "");
    }
}

/// Writes one byte per cache line of `buf`, pushing everything else out
/// of the caches.
fn evict(buf: &mut [u8]) {
    for b in buf.iter_mut().step_by(64) {
        *b = b.wrapping_add(1);
    }
    black_box(buf);
}

/// How long `op` takes, in ns.
fn timed(op: impl FnOnce()) -> f64 {
    let start = Instant::now();
    op();
    start.elapsed().as_nanos() as f64
}

/// Minor page faults of this process so far, from `/proc/self/stat`.
fn page_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces): state,
    // ppid, pgrp, session, tty, tpgid, flags, minflt.
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    after_name
        .split(' ')
        .nth(7)
        .and_then(|f| f.parse().ok())
        .expect("minflt in /proc/self/stat")
}

fn main() {
    header("tasks");
    // `cargo bench --bench tasks -- dump` runs one group (for profiling).
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |group: &str| only.as_deref().is_none_or(|o| o == group);
    if wanted("await") {
        await_benches();
    }
    if wanted("spawn") {
        spawn_benches();
    }
    if wanted("dump") {
        dump_benches();
    }
}

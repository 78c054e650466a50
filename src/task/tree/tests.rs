//! The task tree's tests: captures of real tracked tasks.

use smol::future::{self, FutureExt};

use super::*;
use crate::task::{spawn, track, Instrument};

fn find<'a>(tree: &'a TaskTree, name: &str) -> Option<&'a TaskEntry> {
    tree.tasks.iter().find(|t| t.name == name)
}

fn spans_of(name: &str) -> Vec<SpanEntry> {
    let tree = TaskTree::capture();
    find(&tree, name)
        .map(|t| tree.spans_of(t).to_vec())
        .unwrap_or_default()
}

fn span(what: &'static str, depth: u32, leaf: bool) -> SpanEntry {
    SpanEntry {
        what: what.into(),
        depth,
        leaf,
    }
}

#[test]
fn spans_list_depth_first_whatever_the_opening_order() {
    let span_list = |spans: &[SpanRec]| {
        let mut out = Vec::new();
        push_spans(spans, &mut out);
        out
    };
    let rec = |id, parent, what| SpanRec { id, parent, what };
    // `join` awaits `left` and `right`; `left` opened `deep` after
    // `right` was opened.
    let spans = [
        rec(1, 0, "join"),
        rec(2, 1, "left"),
        rec(3, 1, "right"),
        rec(4, 2, "deep"),
        rec(6, 5, "orphan"),
    ];
    assert_eq!(
        span_list(&spans),
        vec![
            span("join", 0, false),
            span("left", 1, false),
            span("deep", 2, true),
            span("right", 1, true),
            span("orphan", 0, true),
        ]
    );
}

fn bare(id: u64, parent: Option<u64>) -> TaskEntry {
    TaskEntry {
        id,
        name: format!("t{id}").into(),
        parent,
        depth: 0,
        file: "x.rs".into(),
        line: 1,
        polling: false,
        for_us: 0,
        polls: 0,
        busy_us: 0,
        long_idle: false,
        spans: 0..0,
    }
}

#[test]
fn arrange_lists_depth_first_in_spawn_order() {
    // Registry order is arbitrary: shuffled here. 9's parent (8) ended.
    let mut tasks = vec![
        bare(5, Some(2)),
        bare(9, Some(8)),
        bare(1, None),
        bare(4, Some(1)),
        bare(2, Some(1)),
        bare(7, Some(5)),
        bare(3, None),
    ];
    arrange(&mut tasks);
    let got: Vec<(u64, u32)> = tasks.iter().map(|t| (t.id, t.depth)).collect();
    assert_eq!(
        got,
        [(1, 0), (2, 1), (5, 2), (7, 3), (4, 1), (3, 0), (9, 0)]
    );
    let tree = TaskTree {
        tasks,
        spans: Vec::new(),
    };
    let kids: Vec<u64> = tree.children(0).map(|t| t.id).collect();
    assert_eq!(kids, [2, 4]);
    assert_eq!(tree.children(6).count(), 0);
    assert_eq!(tree.children(usize::MAX).count(), 0);
    assert!(tree.to_text().contains(
        "task #9 t9 - idle 0us, 0 polls, busy 0us, spawned at x.rs:1 (parent #8 ended)\n"
    ));
    // Parent links in a cycle cannot come from the registry; were they
    // to, no task is lost.
    let mut cycle = vec![bare(2, Some(1)), bare(1, Some(2))];
    arrange(&mut cycle);
    let got: Vec<(u64, u32)> = cycle.iter().map(|t| (t.id, t.depth)).collect();
    assert_eq!(got, [(1, 0), (2, 1)]);
}

#[test]
fn spans_follow_their_tasks_into_task_order() {
    let task = |id, spans: Range<u32>| TaskEntry {
        spans,
        ..bare(id, None)
    };
    let spans = ["b0", "a0", "a1", "c0"].map(|w| span(w, 0, true)).to_vec();
    // Listed a, c, b; spans were captured b, a, c.
    let mut tasks = [task(1, 1..3), task(3, 3..4), task(2, 0..1), task(4, 0..0)];
    let ordered = in_task_order(&mut tasks, spans.clone());
    let whats = |t: &TaskEntry| {
        ordered[t.spans.start as usize..t.spans.end as usize]
            .iter()
            .map(|s| &*s.what)
            .collect::<Vec<_>>()
    };
    assert_eq!(whats(&tasks[0]), ["a0", "a1"]);
    assert_eq!(whats(&tasks[1]), ["c0"]);
    assert_eq!(whats(&tasks[2]), ["b0"]);
    assert_eq!(tasks[3].spans, 0..0);
    let all: Vec<&str> = ordered.iter().map(|s| &*s.what).collect();
    assert_eq!(all, ["a0", "a1", "c0", "b0"], "read front to back");
    // Already in order: the same list back, ranges untouched.
    let before = tasks.clone();
    assert_eq!(in_task_order(&mut tasks, ordered.clone()), ordered);
    assert_eq!(tasks, before);
}

#[test]
fn the_radix_sort_orders_any_keys_stably() {
    // Keys of every width, with repeats; the index records input order.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut pairs: Vec<(u64, usize)> = (0..3000)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> (x % 64) as u32 >> 1 << (i % 3), i)
        })
        .collect();
    pairs.extend([(u64::MAX, 3000), (0, 3001), (u64::MAX, 3002), (0, 3003)]);
    let mut expected = pairs.clone();
    expected.sort_by_key(|&(k, _)| k);
    sort_by_key(&mut pairs);
    assert_eq!(pairs, expected);
    let mut none: Vec<(u64, usize)> = Vec::new();
    sort_by_key(&mut none);
    assert!(none.is_empty());
}

#[test]
fn nested_spawns_nest_and_joins_branch() {
    let ex = smol::Executor::new();
    let (release, released) = async_channel::bounded::<()>(1);
    let tree = future::block_on(ex.run(async {
        let outer = crate::task::spawn_on(&ex, "outer-span-test", {
            let released = released.clone();
            async move {
                let inner = spawn("inner-span-test", {
                    let released = released.clone();
                    async move { released.recv().instrument("inner wait").await }
                });
                let joined = future::zip(
                    released.recv().instrument("left"),
                    future::pending::<()>()
                        .instrument("right")
                        .or(future::ready(())),
                )
                .instrument("join");
                let _ = joined.await;
                let _ = inner.await;
            }
        });
        // Registered at spawn, but its span shows once it was polled.
        while spans_of("inner-span-test").is_empty() || spans_of("outer-span-test").is_empty() {
            smol::Timer::after(Duration::from_millis(1)).await;
        }
        let tree = TaskTree::capture();
        release.send(()).await.unwrap();
        release.send(()).await.unwrap();
        outer.await;
        tree
    }));
    let at = tree
        .tasks
        .iter()
        .position(|t| t.name == "outer-span-test")
        .expect("outer");
    let outer = &tree.tasks[at];
    let inner = tree
        .children(at)
        .find(|t| t.name == "inner-span-test")
        .expect("inner under outer");
    assert_eq!(inner.parent, Some(outer.id));
    assert_eq!(inner.depth, outer.depth + 1);
    // `right` finished at its first poll (raced with `ready`); `left`
    // waits, under `join`.
    assert_eq!(
        tree.spans_of(outer),
        [span("join", 0, false), span("left", 1, true)]
    );
    assert_eq!(tree.spans_of(inner), [span("inner wait", 0, true)]);
    let text = tree.to_string();
    assert!(text.contains("await \"left\" <- waiting"), "{text}");
    let back: TaskTree = serde_json::from_str(&tree.to_json()).unwrap();
    assert_eq!(back, tree);
    assert!(find(&TaskTree::capture(), "outer-span-test").is_none());
}

#[test]
fn a_future_dropped_mid_span_leaves_no_span() {
    let (step_tx, step_rx) = async_channel::bounded::<()>(1);
    let (ack_tx, ack_rx) = async_channel::bounded::<()>(1);
    let task = spawn("dropper-span-test", async move {
        let mut waiting = Box::pin(future::pending::<()>().instrument("dropped"));
        assert!(future::poll_once(&mut waiting).await.is_none());
        ack_tx.send(()).await.unwrap();
        step_rx.recv().instrument("step").await.unwrap();
        drop(waiting);
        ack_tx.send(()).await.unwrap();
        step_rx.recv().instrument("step").await.unwrap();
    });
    future::block_on(async {
        ack_rx.recv().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut seen = spans_of("dropper-span-test");
        while seen.len() < 2 && std::time::Instant::now() < deadline {
            smol::Timer::after(Duration::from_millis(1)).await;
            seen = spans_of("dropper-span-test");
        }
        assert_eq!(seen, vec![span("dropped", 0, true), span("step", 0, true)]);
        step_tx.send(()).await.unwrap();
        ack_rx.recv().await.unwrap();
        let mut seen = spans_of("dropper-span-test");
        while seen.iter().any(|s| s.what == "dropped") || seen.is_empty() {
            assert!(std::time::Instant::now() < deadline, "{seen:?}");
            smol::Timer::after(Duration::from_millis(1)).await;
            seen = spans_of("dropper-span-test");
        }
        assert_eq!(seen, vec![span("step", 0, true)]);
        step_tx.send(()).await.unwrap();
        task.await;
    });
}

#[test]
fn nested_spans_dropped_mid_flight_leave_none_behind() {
    let (step_tx, step_rx) = async_channel::bounded::<()>(1);
    let mut task = Box::pin(track("nested-drop-span-test", async move {
        let mut nested = Box::pin(
            future::pending::<()>()
                .instrument("inner")
                .instrument("outer"),
        );
        assert!(future::poll_once(&mut nested).await.is_none());
        step_rx.recv().await.unwrap();
        drop(nested);
        step_rx.recv().await.unwrap();
    }));
    assert!(future::block_on(future::poll_once(&mut task)).is_none());
    assert_eq!(
        spans_of("nested-drop-span-test"),
        [span("outer", 0, false), span("inner", 1, true)]
    );
    step_tx.try_send(()).unwrap();
    assert!(future::block_on(future::poll_once(&mut task)).is_none());
    assert_eq!(spans_of("nested-drop-span-test"), []);
}

#[test]
fn a_task_dropped_mid_span_leaves_nothing() {
    let mut task = Box::pin(track(
        "doomed-span-test",
        future::pending::<()>().instrument("a").instrument("b"),
    ));
    assert!(future::block_on(future::poll_once(&mut task)).is_none());
    assert_eq!(
        spans_of("doomed-span-test"),
        vec![span("b", 0, false), span("a", 1, true)]
    );
    drop(task);
    assert!(find(&TaskTree::capture(), "doomed-span-test").is_none());
}

#[test]
fn instrument_outside_a_tracked_task_records_nothing() {
    // Nothing to record into: no span opens, and the future just runs.
    assert_eq!(super::super::span::open_span("untracked"), None);
    let outside = future::block_on(
        async {
            let inner = super::super::span::open_span("inner");
            (inner, 5)
        }
        .instrument("untracked"),
    );
    assert_eq!(outside, (None, 5));
    // The same inside a tracked task does open one.
    let inside = future::block_on(track("opens-span-test", async {
        super::super::span::open_span("inner").is_some()
    }));
    assert!(inside);
}

#[test]
fn long_idle_tasks_are_marked() {
    let mut task = Box::pin(track(
        "sleepy-span-test",
        future::pending::<()>().instrument("nap"),
    ));
    assert!(future::block_on(future::poll_once(&mut task)).is_none());
    std::thread::sleep(LONG_IDLE + Duration::from_millis(20));
    let tree = TaskTree::capture();
    let t = find(&tree, "sleepy-span-test").unwrap();
    assert!(t.long_idle);
    let text = tree.to_string();
    assert!(text.contains("await \"nap\" <- waiting"), "{text}");
    assert!(text.contains("[LONG IDLE]"), "{text}");
}

#[test]
fn a_task_stuck_in_one_poll_is_marked() {
    let (polling, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|s| {
        s.spawn(|| {
            future::block_on(track("blocking-poll-test", async {
                polling.wait();
                release.wait();
            }))
        });
        polling.wait();
        std::thread::sleep(LONG_IDLE + Duration::from_millis(20));
        let text = TaskTree::capture().to_string();
        release.wait();
        let line = text
            .lines()
            .find(|l| l.contains("blocking-poll-test"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            line.contains("[LONG POLL: blocks its thread] polling"),
            "{line}"
        );
    });
}

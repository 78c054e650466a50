//! The registry's own tests: its internals, as tracked tasks use them.

use super::*;
use crate::task::tracked::{spawn, track};

/// What the tests look at of one task.
struct Seen {
    id: u64,
    name: Cow<'static, str>,
    parent: Option<u64>,
    polls: u64,
    polling: bool,
    site: &'static Location<'static>,
    spans: Vec<SpanRec>,
}

fn seen_all() -> Vec<Seen> {
    snapshot(live(), |v| Seen {
        id: v.id,
        name: v.name.clone(),
        parent: v.parent,
        polls: v.polls,
        polling: v.polling,
        site: v.site,
        spans: v.spans.to_vec(),
    })
}

fn find(id: u64) -> Option<Seen> {
    seen_all().into_iter().find(|n| n.id == id)
}

#[test]
fn a_task_is_registered_until_it_ends() {
    let fut = track("short", async { current_id() });
    let id = fut.id();
    let view = find(id).expect("registered at creation");
    assert_eq!(view.name, "short");
    assert_eq!(view.polls, 0);
    assert!(view.site.file().ends_with("registry/tests.rs"));
    let seen = smol::block_on(fut);
    assert_eq!(seen, Some(id), "the task sees itself as current");
    assert!(find(id).is_none(), "finished tasks leave");
    assert_eq!(current_id(), None);
}

#[test]
fn a_task_polled_inside_another_s_poll_shows_both_polling() {
    let outer = track("outer-poll", async {
        let outer = current_id().unwrap();
        let inner = track("inner-poll", async move {
            let inner = current_id().unwrap();
            (
                is_polling(outer),
                is_polling(inner),
                find(outer).map(|v| v.polling),
            )
        });
        // A nested `block_on`, as sync code called from a task does.
        let seen = smol::block_on(inner);
        (seen, is_polling(outer), find(outer).map(|v| v.polling))
    });
    let ((outer_seen, inner_seen, outer_view), after, view_after) = smol::block_on(outer);
    assert!(
        outer_seen && inner_seen,
        "both poll: the outer one waits in its poll"
    );
    assert_eq!(outer_view, Some(true));
    assert!(after, "still in its own poll once the inner one ended");
    assert_eq!(view_after, Some(true));
}

#[test]
fn a_thread_s_polling_slot_is_reused_once_it_ends() {
    let made = || lock(&THREADS).all.len();
    let run = || {
        std::thread::spawn(|| smol::block_on(track("on-a-thread", async { current_id() })))
            .join()
            .unwrap()
    };
    run();
    let before = made();
    // Other tests' threads may take slots meanwhile, but 20 threads
    // one after the other need at most one more each of those.
    for _ in 0..20 {
        assert!(run().is_some());
    }
    assert!(made() < before + 20, "{before} -> {}", made());
}

#[test]
fn a_task_is_polling_only_during_its_polls() {
    let mut fut = Box::pin(track("polling-test", async {
        let me = current_id().unwrap();
        let during = is_polling(me);
        smol::future::yield_now().await;
        (me, during)
    }));
    let id = fut.id();
    assert!(!is_polling(id), "not polled yet");
    assert!(smol::block_on(smol::future::poll_once(&mut fut)).is_none());
    assert!(!is_polling(id), "between polls");
    let (me, during) = smol::block_on(fut);
    assert_eq!(me, id);
    assert!(during);
    assert!(!is_polling(id), "finished");
}

#[test]
fn children_name_their_spawner_as_parent() {
    let (parent, child_parent) = smol::block_on(track("parent", async {
        let me = current_id();
        let child = spawn("child", async {
            smol::future::yield_now().await;
            current_id().and_then(find).and_then(|v| v.parent)
        });
        (me, child.await)
    }));
    assert!(parent.is_some());
    assert_eq!(child_parent, parent);
}

#[test]
fn a_span_awaited_in_a_loop_shows_each_time() {
    use crate::task::Instrument;
    let (tx, rx) = async_channel::bounded::<()>(1);
    let task = spawn("looping-span-test", async move {
        for _ in 0..3 {
            if rx.recv().instrument("next item").await.is_err() {
                break;
            }
        }
    });
    let id = loop {
        let found = seen_all()
            .into_iter()
            .find(|v| v.name == "looping-span-test");
        if let Some(v) = found {
            break v.id;
        }
        std::thread::yield_now();
    };
    for _ in 0..3 {
        // Idle in the span (published, maybe by the skip path).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let spans = find(id).map(|v| v.spans).unwrap_or_default();
            if spans.len() == 1 && spans[0].what == "next item" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{spans:?}");
            std::thread::yield_now();
        }
        smol::block_on(tx.send(())).unwrap();
    }
    smol::block_on(task);
}

#[test]
fn tasks_finished_on_another_thread_leave_and_give_their_slots_back() {
    // On a thread of its own, so that it has a shard of its own.
    std::thread::spawn(|| {
        let shard = my_shard() as usize;
        let mut ids = Vec::new();
        for _ in 0..10 {
            let tasks: Vec<_> = (0..100)
                .map(|i| track("finished-elsewhere", async move { i }))
                .collect();
            ids = tasks.iter().map(|t| t.id()).collect();
            std::thread::spawn(move || {
                for t in tasks {
                    smol::block_on(t);
                }
            })
            .join()
            .unwrap();
        }
        // Spawns here took them back: without, the shard would hold
        // 1,000 slots.
        let slots = lock(&REGISTRY[shard].shard).slots.len();
        assert!(slots <= 200, "{slots} slots");
        let seen = seen_all();
        assert!(ids.iter().all(|id| seen.iter().all(|v| v.id != *id)));
    })
    .join()
    .unwrap();
}

#[test]
fn a_dropped_task_leaves_the_registry() {
    let mut fut = Box::pin(track("forever", smol::future::pending::<()>()));
    let id = fut.id();
    assert!(smol::block_on(smol::future::poll_once(&mut fut)).is_none());
    let view = find(id).unwrap();
    assert_eq!(view.polls, 1);
    assert!(!view.polling);
    drop(fut);
    assert!(find(id).is_none());
}

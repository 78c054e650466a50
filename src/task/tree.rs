//! The task tree of this process, rendered: children under the task that
//! spawned them, await spans under their task. One content, two forms:
//! text ([`Display`](std::fmt::Display)) for people and JSON (serde) for
//! tools.
//!
//! ```
//! use smol_devx::task::{self, Instrument, TaskTree};
//!
//! smol::block_on(task::track("main", async {
//!     let stuck = task::spawn("stuck", smol::future::pending::<()>().instrument("forever"));
//!     smol::Timer::after(std::time::Duration::from_millis(10)).await;
//!     let tree = TaskTree::capture();
//!     let text = tree.to_string();
//!     assert!(text.contains("task #"), "{text}");
//!     assert!(text.contains("await \"forever\""), "{text}");
//!     assert!(tree.to_json().contains("\"forever\""));
//!     drop(stuck);
//! }));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::registry::{snapshot, NodeView, SpanRec};

/// A task idle this long is marked as such in dumps: its innermost
/// spans are where it is stuck. A task in one poll this long is marked
/// too: it blocks its thread.
pub const LONG_IDLE: Duration = Duration::from_secs(1);

/// Every tracked task of this process, as a forest.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskTree {
    /// Tasks whose spawner is not tracked (or has finished).
    pub tasks: Vec<TaskEntry>,
}

/// One task, with its spans and the tasks it spawned.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskEntry {
    /// Unique within the process, in spawn order.
    pub id: u64,
    /// The name given at spawn.
    pub name: Cow<'static, str>,
    /// The spawning task; set on a top-level entry whose parent ended.
    pub parent: Option<u64>,
    /// Source file of the spawn.
    pub file: Cow<'static, str>,
    /// Line of the spawn.
    pub line: u32,
    /// Whether the task was being polled when captured.
    pub polling: bool,
    /// Microseconds in the current state (polling, or idle; since spawn
    /// for a task never polled), to the registry clock's few-ms grain.
    pub for_us: u64,
    /// Polls so far.
    pub polls: u64,
    /// Microseconds spent in polls so far (an estimate, see the
    /// registry's clock).
    pub busy_us: u64,
    /// Idle for [`LONG_IDLE`] or more.
    pub long_idle: bool,
    /// Open await spans, depth first, as of the end of the task's last
    /// poll.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<SpanEntry>,
    /// Tasks this one spawned that are still alive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<TaskEntry>,
}

/// One open await span. A task's spans form a tree (a future awaiting
/// several at once has several children); they are listed depth first,
/// each with its depth, the way they print.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SpanEntry {
    /// The label given to `instrument`.
    pub what: Cow<'static, str>,
    /// 0 for a span the task's body awaits directly, 1 for a span inside
    /// it, and so on.
    pub depth: u32,
    /// Whether no span is open inside this one: the task waits here.
    pub leaf: bool,
}

impl TaskTree {
    /// Captures the tracked tasks of this process now.
    pub fn capture() -> TaskTree {
        Self::from_views(snapshot(span_list))
    }

    /// `views` sorted by id. A child is always younger than its parent
    /// (it was registered during its parent's poll): walking from the
    /// youngest, every task's children are complete when it is reached.
    fn from_views(views: Vec<NodeView<Vec<SpanEntry>>>) -> TaskTree {
        let ids: Vec<u64> = views.iter().map(|v| v.id).collect();
        let mut children: Vec<Vec<TaskEntry>> = Vec::new();
        children.resize_with(views.len(), Vec::new);
        let mut tasks = Vec::new();
        for (i, view) in views.into_iter().enumerate().rev() {
            let mut kids = std::mem::take(&mut children[i]);
            kids.reverse();
            let entry = TaskEntry {
                id: view.id,
                name: view.name,
                parent: view.parent,
                file: Cow::Borrowed(view.site.file()),
                line: view.site.line(),
                polling: view.polling,
                for_us: micros(view.for_),
                polls: view.polls,
                busy_us: micros(view.busy),
                long_idle: !view.polling && view.for_ >= LONG_IDLE,
                spans: view.spans,
                children: kids,
            };
            match view.parent.and_then(|p| ids.binary_search(&p).ok()) {
                Some(parent) => children[parent].push(entry),
                None => tasks.push(entry),
            }
        }
        tasks.reverse();
        TaskTree { tasks }
    }

    /// The number of tasks in the tree.
    pub fn len(&self) -> usize {
        fn count(t: &TaskEntry) -> usize {
            1 + t.children.iter().map(count).sum::<usize>()
        }
        self.tasks.iter().map(count).sum()
    }

    /// Whether no task is tracked.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The tree as text, one line per task and per open span, indented
    /// by nesting (what [`Display`](fmt::Display) prints).
    pub fn to_text(&self) -> String {
        let lines = self.len() + self.span_count();
        let mut out = Text(String::with_capacity(96 * lines));
        for task in &self.tasks {
            out.task(task, 0);
        }
        out.0
    }

    fn span_count(&self) -> usize {
        fn count(t: &TaskEntry) -> usize {
            t.spans.len() + t.children.iter().map(count).sum::<usize>()
        }
        self.tasks.iter().map(count).sum()
    }

    /// The tree as JSON, with the same content as the text form.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(128 * self.len() + 64 * self.span_count());
        serde_json::to_writer(&mut out, self).expect("a task tree is plain data");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Spans come in opening order, so a span's parent precedes it; stacks
/// are short, so children are found by a scan.
fn span_list(spans: &[SpanRec]) -> Vec<SpanEntry> {
    let chain = spans.first().is_some_and(|s| s.parent == 0)
        && spans.windows(2).all(|w| w[1].parent == w[0].id);
    if chain {
        // The common shape (nested awaits, no joins): already depth first.
        let last = spans.len() - 1;
        return spans
            .iter()
            .enumerate()
            .map(|(i, s)| SpanEntry {
                what: Cow::Borrowed(s.what),
                depth: i as u32,
                leaf: i == last,
            })
            .collect();
    }
    let mut out = Vec::with_capacity(spans.len());
    let is_root = |s: &SpanRec| s.parent == 0 || !spans.iter().any(|p| p.id == s.parent);
    // Depth-first, with an explicit stack (spans, depth) in reverse so the
    // first-opened child comes out first.
    let mut todo: Vec<(&SpanRec, u32)> = spans
        .iter()
        .rev()
        .filter(|s| is_root(s))
        .map(|s| (s, 0))
        .collect();
    while let Some((span, depth)) = todo.pop() {
        let before = todo.len();
        todo.extend(
            spans
                .iter()
                .rev()
                .filter(|c| c.parent == span.id)
                .map(|c| (c, depth + 1)),
        );
        out.push(SpanEntry {
            what: Cow::Borrowed(span.what),
            depth,
            leaf: todo.len() == before,
        });
    }
    out
}

/// The text form is built with plain pushes into one buffer: `core::fmt`
/// makes a dozen small writes per line and formats integers through a
/// generic padding path, which made rendering 10k tasks three times
/// slower.
struct Text(String);

impl Text {
    fn push(&mut self, s: &str) {
        self.0.push_str(s);
    }

    fn num(&mut self, mut n: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // Only ASCII digits were written.
        self.push(std::str::from_utf8(&buf[i..]).unwrap_or_default());
    }

    /// `n` with `digits` decimals, zero-padded (`4`, 2 -> `04`).
    fn frac(&mut self, n: u64, digits: u32) {
        let mut scale = 10u64.pow(digits.saturating_sub(1));
        while scale > 1 && n < scale {
            self.push("0");
            scale /= 10;
        }
        self.num(n);
    }

    /// A duration the way a person reads it: `850us`, `12.3ms`, `4.20s`.
    fn human(&mut self, us: u64) {
        match us {
            0..=999 => {
                self.num(us);
                self.push("us");
            }
            1_000..=999_999 => {
                self.num(us / 1_000);
                self.push(".");
                self.num(us % 1_000 / 100);
                self.push("ms");
            }
            _ => {
                self.num(us / 1_000_000);
                self.push(".");
                self.frac(us % 1_000_000 / 10_000, 2);
                self.push("s");
            }
        }
    }

    fn pad(&mut self, depth: usize) {
        for _ in 0..depth {
            self.push("  ");
        }
    }

    fn task(&mut self, t: &TaskEntry, depth: usize) {
        self.pad(depth);
        self.push("task #");
        self.num(t.id);
        self.push(" ");
        self.push(&t.name);
        self.push(if !t.polling {
            " - idle "
        } else if t.for_us >= LONG_IDLE.as_micros() as u64 {
            // No await point for that long: it holds its thread, and
            // every task queued behind it waits.
            " - [LONG POLL: blocks its thread] polling "
        } else {
            " - polling "
        });
        self.human(t.for_us);
        self.push(", ");
        self.num(t.polls);
        self.push(" polls, busy ");
        self.human(t.busy_us);
        self.push(", spawned at ");
        self.push(&t.file);
        self.push(":");
        self.num(u64::from(t.line));
        if let Some(parent) = t.parent.filter(|_| depth == 0) {
            self.push(" (parent #");
            self.num(parent);
            self.push(" ended)");
        }
        if t.long_idle {
            self.push(" [LONG IDLE]");
        }
        self.push("\n");
        for span in &t.spans {
            self.span(t, span, depth + 1);
        }
        for child in &t.children {
            self.task(child, depth + 1);
        }
    }

    fn span(&mut self, t: &TaskEntry, s: &SpanEntry, depth: usize) {
        self.pad(depth + s.depth as usize);
        let plain = s
            .what
            .bytes()
            .all(|b| b >= b' ' && b != b'"' && b != b'\\' && b != 0x7f);
        if plain {
            // Labels are string literals: quoting them needs no escapes.
            self.push("await \"");
            self.push(&s.what);
            self.push("\"");
        } else {
            self.push("await ");
            self.push(&format!("{:?}", s.what));
        }
        if s.leaf && !t.polling {
            // A leaf span of an idle task is what the task waits on.
            self.push(" <- waiting ");
            self.human(t.for_us);
            if t.long_idle {
                self.push(" [LONG IDLE]");
            }
        }
        self.push("\n");
    }
}

impl fmt::Display for TaskTree {
    /// One line per task and per open span, indented by nesting.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

#[cfg(test)]
mod tests {
    use smol::future::{self, FutureExt};

    use super::*;
    use crate::task::{spawn, track, Instrument};

    fn find<'a>(tasks: &'a [TaskEntry], name: &str) -> Option<&'a TaskEntry> {
        tasks.iter().find_map(|t| {
            if t.name == name {
                Some(t)
            } else {
                find(&t.children, name)
            }
        })
    }

    fn spans_of(name: &str) -> Vec<SpanEntry> {
        find(&TaskTree::capture().tasks, name)
            .map(|t| t.spans.clone())
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

    #[test]
    fn durations_read_like_a_person_writes_them() {
        let h = |us| {
            let mut t = Text(String::new());
            t.human(us);
            t.0
        };
        assert_eq!(
            [
                h(0),
                h(999),
                h(1_250),
                h(999_999),
                h(4_206_000),
                h(7_040_000)
            ],
            ["0us", "999us", "1.2ms", "999.9ms", "4.20s", "7.04s"]
        );
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
            while find(&TaskTree::capture().tasks, "inner-span-test").is_none()
                || spans_of("outer-span-test").is_empty()
            {
                smol::Timer::after(Duration::from_millis(1)).await;
            }
            let tree = TaskTree::capture();
            release.send(()).await.unwrap();
            release.send(()).await.unwrap();
            outer.await;
            tree
        }));
        let outer = find(&tree.tasks, "outer-span-test").expect("outer");
        let inner = find(&outer.children, "inner-span-test").expect("inner under outer");
        assert_eq!(inner.parent, Some(outer.id));
        // `right` finished at its first poll (raced with `ready`); `left`
        // waits, under `join`.
        assert_eq!(
            outer.spans,
            vec![span("join", 0, false), span("left", 1, true)]
        );
        assert_eq!(inner.spans, vec![span("inner wait", 0, true)]);
        let text = tree.to_string();
        assert!(text.contains("await \"left\" <- waiting"), "{text}");
        let back: TaskTree = serde_json::from_str(&tree.to_json()).unwrap();
        assert_eq!(back, tree);
        assert!(find(&TaskTree::capture().tasks, "outer-span-test").is_none());
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
        assert!(find(&TaskTree::capture().tasks, "doomed-span-test").is_none());
    }

    #[test]
    fn instrument_outside_a_tracked_task_records_nothing() {
        // Nothing to record into: no span opens, and the future just runs.
        assert_eq!(super::super::registry::open_span("untracked"), None);
        let outside = future::block_on(
            async {
                let inner = super::super::registry::open_span("inner");
                (inner, 5)
            }
            .instrument("untracked"),
        );
        assert_eq!(outside, (None, 5));
        // The same inside a tracked task does open one.
        let inside = future::block_on(track("opens-span-test", async {
            super::super::registry::open_span("inner").is_some()
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
        let t = find(&tree.tasks, "sleepy-span-test").unwrap();
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
}

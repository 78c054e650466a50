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
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::registry::{live, snapshot, NodeView, SpanRec, INLINE_SPANS};

/// A task idle this long is marked as such in dumps: its innermost
/// spans are where it is stuck. A task in one poll this long is marked
/// too: it blocks its thread.
pub const LONG_IDLE: Duration = Duration::from_secs(1);

/// Every tracked task of this process, as a forest laid out flat: each
/// task is followed by the tasks it spawned (and theirs), its `depth`
/// saying how deep it sits, and every task's open spans live in one
/// shared list. A 10k-task capture thus makes three allocations, not
/// tens of thousands.
///
/// ```
/// use smol_devx::task::{self, Instrument, TaskTree};
///
/// smol::block_on(task::track("parent", async {
///     let child = task::spawn("child", smol::future::pending::<()>().instrument("nap"));
///     smol::Timer::after(std::time::Duration::from_millis(10)).await;
///     let tree = TaskTree::capture();
///     let at = tree.tasks.iter().position(|t| t.name == "parent").unwrap();
///     let kid = tree.children(at).find(|t| t.name == "child").unwrap();
///     assert_eq!(kid.depth, tree.tasks[at].depth + 1);
///     assert_eq!(tree.spans_of(kid)[0].what, "nap");
///     drop(child);
/// }));
/// ```
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskTree {
    /// Every task, depth first, children in spawn order.
    pub tasks: Vec<TaskEntry>,
    /// The open spans of all tasks; [`TaskEntry::spans`] says which.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<SpanEntry>,
}

/// One task: what it is, how it runs, where it sits in the tree.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskEntry {
    /// Unique within the process, in spawn order.
    pub id: u64,
    /// The name given at spawn.
    pub name: Cow<'static, str>,
    /// The spawning task; set on a top-level entry whose parent ended.
    pub parent: Option<u64>,
    /// 0 for a task at the top (spawned by no tracked task, or by one
    /// that has ended); one more than its parent's otherwise.
    pub depth: u32,
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
    /// Where its open spans (as of the end of its last poll) are in
    /// [`TaskTree::spans`], depth first; read them with
    /// [`TaskTree::spans_of`].
    #[serde(default, skip_serializing_if = "no_spans")]
    pub spans: Range<u32>,
}

fn no_spans(spans: &Range<u32>) -> bool {
    spans.is_empty()
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
        // Room for every task's inline spans: pages never written are
        // never touched, while growing this list copied it ~13 times.
        let live = live();
        let mut spans = Vec::with_capacity(INLINE_SPANS * live);
        let mut tasks = snapshot(live, |view| {
            let start = spans.len() as u32;
            push_spans(view.spans, &mut spans);
            // An empty range is always 0..0: what JSON reads back, since
            // it leaves empty ones out.
            let end = spans.len() as u32;
            entry(view, if end == start { 0..0 } else { start..end })
        });
        arrange(&mut tasks);
        let spans = in_task_order(&mut tasks, spans);
        TaskTree { tasks, spans }
    }

    /// The open spans of `task`, an entry of this tree, depth first.
    pub fn spans_of(&self, task: &TaskEntry) -> &[SpanEntry] {
        let range = task.spans.start as usize..task.spans.end as usize;
        self.spans.get(range).unwrap_or_default()
    }

    /// The tasks that `self.tasks[at]` spawned and that are still alive,
    /// in spawn order.
    pub fn children(&self, at: usize) -> impl Iterator<Item = &TaskEntry> + '_ {
        let depth = self.tasks.get(at).map_or(u32::MAX, |t| t.depth);
        self.tasks
            .get(at.saturating_add(1)..)
            .unwrap_or_default()
            .iter()
            .take_while(move |t| t.depth > depth)
            .filter(move |t| t.depth == depth + 1)
    }

    /// The number of tasks in the tree.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task is tracked.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The tree as JSON (`serde_json` of its `Serialize`), with the same
    /// content as the text form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a task tree is strings and numbers")
    }
}

/// `spans` (the runs of `tasks`, in any order) in task order, with each
/// task's range moved: rendering then reads both lists front to back (in
/// registry order it missed the cache once per task, half of a 10k-task
/// text render). Already so when the registry listed the tasks in tree
/// order, as it lists a thread's tasks until it reuses slots: then
/// nothing is copied.
fn in_task_order(tasks: &mut [TaskEntry], spans: Vec<SpanEntry>) -> Vec<SpanEntry> {
    let mut end = 0;
    let in_order = tasks.iter().all(|t| {
        let next = t.spans.is_empty() || t.spans.start == end;
        end = end.max(t.spans.end);
        next
    });
    if in_order && end as usize == spans.len() {
        return spans;
    }
    let mut ordered = Vec::with_capacity(spans.len());
    for task in tasks {
        let run = task.spans.start as usize..task.spans.end as usize;
        let start = ordered.len() as u32;
        ordered.extend_from_slice(spans.get(run).unwrap_or_default());
        task.spans = match ordered.len() as u32 {
            end if end == start => 0..0,
            end => start..end,
        };
    }
    ordered
}

/// A task's entry, at depth 0 until [`arrange`] places it.
fn entry(view: NodeView<'_>, spans: Range<u32>) -> TaskEntry {
    TaskEntry {
        id: view.id,
        name: view.name.clone(),
        parent: view.parent,
        depth: 0,
        file: Cow::Borrowed(view.site.file()),
        line: view.site.line(),
        polling: view.polling,
        for_us: micros(view.for_),
        polls: view.polls,
        busy_us: micros(view.busy),
        long_idle: !view.polling && view.for_ >= LONG_IDLE,
        spans,
    }
}

/// Orders `tasks` (given in any order) depth first, each task's children
/// after it in id (spawn) order, and sets their depths. Works on indices
/// and moves each entry about once: for 10k tasks, building nested
/// vectors instead cost more than reading the registry.
///
/// A child is always younger than its parent (it was registered during
/// its parent's poll), so parent links form no cycle; were one to, its
/// tasks would still be listed, at the top.
fn arrange(tasks: &mut [TaskEntry]) {
    let n = tasks.len();
    let mut by_id: Vec<(u64, usize)> = tasks.iter().map(|t| t.id).zip(0..).collect();
    sort_by_key(&mut by_id);
    // (parent id, child) in child id order; the sort is stable, so each
    // parent's children stay in spawn order. Walking both lists in step
    // then finds every parent without a search.
    // Sized up front: collecting a filter grows the vector from empty,
    // a dozen copies for 10k tasks.
    let mut by_parent = Vec::with_capacity(n);
    by_parent.extend(
        by_id
            .iter()
            .filter_map(|&(_, i)| tasks[i].parent.map(|p| (p, i))),
    );
    sort_by_key(&mut by_parent);
    let mut kids_of = vec![0..0; n];
    let mut has_parent = vec![false; n];
    let mut j = 0;
    for &(id, i) in &by_id {
        while by_parent.get(j).is_some_and(|&(p, _)| p < id) {
            j += 1;
        }
        let start = j;
        while let Some(&(_, kid)) = by_parent.get(j).filter(|&&(p, _)| p == id) {
            has_parent[kid] = true;
            j += 1;
        }
        kids_of[i] = start..j;
    }
    // `order[k]`: the index of the task that goes to position `k`.
    let mut order = Vec::with_capacity(n);
    let mut placed = vec![false; n];
    let mut todo = Vec::with_capacity(n);
    todo.extend(
        by_id
            .iter()
            .rev()
            .filter(|&&(_, i)| !has_parent[i])
            .map(|&(_, i)| (i, 0)),
    );
    let mut leftovers = by_id.iter().map(|&(_, i)| i);
    loop {
        while let Some((i, depth)) = todo.pop() {
            if std::mem::replace(&mut placed[i], true) {
                continue;
            }
            tasks[i].depth = depth;
            order.push(i);
            todo.extend(
                by_parent[kids_of[i].clone()]
                    .iter()
                    .rev()
                    .map(|&(_, k)| (k, depth + 1)),
            );
        }
        match leftovers.find(|&i| !placed[i]) {
            Some(i) => todo.push((i, 0)),
            None => break,
        }
    }
    // Apply the permutation in place, one cycle at a time.
    let mut done = vec![false; n];
    for start in 0..n {
        let mut at = start;
        while !done[at] {
            done[at] = true;
            let from = order[at];
            if from == start {
                break;
            }
            tasks.swap(at, from);
            at = from;
        }
    }
}

/// Sorts `(key, index)` pairs by key, stably: a radix sort, 11 bits a
/// pass, as many passes as the largest key needs (two for the ids of a
/// process that spawned fewer than four million tasks). A comparison
/// sort of 10k ids was a quarter of a capture's instructions.
fn sort_by_key(pairs: &mut Vec<(u64, usize)>) {
    // The registry lists a thread's tasks in spawn order until it reuses
    // slots: the ids often come sorted.
    if pairs.is_sorted_by_key(|&(k, _)| k) {
        return;
    }
    const BITS: u32 = 11;
    const MASK: u64 = (1 << BITS) - 1;
    let max = pairs.iter().map(|&(k, _)| k).max().unwrap_or(0);
    let mut from = std::mem::take(pairs);
    let mut to = vec![(0, 0); from.len()];
    let mut shift = 0;
    while shift < u64::BITS && max >> shift != 0 {
        let digit = |k: u64| ((k >> shift) & MASK) as usize;
        let mut at = [0usize; 1 << BITS];
        for &(k, _) in &from {
            at[digit(k)] += 1;
        }
        let mut sum = 0;
        for slot in &mut at {
            (*slot, sum) = (sum, sum + *slot);
        }
        for &pair in &from {
            let d = digit(pair.0);
            to[at[d]] = pair;
            at[d] += 1;
        }
        std::mem::swap(&mut from, &mut to);
        shift += BITS;
    }
    *pairs = from;
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Appends `spans` to `out` depth first. Spans come in opening order, so
/// a span's parent precedes it; stacks are short, so children are found
/// by a scan.
fn push_spans(spans: &[SpanRec], out: &mut Vec<SpanEntry>) {
    let chain = spans.first().is_some_and(|s| s.parent == 0)
        && spans.windows(2).all(|w| w[1].parent == w[0].id);
    if chain {
        // The common shape (nested awaits, no joins): already depth first.
        let last = spans.len() - 1;
        out.extend(spans.iter().enumerate().map(|(i, s)| SpanEntry {
            what: Cow::Borrowed(s.what),
            depth: i as u32,
            leaf: i == last,
        }));
        return;
    }
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
}

#[cfg(test)]
mod tests;

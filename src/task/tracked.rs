//! Tracked tasks: a future wrapped so that the registry knows it as a
//! task ([`track`]), and spawned so ([`spawn`], [`spawn_on`]). Each poll
//! runs as that task (this thread's current task and span swapped in),
//! counts its time, and publishes the spans it changed to the task's
//! node.

use std::borrow::Cow;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::lock;
use super::registry::{
    birth_time, current_id, deregister, fetch, now_ns, register, take_polling, Birth, Node, Slot,
    SpanRec, HERE, NEXT_ID, STACK,
};

/// A task's spans, with the id the next one gets.
#[derive(Default)]
struct SpanStack {
    spans: Vec<SpanRec>,
    next: u32,
    /// What was last published to the node: a task that awaits the
    /// same instrumented call in a loop publishes the same shape each
    /// time (only the ids differ), and skips the lock then.
    published: Vec<SpanRec>,
    /// Whether the node shows `published` now (its `has_spans`): a
    /// poll that leaves the same shape shown then writes nothing.
    shown: bool,
}

/// Whether two span lists render the same: same labels, same nesting.
#[inline]
fn same_shape(a: &[SpanRec], b: &[SpanRec]) -> bool {
    // One span, the usual case of a loop awaiting one labelled call: no
    // nesting to compare.
    if let ([x], [y]) = (a, b) {
        return std::ptr::eq(x.what, y.what);
    }
    let parent_at = |spans: &[SpanRec], i: usize| {
        let parent = spans[i].parent;
        spans[..i].iter().position(|s| s.id == parent)
    };
    a.len() == b.len()
        && (0..a.len())
            .all(|i| std::ptr::eq(a[i].what, b[i].what) && parent_at(a, i) == parent_at(b, i))
}

/// Wraps `fut` so it is registered as a task named `name`, a child of the
/// tracked task running here (if any), spawned from the caller's
/// location. Spawn the result on any executor; [`spawn`] and [`spawn_on`]
/// do it for smol.
///
/// ```
/// use smol_devx::task;
///
/// // async-std, or any executor: wrap, then spawn as usual.
/// let answer = async_std::task::block_on(task::track("answer", async { 42 }));
/// assert_eq!(answer, 42);
/// ```
#[track_caller]
pub fn track<F: Future>(name: impl Into<Cow<'static, str>>, fut: F) -> Tracked<F> {
    let id = NEXT_ID.fetch_add(1, Relaxed);
    let slot = register(Birth {
        id,
        name: name.into(),
        parent: current_id(),
        site: Location::caller(),
        now: birth_time(),
    });
    Tracked {
        task: Task {
            id,
            node: None,
            slot: Some(slot),
            stack: None,
        },
        fut: Some(fut),
    }
}

/// Spawns a tracked task: on this thread's local executor inside
/// [`block_on`](super::block_on) (where every actor runs), else on smol's
/// global executor.
///
/// ```
/// let t = smol_devx::task::spawn("add", async { 1 + 1 });
/// assert_eq!(smol::block_on(t), 2);
/// ```
#[track_caller]
pub fn spawn<T: Send + 'static>(
    name: impl Into<Cow<'static, str>>,
    fut: impl Future<Output = T> + Send + 'static,
) -> smol::Task<T> {
    super::executor::spawn(track(name, fut))
}

/// Spawns a tracked task on the executor `ex`.
///
/// ```
/// let ex = smol::Executor::new();
/// let t = smol_devx::task::spawn_on(&ex, "add", async { 1 + 1 });
/// assert_eq!(smol::block_on(ex.run(t)), 2);
/// ```
#[track_caller]
pub fn spawn_on<'a, T: Send + 'a>(
    ex: &smol::Executor<'a>,
    name: impl Into<Cow<'static, str>>,
    fut: impl Future<Output = T> + Send + 'a,
) -> smol::Task<T> {
    ex.spawn(track(name, fut))
}

pin_project_lite::pin_project! {
    /// A future registered as a task; see [`track`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Tracked<F> {
        task: Task,
        #[pin]
        fut: Option<F>,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.fut.is_some() {
                // Destructors of a task dropped mid-flight run as that
                // task, so spans they close are found.
                let _frame = Entered::enter(this.task, 0);
                this.fut.set(None);
            }
            if let Some(slot) = this.task.slot.take() {
                deregister(slot);
            }
        }
    }
}

impl<F> Tracked<F> {
    /// The task's id, as dumps show it (`task #<id>`).
    pub fn id(&self) -> u64 {
        self.task.id
    }
}

/// What a [`Tracked`] knows of its task, apart from its future.
struct Task {
    id: u64,
    /// The task's node, once it stayed pending (see [`register`]).
    node: Option<Arc<Node>>,
    /// `None` once the task left the registry.
    slot: Option<Slot>,
    /// Made at the first span the task opens: most tasks open none, and
    /// a smaller future is a cheaper task allocation.
    stack: Option<Box<SpanStack>>,
}

impl Task {
    /// The task's node, taken from its shard and claimed the first time.
    #[inline]
    fn node(&mut self) -> &Node {
        let (id, slot) = (self.id, self.slot);
        self.node.get_or_insert_with(|| fetch(id, slot))
    }
}

/// This thread's current task and frame swapped to a task's for as long
/// as it lives; the previous ones come back on drop, also when the poll
/// panics (a task polled inside another's poll, by a nested `block_on`,
/// nests the same way). On the way out, spans changed by the poll are
/// published to the task's node: one short lock per poll that changed
/// them, none when the task has no spans left.
struct Entered<'a> {
    task: &'a mut Task,
    saved: (u64, u32, u32, bool, u64),
    saved_spans: Vec<SpanRec>,
}

impl<'a> Entered<'a> {
    /// `since`: when this poll began (0 for a destructor's run, which is
    /// not shown as a poll).
    #[inline(always)]
    fn enter(task: &'a mut Task, since: u64) -> Self {
        let (spans, next) = match &mut task.stack {
            Some(stack) => (std::mem::take(&mut stack.spans), stack.next),
            None => (Vec::new(), 0),
        };
        let (saved, polling) = HERE.with(|h| {
            (
                (
                    h.task.replace(task.id),
                    h.current.replace(0),
                    h.next.replace(next),
                    h.dirty.replace(false),
                    h.since.replace(since),
                ),
                h.polling.get(),
            )
        });
        // A destructor's run (`since` 0) is not shown as a poll.
        if since != 0 {
            let polling = polling.unwrap_or_else(take_polling);
            let (outer, outer_since) = (saved.0, saved.4);
            if outer != 0 && outer_since != 0 {
                polling.nest(outer, outer_since);
            }
            polling.since.store(since, Relaxed);
            polling.task.store(task.id, Release);
        }
        let saved_spans = STACK.with(|s| s.replace(spans));
        Self {
            task,
            saved,
            saved_spans,
        }
    }
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        let (task, current, next, dirty, since) = self.saved;
        let (next, dirty, shown) = HERE.with(|h| {
            h.task.set(task);
            h.current.set(current);
            // Shown when it began at a time (see `enter`).
            let shown = h.since.replace(since) != 0;
            (
                h.next.replace(next),
                h.dirty.replace(dirty),
                h.polling.get().filter(|_| shown),
            )
        });
        if let Some(polling) = shown {
            if task != 0 && since != 0 {
                polling.unnest(since);
            }
            let shown = if since != 0 { task } else { 0 };
            polling.task.store(shown, Release);
        }
        let spans = STACK.with(|s| s.replace(std::mem::take(&mut self.saved_spans)));
        let t = &mut *self.task;
        if t.stack.is_none() && spans.capacity() == 0 {
            // No span ever opened: nothing to keep or publish.
            return;
        }
        let stack = &mut **t.stack.get_or_insert_with(Box::default);
        (stack.spans, stack.next) = (spans, next);
        if !dirty {
            return;
        }
        if stack.spans.is_empty() {
            if std::mem::take(&mut stack.shown) {
                if let Some(node) = t.node.as_deref() {
                    node.has_spans.store(false, Relaxed);
                }
            }
        } else if !(stack.shown && same_shape(&stack.spans, &stack.published)) {
            // Taken out to borrow the node beside it.
            let mut stack = t.stack.take().unwrap_or_default();
            let node = t.node();
            if !same_shape(&stack.spans, &stack.published) {
                lock(&node.spans).set(&stack.spans);
                stack.published.clear();
                stack.published.extend_from_slice(&stack.spans);
            }
            node.has_spans.store(true, Relaxed);
            stack.shown = true;
            t.stack = Some(stack);
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let start = now_ns();
        let out = {
            let _frame = Entered::enter(this.task, start);
            let fut = this
                .fut
                .as_mut()
                .as_pin_mut()
                .expect("`Tracked` polled after completion");
            let out = fut.poll(cx);
            if out.is_ready() {
                this.fut.set(None);
            }
            out
        };
        if out.is_ready() {
            // Finished tasks leave now, not when the executor drops them;
            // their figures are never read again, so the clock is not
            // read for them either.
            if let Some(slot) = this.task.slot.take() {
                deregister(slot);
            }
            return out;
        }
        let end = now_ns();
        let node = this.task.node();
        node.busy_ns.store(
            node.busy_ns.load(Relaxed) + end.saturating_sub(start),
            Relaxed,
        );
        node.polls.store(node.polls.load(Relaxed) + 1, Relaxed);
        node.since_ns.store(end, Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_lists_compare_by_labels_and_nesting_not_ids() {
        let rec = |id, parent, what| SpanRec { id, parent, what };
        let a = [rec(1, 0, "outer"), rec(2, 1, "inner")];
        let b = [rec(7, 0, "outer"), rec(9, 7, "inner")];
        let flat = [rec(7, 0, "outer"), rec(9, 0, "inner")];
        let other = [rec(1, 0, "outer"), rec(2, 1, "other")];
        assert!(same_shape(&a, &b));
        assert!(!same_shape(&a, &flat));
        assert!(!same_shape(&a, &other));
        assert!(!same_shape(&a, &a[..1]));
    }
}

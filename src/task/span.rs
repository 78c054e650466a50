//! Await spans: what a tracked task is waiting on, as a stack (a tree,
//! when one task awaits several futures at once) of labels.
//!
//! A span opens at its future's first poll inside a tracked task, under
//! the span being polled at that moment, and closes when the future
//! completes or is dropped. Outside a tracked task, `instrument` costs a
//! thread-local read per poll and records nothing.
//!
//! ```
//! use smol_devx::task::{self, Instrument};
//!
//! smol::block_on(task::track("main", async {
//!     let (a, b) = smol::future::zip(
//!         async { 1 }.instrument("left"),
//!         async { 2 }.instrument("right"),
//!     )
//!     .instrument("both")
//!     .await;
//!     assert_eq!(a + b, 3);
//! }));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::registry::{SpanRec, HERE, STACK};

/// Adds [`instrument`](Instrument::instrument) to every future.
pub trait Instrument: Future + Sized {
    /// Labels this await: while it is pending, task dumps show `what`
    /// under the awaiting task.
    #[inline]
    fn instrument(self, what: &'static str) -> Instrumented<Self> {
        Instrumented {
            fut: self,
            what,
            open: Open { task: 0, span: 0 },
        }
    }
}

impl<F: Future> Instrument for F {}

pin_project_lite::pin_project! {
    /// A future with an await span; see [`Instrument`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Instrumented<F> {
        #[pin]
        fut: F,
        what: &'static str,
        // Declared after `fut`, so dropped after it: spans the future
        // opened inside close first, innermost first as they nest.
        open: Open,
    }
}

/// The task and span an [`Instrumented`] opened: 0 before its first poll
/// in a tracked task, and after it closed. Closes the span when dropped
/// mid-flight; a plain field rather than a pinned destructor, so that the
/// check inlines into whatever drops the future.
struct Open {
    task: u64,
    span: u32,
}

impl Drop for Open {
    #[inline]
    fn drop(&mut self) {
        if self.span != 0 {
            close_span(self.task, self.span);
        }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    // Always inlined: as a call of its own, saving and restoring
    // registers was a sixth of a two-poll await's added instructions.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let open = this.open;
        let prev = if open.span == 0 {
            match open_span(this.what) {
                Some((task, span, prev)) => {
                    (open.task, open.span) = (task, span);
                    prev
                }
                None => return this.fut.poll(cx),
            }
        } else {
            match enter_span(open.task, open.span) {
                Some(prev) => prev,
                // Polled by a task other than the one that opened it.
                None => return this.fut.poll(cx),
            }
        };
        let out = this.fut.poll(cx);
        leave_span(open.span, prev, out.is_ready());
        if out.is_ready() {
            open.span = 0;
        }
        out
    }
}

/// Opens span `what` in the task polled on this thread, under the span
/// being polled, and makes it the one being polled. `None` outside a
/// tracked task; else the task, the span, and the span to restore with
/// [`leave_span`].
#[inline]
pub(crate) fn open_span(what: &'static str) -> Option<(u64, u32, u32)> {
    let (task, id, parent) = HERE.with(|h| {
        let task = h.task.get();
        if task == 0 {
            return None;
        }
        let id = h.next.get().wrapping_add(1).max(1);
        h.next.set(id);
        h.dirty.set(true);
        Some((task, id, h.current.replace(id)))
    })?;
    STACK.with(|s| {
        s.try_borrow_mut()
            .ok()
            .map(|mut s| s.push(SpanRec { id, parent, what }))
    })?;
    Some((task, id, parent))
}

/// Makes `span` of `task` the one being polled; returns the previous one
/// for [`leave_span`]. `None` when `task` is not the one polled here.
#[inline]
pub(crate) fn enter_span(task: u64, span: u32) -> Option<u32> {
    HERE.with(|h| (h.task.get() == task).then(|| h.current.replace(span)))
}

/// Restores the span being polled to `prev` and, when `close` is set,
/// closes `span`; called right after the span's own poll, so by the task
/// that entered it.
#[inline]
pub(crate) fn leave_span(span: u32, prev: u32, close: bool) {
    HERE.with(|h| {
        h.current.set(prev);
        if close {
            h.dirty.set(true);
        }
    });
    if close {
        remove(span);
    }
}

/// Closes `span` of `task`, when that task is the one polled here (a
/// span's future dropped elsewhere leaves with its task). Only a future
/// dropped mid-flight gets here: out of line, so the check before it
/// inlines wherever an instrumented future is dropped.
#[cold]
#[inline(never)]
pub(crate) fn close_span(task: u64, span: u32) {
    let here = HERE.with(|h| {
        let here = h.task.get() == task;
        if here {
            h.dirty.set(true);
        }
        here
    });
    if here {
        remove(span);
    }
}

#[inline(always)]
fn remove(span: u32) {
    STACK.with(|s| {
        let Ok(mut spans) = s.try_borrow_mut() else {
            return;
        };
        // Nearly always the last one: spans close innermost first.
        if spans.last().is_some_and(|s| s.id == span) {
            spans.pop();
        } else {
            remove_inner(&mut spans, span);
        }
    })
}

/// A span closed before one opened after it (a future of a `join`).
#[cold]
#[inline(never)]
fn remove_inner(spans: &mut Vec<SpanRec>, span: u32) {
    if let Some(i) = spans.iter().rposition(|s| s.id == span) {
        spans.remove(i);
    }
}

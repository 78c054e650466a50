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

use super::registry::{close_span, enter_span, leave_span, open_span};

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

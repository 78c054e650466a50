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
            task: 0,
            span: 0,
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
        // The task and span this future opened; 0 before its first poll
        // in a tracked task, and after it closed.
        task: u64,
        span: u32,
    }

    impl<F> PinnedDrop for Instrumented<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.span != 0 {
                close_span(*this.task, *this.span);
            }
        }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let prev = if *this.span == 0 {
            match open_span(this.what) {
                Some((task, span, prev)) => {
                    (*this.task, *this.span) = (task, span);
                    prev
                }
                None => return this.fut.poll(cx),
            }
        } else {
            match enter_span(*this.task, *this.span) {
                Some(prev) => prev,
                // Polled by a task other than the one that opened it.
                None => return this.fut.poll(cx),
            }
        };
        let out = this.fut.poll(cx);
        leave_span(*this.span, prev, out.is_ready());
        if out.is_ready() {
            *this.span = 0;
        }
        out
    }
}

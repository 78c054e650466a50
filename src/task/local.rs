//! Runtime-agnostic task-local values.
//!
//! smol has no task-locals, and the crate must also run under other
//! executors (async-std, a host's own), so the value is carried by the
//! future itself: [`TaskLocal::scope`] wraps a future, and every poll of the
//! wrapper swaps the value into a thread-local for the duration of that
//! poll only. A task that migrates between worker threads therefore sees
//! its value on whichever thread polls it, and a task that is not inside
//! the scope never sees it.
//!
//! ```
//! use smol_devx::task_local;
//!
//! task_local! {
//!     static LEVEL: u32;
//! }
//!
//! smol::block_on(async {
//!     assert_eq!(LEVEL.get(), None);
//!     LEVEL
//!         .scope(3, async {
//!             smol::future::yield_now().await;
//!             assert_eq!(LEVEL.get(), Some(3));
//!         })
//!         .await;
//!     assert_eq!(LEVEL.get(), None);
//! });
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::LocalKey;

/// Declares a [`TaskLocal`] static. The value type must be `Copy`, so that
/// reading it never borrows across a poll.
#[macro_export]
macro_rules! task_local {
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty;) => {
        $(#[$attr])*
        $vis static $name: $crate::task::local::TaskLocal<$t> = {
            ::std::thread_local! {
                static SLOT: ::std::cell::Cell<::std::option::Option<$t>> =
                    const { ::std::cell::Cell::new(::std::option::Option::None) };
            }
            $crate::task::local::TaskLocal::new(&SLOT)
        };
    };
}

/// What a task-local can hold: plain `Copy` data, so reading it never
/// borrows across a poll. Implemented for every such type.
pub trait Value: Copy + 'static {}

impl<T: Copy + 'static> Value for T {}

/// A value bound to the futures run inside [`TaskLocal::scope`]. Declare
/// one with [`task_local!`](crate::task_local).
pub struct TaskLocal<T: Copy + 'static> {
    slot: &'static LocalKey<Cell<Option<T>>>,
}

impl<T: Copy + 'static> TaskLocal<T> {
    /// Used by [`task_local!`](crate::task_local); not meant to be called
    /// directly.
    #[doc(hidden)]
    pub const fn new(slot: &'static LocalKey<Cell<Option<T>>>) -> Self {
        Self { slot }
    }

    /// The value of the innermost scope around the running code, if any.
    pub fn get(&'static self) -> Option<T> {
        self.slot.with(Cell::get)
    }

    /// Runs `fut` with `value` bound. The binding is visible only while
    /// `fut` (or its destructor) runs; nested scopes shadow outer ones.
    pub fn scope<F: Future>(&'static self, value: T, fut: F) -> Scope<T, F> {
        Scope {
            key: self,
            value,
            fut: Some(fut),
        }
    }

    /// Runs the closure `f` with `value` bound.
    pub fn sync_scope<R>(&'static self, value: T, f: impl FnOnce() -> R) -> R {
        let _bound = Bound::enter(self, value);
        f()
    }
}

/// Swaps a value in for as long as it lives, and the previous one back on
/// drop: also when the code inside panics.
struct Bound<T: Copy + 'static> {
    key: &'static TaskLocal<T>,
    prev: Option<T>,
}

impl<T: Copy + 'static> Bound<T> {
    fn enter(key: &'static TaskLocal<T>, value: T) -> Self {
        let prev = key.slot.with(|slot| slot.replace(Some(value)));
        Self { key, prev }
    }
}

impl<T: Copy + 'static> Drop for Bound<T> {
    fn drop(&mut self) {
        self.key.slot.with(|slot| slot.set(self.prev));
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`TaskLocal::scope`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Scope<T: Value, F> {
        key: &'static TaskLocal<T>,
        value: T,
        #[pin]
        fut: Option<F>,
    }

    impl<T: Value, F> PinnedDrop for Scope<T, F> {
        // A future dropped mid-scope runs its destructors inside the scope,
        // like it ran every poll: cleanup code sees the same value.
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.fut.is_some() {
                let _bound = Bound::enter(this.key, *this.value);
                this.fut.set(None);
            }
        }
    }
}

impl<T: Copy + 'static, F: Future> Future for Scope<T, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let _bound = Bound::enter(this.key, *this.value);
        let fut = this
            .fut
            .as_mut()
            .as_pin_mut()
            .expect("`Scope` polled after completion");
        let out = fut.poll(cx);
        if out.is_ready() {
            // Drop the finished future now, still inside the scope.
            this.fut.set(None);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use smol::future;

    task_local! {
        static N: u32;
    }

    #[test]
    fn nested_scopes_shadow_and_restore() {
        smol::block_on(async {
            N.scope(1, async {
                N.scope(2, async {
                    future::yield_now().await;
                    assert_eq!(N.get(), Some(2));
                })
                .await;
                assert_eq!(N.get(), Some(1));
            })
            .await;
        });
        assert_eq!(N.get(), None);
    }

    #[test]
    fn panic_inside_a_scope_restores_the_outer_value() {
        let caught = N.sync_scope(1, || {
            let inner =
                std::panic::catch_unwind(|| future::block_on(N.scope(2, async { panic!("boom") })));
            (inner.is_err(), N.get())
        });
        assert_eq!(caught, (true, Some(1)));
        assert_eq!(N.get(), None);
    }

    #[test]
    fn drop_mid_scope_runs_destructors_inside_it_and_leaks_nothing() {
        struct SeesScope(Arc<AtomicUsize>);
        impl Drop for SeesScope {
            fn drop(&mut self) {
                self.0
                    .store(N.get().unwrap_or(0) as usize, Ordering::SeqCst);
            }
        }
        let seen = Arc::new(AtomicUsize::new(99));
        let guard = SeesScope(seen.clone());
        let mut fut = Box::pin(N.scope(7, async move {
            let _guard = guard;
            future::pending::<()>().await;
        }));
        assert!(future::block_on(future::poll_once(&mut fut)).is_none());
        assert_eq!(N.get(), None);
        drop(fut);
        assert_eq!(seen.load(Ordering::SeqCst), 7);
        assert_eq!(N.get(), None);
    }

    #[test]
    fn value_follows_the_task_across_threads() {
        let ex = smol::Executor::new();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        std::thread::scope(|s| {
            for _ in 0..2 {
                let stopped = stopped.clone();
                let ex = &ex;
                s.spawn(move || future::block_on(ex.run(stopped.recv())));
            }
            let tasks: Vec<_> = (0..8u32)
                .map(|i| {
                    ex.spawn(N.scope(i, async move {
                        for _ in 0..200 {
                            future::yield_now().await;
                            assert_eq!(N.get(), Some(i));
                        }
                        i
                    }))
                })
                .collect();
            let sum: u32 = future::block_on(async {
                let mut sum = 0;
                for t in tasks {
                    sum += t.await;
                }
                sum
            });
            assert_eq!(sum, (0..8).sum::<u32>());
            drop(stop);
        });
    }
}

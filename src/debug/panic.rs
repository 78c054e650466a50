//! Panics kept for the crash REPL: where each happened and its
//! backtrace, taken by a panic hook on the panicking thread.
//!
//! A panic that code of this crate catches and shows (a handler's, in its
//! crash REPL's header or up the tree; `crash_handler`'s) is not printed
//! by std's hook when it happens: in a tree, another actor's REPL may own
//! the terminal then, and the message would land in the middle of it.

use std::any::Any;
use std::backtrace::Backtrace;

use crate::msg::{ActorUid, RemoteError, Site};

/// Type name given to a panic's box.
pub const PANIC_TYPE: &str = "panic";

std::thread_local! {
    /// Whether a panic on this thread now is caught and shown by this
    /// crate ([`shown_later`]).
    static SHOWN_LATER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Where the last panic on this thread happened, and its backtrace,
    /// kept by the hook of [`capture_panics`] until the panic is boxed:
    /// captured there, resolved to text only if it is boxed.
    static LAST_PANIC: std::cell::RefCell<Option<(Option<Site>, Backtrace)>> = const { std::cell::RefCell::new(None) };
    /// What the hook runs for a panic on this thread before it unwinds
    /// ([`catch_before_unwinding`]); taken by the first panic.
    static AT_PANIC: std::cell::Cell<Option<AtPanic>> = const { std::cell::Cell::new(None) };
}

/// Shown a panic on the panicking thread, its frames still on the stack.
pub(crate) type AtPanic = fn(&Panicked<'_>);

/// A panic as the hook sees it.
pub(crate) struct Panicked<'a> {
    payload: &'a (dyn Any + Send),
    at: Option<Site>,
    backtrace: &'a Backtrace,
}

impl Panicked<'_> {
    /// The panic boxed as a failure of `here`.
    pub(crate) fn boxed(&self, here: &ActorUid) -> RemoteError {
        boxed(self.payload, here, self.at.clone(), Some(self.backtrace))
    }
}

/// Runs `f`, catching its panic, with `at_panic` run by the hook for the
/// first panic on this thread before it unwinds: where the panicking
/// frames can still be read (a panic `f` catches itself counts too). A
/// caught panic comes with whether `at_panic` ran for it: not when
/// another hook replaced this crate's.
pub(crate) fn catch_before_unwinding<R>(
    at_panic: AtPanic,
    f: impl FnOnce() -> R,
) -> Result<R, (Box<dyn Any + Send>, bool)> {
    capture_panics();
    let previous = AT_PANIC.with(|a| a.replace(Some(at_panic)));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let ran = AT_PANIC.with(|a| a.replace(previous)).is_none();
    out.map_err(|payload| (payload, ran))
}

/// Installs (once) a panic hook that keeps each panic's location and
/// backtrace for [`box_panic`], then runs the previous hook as before.
pub fn capture_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info.location().map(Site::from);
            let backtrace = Backtrace::force_capture();
            let later = SHOWN_LATER.try_with(|s| s.get()).unwrap_or(false);
            if !(later && crate::debug::host::current().is_some()) {
                previous(info);
            }
            if let Some(at_panic) = AT_PANIC.try_with(|a| a.take()).ok().flatten() {
                let payload = info.payload();
                at_panic(&Panicked {
                    payload,
                    at: at.clone(),
                    backtrace: &backtrace,
                });
            }
            let _ = LAST_PANIC.try_with(|last| *last.borrow_mut() = Some((at, backtrace)));
        }));
    });
}

/// Boxes a caught panic: its message, and where it happened and its
/// backtrace when [`capture_panics`] saw it on this thread.
pub fn box_panic(payload: &(dyn Any + Send), here: &ActorUid) -> RemoteError {
    let seen = LAST_PANIC
        .try_with(|last| last.borrow_mut().take())
        .ok()
        .flatten();
    match seen {
        Some((at, backtrace)) => boxed(payload, here, at, Some(&backtrace)),
        None => boxed(payload, here, None, None),
    }
}

fn boxed(
    payload: &(dyn Any + Send),
    here: &ActorUid,
    at: Option<Site>,
    backtrace: Option<&Backtrace>,
) -> RemoteError {
    let mut message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into());
    if let Some(at) = &at {
        message = format!("{message} (at {at})");
    }
    let mut boxed = RemoteError::new(PANIC_TYPE, message, here.clone());
    if let Some(backtrace) = backtrace {
        boxed = boxed.with_backtrace(backtrace.to_string());
    }
    boxed.site = at;
    boxed
}

/// Runs `f` with this thread's panics kept for the catcher to show, not
/// printed by std's hook (when a debugger host is installed).
pub(crate) fn shown_later<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = SHOWN_LATER.try_with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SHOWN_LATER.with(|s| s.replace(true)));
    f()
}

pin_project_lite::pin_project! {
    /// A future whose polls run under [`shown_later`]: the future a
    /// caller catches the panics of.
    pub(crate) struct ShownLater<F> {
        #[pin]
        fut: F,
    }
}

impl<F> ShownLater<F> {
    #[cfg_attr(not(feature = "runtime"), allow(dead_code))] // the runtime's handlers use it
    pub(crate) fn new(fut: F) -> Self {
        Self { fut }
    }
}

impl<F: std::future::Future> std::future::Future for ShownLater<F> {
    type Output = F::Output;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let fut = self.project().fut;
        shown_later(|| fut.poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_keep_their_location_and_backtrace() {
        capture_panics();
        let here = ActorUid::new("a", "1");
        let caught = std::panic::catch_unwind(|| panic!("located")).unwrap_err();
        let err = box_panic(&*caught, &here);
        assert!(
            err.message.starts_with("located (at src/debug/panic.rs:"),
            "{}",
            err.message
        );
        assert!(
            err.backtrace
                .contains("panics_keep_their_location_and_backtrace"),
            "{}",
            err.backtrace
        );
    }

    #[test]
    fn at_panic_runs_on_the_panicking_thread_before_unwinding() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        static UNWOUND: AtomicBool = AtomicBool::new(false);
        static SEEN_BEFORE_UNWINDING: AtomicBool = AtomicBool::new(false);
        struct Frame;
        impl Drop for Frame {
            fn drop(&mut self) {
                UNWOUND.store(true, SeqCst);
            }
        }
        fn at_panic(p: &Panicked<'_>) {
            let err = p.boxed(&ActorUid::new("a", "1"));
            let here = err.message.starts_with("early (at src/debug/panic.rs:");
            SEEN_BEFORE_UNWINDING.store(here && !UNWOUND.load(SeqCst), SeqCst);
        }
        let caught = catch_before_unwinding(at_panic, || {
            let _frame = Frame;
            panic!("early");
        });
        let (_, ran) = caught.unwrap_err();
        assert!(ran && UNWOUND.load(SeqCst));
        assert!(SEEN_BEFORE_UNWINDING.load(SeqCst));
        // Once per call: a panic `f` catches itself takes it, the next
        // one does not run it again; without a panic, `f`'s value.
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        fn count(_: &Panicked<'_>) {
            RUNS.fetch_add(1, SeqCst);
        }
        let twice = catch_before_unwinding(count, || {
            let _ = std::panic::catch_unwind(|| panic!("caught inside"));
            panic!("second");
        });
        assert!(matches!(twice, Err((_, true))));
        assert_eq!(RUNS.load(SeqCst), 1);
        let again = catch_before_unwinding(count, || Ok::<(), ()>(()));
        assert!(matches!(again, Ok(Ok(()))));
        assert_eq!(RUNS.load(SeqCst), 1);
    }

    #[test]
    fn panics_keep_their_message() {
        let here = ActorUid::new("a", "1");
        let err = box_panic(&"boom", &here);
        assert_eq!(
            (err.type_name.as_str(), err.message.as_str()),
            (PANIC_TYPE, "boom")
        );
        let err = box_panic(&String::from("owned"), &here);
        assert_eq!(err.message, "owned");
    }
}

//! Panics kept for the crash REPL: where each happened and its
//! backtrace, taken by a panic hook on the panicking thread.

use std::any::Any;
use std::backtrace::Backtrace;

use crate::msg::{ActorUid, RemoteError, Site};

/// Type name given to a panic's box.
pub const PANIC_TYPE: &str = "panic";

std::thread_local! {
    /// Where the last panic on this thread happened, and its backtrace,
    /// kept by the hook of [`capture_panics`] until the panic is boxed.
    static LAST_PANIC: std::cell::RefCell<Option<(Option<Site>, String)>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps each panic's location and
/// backtrace for [`box_panic`], then runs the previous hook as before.
pub fn capture_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info.location().map(Site::from);
            let backtrace = Backtrace::force_capture().to_string();
            let _ = LAST_PANIC.try_with(|last| *last.borrow_mut() = Some((at, backtrace)));
            previous(info);
        }));
    });
}

/// Boxes a caught panic: its message, and where it happened and its
/// backtrace when [`capture_panics`] saw it on this thread.
pub fn box_panic(payload: &(dyn Any + Send), here: &ActorUid) -> RemoteError {
    let mut message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into());
    let seen = LAST_PANIC
        .try_with(|last| last.borrow_mut().take())
        .ok()
        .flatten();
    match seen {
        Some((at, backtrace)) => {
            if let Some(at) = &at {
                message = format!("{message} (at {at})");
            }
            let boxed =
                RemoteError::new(PANIC_TYPE, message, here.clone()).with_backtrace(backtrace);
            match at {
                Some(at) => boxed.with_site(at),
                None => boxed,
            }
        }
        None => RemoteError::new(PANIC_TYPE, message, here.clone()),
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

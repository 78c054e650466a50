//! Boxing failures for the trip up the tree.

use std::any::Any;
use std::backtrace::Backtrace;

use crate::ipc::DialogError;
use crate::msg::{ActorUid, RemoteError};
use crate::task::lock;

/// Type name given to a panic's box.
pub const PANIC_TYPE: &str = "panic";
/// Type name given to a handler stopped by its peer's cancel.
pub const CANCELLED_TYPE: &str = "ContextCancelled";

/// Boxes an actor's failure. A `RemoteError` relayed from a child keeps
/// its original type, message and source and gains this actor as a hop;
/// anything else is boxed here, with this actor as the source.
pub fn box_error<E>(err: E, here: &ActorUid) -> RemoteError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let any: Box<dyn Any> = Box::new(err);
    let any = match any.downcast::<RemoteError>() {
        Ok(remote) => return remote.relayed_by(here.clone()),
        Err(any) => any,
    };
    let any = match any.downcast::<DialogError>() {
        Ok(dialog) => match *dialog {
            DialogError::Remote(remote) => return remote.relayed_by(here.clone()),
            other => return boxed_here(&other, here),
        },
        Err(any) => any,
    };
    match any.downcast::<E>() {
        Ok(err) => boxed_here(&*err, here),
        Err(_) => unreachable!("the box holds an E"),
    }
}

/// [`box_error`] for a failure that stays with its owner (the root's
/// body, which still returns it).
pub fn box_error_ref<E>(err: &E, here: &ActorUid) -> RemoteError
where
    E: std::error::Error + 'static,
{
    let any: &dyn Any = err;
    if let Some(remote) = any.downcast_ref::<RemoteError>() {
        return remote.clone();
    }
    if let Some(DialogError::Remote(remote)) = any.downcast_ref::<DialogError>() {
        return remote.clone();
    }
    boxed_here(err, here)
}

fn boxed_here<E: std::error::Error + 'static>(err: &E, here: &ActorUid) -> RemoteError {
    let mut boxed = RemoteError::from_error(err, here.clone())
        .with_backtrace(Backtrace::force_capture().to_string());
    if let Some(name) = registered_name(err) {
        boxed.type_name = name.to_owned();
    }
    boxed
}

/// Names an error for the trip up the tree, where its Rust type name
/// would mislead (an enum wrapping the failure that matters).
pub type ErrorNamer = fn(&(dyn std::error::Error + 'static)) -> Option<&'static str>;

static NAMERS: std::sync::Mutex<Vec<ErrorNamer>> = std::sync::Mutex::new(Vec::new());

/// Registers a namer: higher layers (the debugger's `Quit`) name their
/// errors this way without this layer knowing them.
pub fn register_namer(namer: ErrorNamer) {
    let mut namers = lock(&NAMERS);
    if !namers.contains(&namer) {
        namers.push(namer);
    }
}

fn registered_name(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    if err.is::<super::cancel::Cancelled>() {
        return Some(CANCELLED_TYPE);
    }
    let namers = lock(&NAMERS);
    namers.iter().find_map(|namer| namer(err))
}

std::thread_local! {
    /// Where the last panic on this thread happened, and its backtrace,
    /// kept by the hook of [`capture_panics`] until the panic is boxed.
    static LAST_PANIC: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps each panic's location and
/// backtrace for [`box_panic`], then runs the previous hook as before.
pub fn capture_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
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
            if !at.is_empty() {
                message = format!("{message} (at {at})");
            }
            RemoteError::new(PANIC_TYPE, message, here.clone()).with_backtrace(backtrace)
        }
        None => RemoteError::new(PANIC_TYPE, message, here.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NameError;
    impl std::fmt::Display for NameError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("name 'doggypants' is not defined")
        }
    }
    impl std::error::Error for NameError {}

    /// A failure boxed in a leaf and relayed by three actors arrives with
    /// its original type, message and source, and every hop in order.
    #[test]
    fn three_hops_keep_the_original_intact() {
        let leaf = ActorUid::new("name_error", "1");
        let hops = [
            ActorUid::new("spawn_until_2", "2"),
            ActorUid::new("spawn_until_1", "3"),
            ActorUid::new("spawner0", "4"),
        ];
        let mut err = box_error(NameError, &leaf);
        assert!(!err.backtrace.is_empty());
        for hop in &hops {
            // Each hop's nursery sees a dialog error carrying the box.
            err = box_error(DialogError::Remote(err), hop);
        }
        // Through the wire, too.
        let codec = crate::codec::Codec::default();
        let frame = codec
            .encode(&crate::msg::Msg::Error { cid: 1, error: err })
            .unwrap();
        let (crate::msg::Msg::Error { error, .. }, _) = codec.decode_frame(&frame).unwrap() else {
            unreachable!()
        };
        assert_eq!(error.type_name, "NameError");
        assert_eq!(error.message, "name 'doggypants' is not defined");
        assert_eq!(error.src_uid, leaf);
        assert_eq!(error.relay_path, hops);
    }

    #[test]
    fn panics_keep_their_location_and_backtrace() {
        capture_panics();
        let here = ActorUid::new("a", "1");
        let caught = std::panic::catch_unwind(|| panic!("located")).unwrap_err();
        let err = box_panic(&*caught, &here);
        assert!(
            err.message.starts_with("located (at src/actor/error.rs:"),
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

//! Boxing failures for the trip up the tree.

use std::any::Any;

use crate::ipc::DialogError;
use crate::msg::{ActorUid, RemoteError};
use crate::report::{self, Failure};
use crate::task::lock;

pub(super) use crate::debug::panic::{box_panic, capture_panics};
/// Type name given to a handler stopped by its peer's cancel.
pub const CANCELLED_TYPE: &str = "ContextCancelled";

/// Boxes an actor's failure. A `RemoteError` relayed from a child keeps
/// its original type, message and source and gains this actor as a hop;
/// anything else is boxed here, with this actor as the source.
pub(super) fn box_error<E: Failure>(err: E, here: &ActorUid) -> RemoteError {
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
pub(super) fn box_error_ref<E: Failure>(err: &E, here: &ActorUid) -> RemoteError {
    let any: &dyn Any = err;
    if let Some(remote) = any.downcast_ref::<RemoteError>() {
        return remote.clone();
    }
    if let Some(DialogError::Remote(remote)) = any.downcast_ref::<DialogError>() {
        return remote.clone();
    }
    boxed_here(err, here)
}

/// A failure raised in this actor: boxed with what it captured where it
/// was raised (a [`crate::Report`]'s site and backtrace), nothing taken
/// here, where it only passes by.
fn boxed_here<E: Failure + ?Sized>(err: &E, here: &ActorUid) -> RemoteError {
    let mut boxed = report::to_remote(err, here.clone());
    if let Some(name) = registered_name(err.as_error()) {
        boxed.type_name = name.to_owned();
    }
    boxed
}

/// Names an error for the trip up the tree, where its Rust type name
/// would mislead (an enum wrapping the failure that matters).
pub(super) type ErrorNamer = fn(&(dyn std::error::Error + 'static)) -> Option<&'static str>;

static NAMERS: std::sync::Mutex<Vec<ErrorNamer>> = std::sync::Mutex::new(Vec::new());

/// Registers a namer: higher layers (the debugger's `Quit`) name their
/// errors this way without this layer knowing them.
pub(super) fn register_namer(namer: ErrorNamer) {
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
        // A plain error captured nothing where it was raised; a Report
        // keeps its site and backtrace through every hop.
        assert!(box_error(NameError, &leaf).backtrace.is_empty());
        let line = line!() + 1;
        let mut err = box_error(crate::Report::new(NameError), &leaf);
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
        let site = error.site.clone().expect("the report's site");
        assert_eq!((site.file.as_str(), site.line), (file!(), line));
        assert!(error
            .backtrace
            .contains("three_hops_keep_the_original_intact"));
    }
}

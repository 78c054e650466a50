//! Boxing failures for the trip up the tree.

use std::any::Any;

use crate::ipc::DialogError;
use crate::msg::{ActorUid, RemoteError};
use crate::report::{self, IntoFailure};
use crate::task::lock;

pub(super) use crate::debug::panic::{box_panic, capture_panics};
/// Type name given to a handler stopped by its peer's cancel.
pub const CANCELLED_TYPE: &str = "ContextCancelled";

/// Boxes an actor's failure. A `RemoteError` relayed from a child keeps
/// its original type, message and source and gains this actor as a hop;
/// anything else is boxed here, with this actor as the source, with what
/// it captured where it was raised (a [`crate::Report`]'s site and
/// backtrace), nothing taken here, where it only passes by.
pub(super) fn box_error<E: IntoFailure>(err: E, here: &ActorUid) -> RemoteError {
    match relayed(err) {
        Ok(remote) => remote.relayed_by(here.clone()),
        Err(raised) => boxed_here(raised, here),
    }
}

/// [`box_error`] for the root's body: a child's error it returns is the
/// child's, not relayed once more.
pub(super) fn box_root_error<E: IntoFailure>(err: E, here: &ActorUid) -> RemoteError {
    match relayed(err) {
        Ok(remote) => remote,
        Err(raised) => boxed_here(raised, here),
    }
}

/// The child's error inside `err`, or `err` taken apart.
fn relayed<E: IntoFailure>(err: E) -> Result<RemoteError, report::Raised> {
    let any: Box<dyn Any + Send> = Box::new(err);
    let any = match any.downcast::<RemoteError>() {
        Ok(remote) => return Ok(*remote),
        Err(any) => any,
    };
    match any.downcast::<DialogError>() {
        Ok(dialog) => match *dialog {
            DialogError::Remote(remote) => Ok(remote),
            other => Err(other.into_raised()),
        },
        Err(any) => match any.downcast::<E>() {
            Ok(err) => Err(err.into_raised()),
            Err(_) => unreachable!("the box holds an E"),
        },
    }
}

fn boxed_here(raised: report::Raised, here: &ActorUid) -> RemoteError {
    let name = registered_name(&*raised.error).unwrap_or(raised.type_name);
    raised.to_remote(name, here.clone())
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

/// With the `anyhow` and `eyre` features: their errors keep what they
/// captured through the boxing (`cargo test --features anyhow,eyre`).
#[cfg(all(test, feature = "anyhow", feature = "eyre"))]
mod foreign_reports {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn an_anyhow_error_keeps_its_chain_and_its_backtrace() {
        let parsed = "eighty".parse::<u16>();
        let err = parsed.context("loading the config").unwrap_err();
        let boxed = box_error(err, &ActorUid::new("loader", "1"));
        assert_eq!(boxed.type_name, "anyhow::Error");
        assert_eq!(boxed.message, "loading the config");
        assert_eq!(boxed.causes[0].message, "invalid digit found in string");
        // anyhow captures as RUST_BACKTRACE / RUST_LIB_BACKTRACE say.
        let wanted = ["RUST_LIB_BACKTRACE", "RUST_BACKTRACE"]
            .iter()
            .find_map(|v| std::env::var(v).ok())
            .is_some_and(|v| v != "0");
        assert_eq!(!boxed.backtrace.is_empty(), wanted, "{}", boxed.backtrace);
    }

    #[test]
    fn an_eyre_report_keeps_its_chain_and_its_location() {
        use eyre::WrapErr as _;
        let line = line!() + 1;
        let err = "eighty".parse::<u16>().wrap_err("loading the config");
        let boxed = box_error(err.unwrap_err(), &ActorUid::new("loader", "1"));
        assert_eq!(boxed.type_name, "eyre::Report");
        assert_eq!(boxed.causes[0].message, "invalid digit found in string");
        let site = boxed.site.clone().expect("eyre's location");
        assert_eq!((site.file.as_str(), site.line), (file!(), line));
    }
}

//! `crash_handler`: a crash REPL for plain synchronous code with no actor
//! runtime (a CLI's `main`, a command handler). A standalone process owns
//! its terminal, so no tree lock is taken. A panic's REPL opens before
//! the panic unwinds, on the panicking thread: `locals` and `p` read the
//! frame that panicked.
//!
//! ```no_run
//! use smol_devx::debug::crash::crash_handler;
//!
//! fn main() -> Result<(), std::io::Error> {
//!     // On an `Err` or a panic: a crash REPL, then the same failure.
//!     crash_handler(|| std::fs::read_to_string("/nope").map(drop))
//! }
//! ```

use std::panic::resume_unwind;

use super::panic::{box_panic, catch_before_unwinding, shown_later, Panicked};
use super::repl::{self, Session};
use crate::msg::{ActorUid, RemoteError};
use crate::report::Inspect;

/// Which errors skip the REPL.
pub type ErrorFilter = fn(&(dyn std::error::Error + 'static)) -> bool;

/// Options of [`crash_handler`]: errors to pass through without a REPL,
/// and whether to hand the failure back after the REPL.
#[derive(Clone, Copy)]
pub struct CrashHandler {
    ignore: Option<ErrorFilter>,
    reraise: bool,
}

impl Default for CrashHandler {
    fn default() -> Self {
        Self {
            ignore: None,
            reraise: true,
        }
    }
}

impl CrashHandler {
    /// Re-raises after the REPL, ignores nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Errors for which `filter` says true skip the REPL (they are still
    /// returned).
    pub fn ignore(mut self, filter: ErrorFilter) -> Self {
        self.ignore = Some(filter);
        self
    }

    /// Whether the failure is handed back after the REPL (the default):
    /// the error returned, the panic resumed. Without, the failure ends
    /// at the REPL and [`CrashHandler::run`] returns `Ok(None)`.
    pub fn reraise(mut self, reraise: bool) -> Self {
        self.reraise = reraise;
        self
    }

    /// Runs `f`; on an `Err` or a panic, opens the crash REPL first.
    pub fn run<T, E>(self, f: impl FnOnce() -> Result<T, E>) -> Result<Option<T>, E>
    where
        E: std::error::Error + 'static,
    {
        let here = process_uid();
        // A panic's REPL opens in the panic hook, before unwinding: its
        // frames are still there for `locals` and `p`.
        let in_repl_at_panic = |f: &Panicked<'_>| open(&f.boxed(&process_uid()));
        match catch_before_unwinding(in_repl_at_panic, || shown_later(f)) {
            Ok(Ok(value)) => Ok(Some(value)),
            Ok(Err(err)) => {
                if !self.ignore.is_some_and(|skip| skip(&err)) {
                    open(&err.to_remote(&here));
                }
                if self.reraise {
                    Err(err)
                } else {
                    Ok(None)
                }
            }
            Err((payload, shown)) => {
                if !shown {
                    open(&box_panic(&*payload, &here));
                }
                if self.reraise {
                    resume_unwind(payload)
                }
                Ok(None)
            }
        }
    }
}

/// Runs `f` under the default [`CrashHandler`]: on an `Err` or a panic,
/// a crash REPL, then the same failure (exit codes stay honest).
pub fn crash_handler<T, E>(f: impl FnOnce() -> Result<T, E>) -> Result<T, E>
where
    E: std::error::Error + 'static,
{
    CrashHandler::new()
        .run(f)
        .map(|value| value.expect("a default CrashHandler re-raises every failure"))
}

/// A standalone process's name in headers: its executable and pid.
fn process_uid() -> ActorUid {
    let name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "process".into());
    ActorUid::new(name, std::process::id().to_string())
}

fn open(err: &RemoteError) {
    let mut session = Session::crash(&err.src_uid, err);
    session.lock_state =
        std::sync::Arc::new(|| "no tree lock: a standalone process owns its terminal".into());
    // The REPL runs on the failing code's own thread.
    session.native = Some(super::native::on_this_thread());
    if let Err(e) = repl::run_on_stdio(&session) {
        log::warn!("crash REPL failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_passes_through_and_ignored_errors_skip_the_repl() {
        assert_eq!(
            CrashHandler::new()
                .run(|| Ok::<_, std::io::Error>(7))
                .unwrap(),
            Some(7)
        );
        let not_found = || Err::<(), _>(std::io::Error::from(std::io::ErrorKind::NotFound));
        let skip_all: ErrorFilter = |_| true;
        // Ignored and re-raised: the error comes back, no REPL in between.
        let err = CrashHandler::new()
            .ignore(skip_all)
            .run(not_found)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        // Ignored and not re-raised: swallowed.
        let swallowed = CrashHandler::new()
            .ignore(skip_all)
            .reraise(false)
            .run(not_found);
        assert!(matches!(swallowed, Ok(None)));
    }
}

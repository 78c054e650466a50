//! `pause!`: stop the calling task in a REPL that owns the tree's
//! terminal, then go on (`c`) or fail with [`Quit`] (`q`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::lock::Lock;
use super::repl::{self, EnvScript, Kind, LineSource, Location, Outcome, Plain, Session, Terminal};
use super::status::DebugStatus;
use super::tty::lock_queue;
use super::DebugError;
use crate::actor::Actor;
use crate::msg::{ActorUid, TaskUid};

/// The user left a REPL with `q`: the paused task fails with this, and it
/// propagates like any error (a parent sees it boxed as `Quit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quit {
    /// The actor whose REPL was quit.
    pub actor: ActorUid,
}

impl fmt::Display for Quit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "quit from the REPL in {}", self.actor)
    }
}

impl std::error::Error for Quit {}

/// Why `pause!` did not pause, or how it ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum PauseError {
    /// The user quit.
    Quit(Quit),
    /// The pause was refused (no actor runtime, a double request, the
    /// root unreachable): nothing was shown.
    Refused(DebugError),
}

impl fmt::Display for PauseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PauseError::Quit(q) => q.fmt(f),
            PauseError::Refused(e) => write!(f, "pause refused: {e}"),
        }
    }
}

impl std::error::Error for PauseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PauseError::Quit(q) => Some(q),
            PauseError::Refused(e) => Some(e),
        }
    }
}

/// Names a quit `Quit` on its way up the tree (and not `PauseError`).
pub(crate) fn error_name(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    match err.downcast_ref::<PauseError>() {
        Some(PauseError::Quit(_)) => Some("Quit"),
        _ => err.downcast_ref::<Quit>().map(|_| "Quit"),
    }
}

/// Stops the calling task in a REPL: `pause!()`, or `pause!(a, b)` to
/// make `p a` and `p b` show those values (`Debug`). Async: await it.
///
/// ```no_run
/// # async fn f() -> Result<(), smol_devx::debug::pause::PauseError> {
/// let answer = 42;
/// smol_devx::pause!(answer).await?;
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! pause {
    () => {
        $crate::debug::pause::pause(
            $crate::debug::repl::Location { file: file!(), line: line!() },
            ::std::vec::Vec::new(),
        )
    };
    ($($value:ident),+ $(,)?) => {
        $crate::debug::pause::pause(
            $crate::debug::repl::Location { file: file!(), line: line!() },
            ::std::vec![$((stringify!($value), format!("{:?}", $value))),+],
        )
    };
}

/// `pause!` for a plain thread of an actor (not an executor thread: the
/// actor's own tasks must keep running to carry the lock dialog).
///
/// ```no_run
/// std::thread::spawn(|| {
///     let progress = 0.5;
///     smol_devx::pause_blocking!(progress).ok();
/// });
/// ```
#[macro_export]
macro_rules! pause_blocking {
    ($($value:ident),* $(,)?) => {
        $crate::debug::pause::pause_blocking($crate::pause!($($value),*))
    };
}

/// Waits on a `pause!` future from a plain thread.
pub fn pause_blocking(
    pause: impl std::future::Future<Output = Result<(), PauseError>>,
) -> Result<(), PauseError> {
    smol::block_on(pause)
}

/// What `pause!` expands to: takes the tree lock (locally in the root,
/// through the root elsewhere), runs the REPL on a blocking thread so the
/// actor keeps serving, and releases through [`DebugStatus::release`] on
/// every path.
pub async fn pause(
    location: Location,
    values: Vec<(&'static str, String)>,
) -> Result<(), PauseError> {
    let actor = Actor::current().ok_or_else(|| {
        PauseError::Refused(DebugError::Request(
            "no actor runtime in this process".into(),
        ))
    })?;
    // Until the task registry names tasks, every pause is its own task.
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let task = TaskUid::new("pause", NEXT.fetch_add(1, Ordering::Relaxed));
    let status = DebugStatus::get();
    status
        .enter(&actor, task)
        .await
        .map_err(PauseError::Refused)?;
    // Armed only once this pause holds the lock: DebugStatus has one
    // holder slot, which a queued pause must never release.
    let mut release_if_dropped = ReleaseIfDropped(true);
    let outcome = loop {
        match run_repl(&actor, location, values.clone()).await {
            // On this task's own thread, so that the debugger's backtrace
            // runs through the pause site; the tree lock stays held.
            Ok(Outcome::Gdb) => hand_to_gdb(),
            other => break other,
        }
    };
    release_if_dropped.0 = false;
    let released = status.release().await;
    let outcome = outcome.map_err(PauseError::Refused)?;
    released.map_err(PauseError::Refused)?;
    match outcome {
        Outcome::Continue => Ok(()),
        Outcome::Quit => Err(PauseError::Quit(Quit {
            actor: actor.uid().clone(),
        })),
        Outcome::Gdb => unreachable!("handled in the loop"),
    }
}

/// Releases the tree lock when a pause is dropped mid-REPL (its task was
/// cancelled): the lock must not stay with a task that is gone.
struct ReleaseIfDropped(bool);

impl Drop for ReleaseIfDropped {
    fn drop(&mut self) {
        if self.0 {
            smol::spawn(async {
                if let Err(e) = DebugStatus::get().release().await {
                    log::warn!("releasing the tree lock of a dropped pause: {e}");
                }
            })
            .detach();
        }
    }
}

/// Attaches a native debugger to this process on the same terminal and
/// waits for it to detach. Blocks the calling thread on purpose: the
/// whole process is stopped under the debugger anyway, and the thread's
/// stack is what the debugger shows.
fn hand_to_gdb() {
    let pid = std::process::id().to_string();
    let gdb = if on_path("rust-gdb") {
        "rust-gdb"
    } else {
        "gdb"
    };
    // Yama's ptrace_scope=1 lets only ancestors attach unless we allow it.
    let _ = rustix::process::set_ptracer(rustix::process::PTracer::Any);
    let status = std::process::Command::new(gdb)
        .args(["-q", "-p", &pid])
        .args(["-ex", "set pagination off", "-ex", "set confirm off"])
        .status();
    let _ = rustix::process::set_ptracer(rustix::process::PTracer::None);
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => println!("*** {gdb} ended with {status}"),
        Err(e) => println!("*** cannot run {gdb}: {e}"),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

async fn run_repl(
    actor: &Actor,
    location: Location,
    values: Vec<(&'static str, String)>,
) -> Result<Outcome, DebugError> {
    let (holder, waiting) = lock_queue(actor).await?;
    let lock_state = if actor.is_root() {
        Lock::root().to_string()
    } else {
        let holder = holder.map_or_else(|| "nobody".to_owned(), |h| h.to_string());
        format!("tree lock held by {holder}; {} waiting", waiting.len())
    };
    let session = Session {
        kind: Kind::Pause,
        actor: actor.uid().clone(),
        location,
        values,
        error: Vec::new(),
        backtrace: std::backtrace::Backtrace::force_capture().to_string(),
        waiting,
        lock_state,
    };
    // The REPL blocks on its input: off the executor, so the actor keeps
    // serving its dialogs meanwhile.
    smol::unblock(move || {
        let mut out = std::io::stdout();
        use std::io::IsTerminal;
        let mut input: Box<dyn LineSource> = if EnvScript::active() {
            Box::new(EnvScript)
        } else if std::io::stdin().is_terminal() {
            Box::new(Terminal)
        } else {
            Box::new(Plain(std::io::stdin().lock()))
        };
        repl::run(&session, input.as_mut(), &mut out)
    })
    .await
    .map_err(|e| DebugError::Request(format!("REPL I/O: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::error::{box_error, register_namer};

    #[test]
    fn a_quit_travels_as_quit_and_a_refusal_as_itself() {
        register_namer(error_name);
        let here = ActorUid::new("breakpoint_forever", "b");
        let quit = PauseError::Quit(Quit {
            actor: here.clone(),
        });
        let boxed = box_error(quit, &here);
        assert_eq!(boxed.type_name, "Quit");
        assert!(boxed
            .message
            .starts_with("quit from the REPL in ('breakpoint_forever'"));
        let refused = PauseError::Refused(DebugError::Cancelled);
        assert_eq!(box_error(refused, &here).type_name, "PauseError");
    }
}

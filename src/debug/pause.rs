//! `pause!`: stop the calling task in a REPL that owns the tree's
//! terminal, then go on (`c`) or fail with [`Quit`] (`q`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::gdb::hand_to_gdb;
use super::host::{self, Host};
use super::lock::Lock;
use super::lock_dialog::lock_queue;
use super::native::{self, LiveFrame, Query};
use super::repl::{self, Location, Outcome, Session};
use super::status::DebugStatus;
use super::DebugError;
use crate::msg::{ActorUid, RemoteError, TaskUid};
use crate::report::Inspect;
use crate::task::{lock, Instrument};

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
    /// The pause was refused (no host installed, a double request, the
    /// root unreachable, the terminal failed): nothing more was shown.
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

/// The type name a quit travels up the tree under.
pub const QUIT_TYPE: &str = "Quit";

/// Names a quit `Quit` on its way up the tree (and not `PauseError`),
/// for hosts that send errors up by type name.
pub fn error_name(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    match err.downcast_ref::<PauseError>() {
        Some(PauseError::Quit(_)) => Some(QUIT_TYPE),
        _ => err.downcast_ref::<Quit>().map(|_| QUIT_TYPE),
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
            $crate::debug::repl::Location { file: ::std::borrow::Cow::Borrowed(file!()), line: line!() },
            ::std::vec::Vec::new(),
        )
    };
    ($($value:ident),+ $(,)?) => {
        $crate::debug::pause::pause(
            $crate::debug::repl::Location { file: ::std::borrow::Cow::Borrowed(file!()), line: line!() },
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

/// Waits on a `pause!` future from a plain thread. On a thread that
/// runs the actor's tasks it refuses at once with
/// [`DebugError::BlockingOnExecutor`]: blocking there would hang them.
pub fn pause_blocking(
    pause: impl std::future::Future<Output = Result<(), PauseError>>,
) -> Result<(), PauseError> {
    block_off_executor(pause)
}

fn block_off_executor<T>(
    fut: impl std::future::Future<Output = Result<T, PauseError>>,
) -> Result<T, PauseError> {
    if crate::task::runs_tasks() {
        return Err(PauseError::Refused(DebugError::BlockingOnExecutor));
    }
    smol::block_on(fut)
}

/// What `pause!` expands to: takes the tree lock (locally in the root,
/// through the root elsewhere), runs the REPL on a blocking thread so the
/// actor keeps serving, and releases through [`DebugStatus::release`] on
/// every path.
pub async fn pause(
    location: Location,
    values: Vec<(&'static str, String)>,
) -> Result<(), PauseError> {
    let host = host::require().map_err(PauseError::Refused)?;
    let uid = host.uid();
    let repl = until_not_gdb(
        || Session::pause(&uid, location.clone(), values.clone()),
        &*host,
    );
    match in_repl("pause", repl).await? {
        Outcome::Quit => Err(PauseError::Quit(Quit { actor: uid })),
        _ => Ok(()),
    }
}

/// Runs REPL sessions made by `session` until the user leaves with `c`
/// or `q`: `gdb` attaches the native debugger and, once it detaches,
/// the same REPL comes back.
async fn until_not_gdb(
    session: impl Fn() -> Session,
    host: &dyn Host,
) -> Result<Outcome, DebugError> {
    loop {
        match run_repl(host, session()).await? {
            // On this task's own thread, so that the debugger's backtrace
            // runs through the pause site; the tree lock stays held.
            Outcome::Gdb => hand_to_gdb(),
            other => return Ok(other),
        }
    }
}

/// Holds the tree lock (as task `name#n` of this actor) while `repl`
/// runs, and releases it on every path: after `repl`, on its error, and
/// when the whole future is dropped mid-REPL.
async fn in_repl(
    name: &str,
    repl: impl std::future::Future<Output = Result<Outcome, DebugError>>,
) -> Result<Outcome, PauseError> {
    // The lock's owner is the registry's task when there is one, so that
    // one task awaiting two REPLs at once is refused as a double request
    // instead of queueing behind itself. Elsewhere (a plain thread, an
    // untracked task) each REPL entry is an owner of its own.
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let task = match crate::task::current_id() {
        Some(id) => TaskUid::new("task", id),
        None => TaskUid::new(name, NEXT.fetch_add(1, Ordering::Relaxed)),
    };
    let status = DebugStatus::get();
    status
        .enter(task)
        .instrument("tree lock for a REPL")
        .await
        .map_err(PauseError::Refused)?;
    // Armed only once this REPL holds the lock: DebugStatus has one
    // holder slot, which a queued entry must never release.
    let mut release_if_dropped = ReleaseIfDropped(true);
    let outcome = repl.await;
    release_if_dropped.0 = false;
    let released = status.release().await;
    let outcome = outcome.map_err(PauseError::Refused)?;
    released.map_err(PauseError::Refused)?;
    Ok(outcome)
}

/// Releases the tree lock when a pause is dropped mid-REPL (its task was
/// cancelled): the lock must not stay with a task that is gone.
struct ReleaseIfDropped(bool);

impl Drop for ReleaseIfDropped {
    fn drop(&mut self) {
        if self.0 {
            crate::task::spawn("release after dropped pause", async {
                if let Err(e) = DebugStatus::get().release().await {
                    log::warn!("releasing the tree lock of a dropped pause: {e}");
                }
            })
            .detach();
        }
    }
}

/// Opens the crash REPL on `err` in this actor: hosts call it (through
/// [`crash_repl`]) when an actor's entry failed, before the failure goes
/// up the tree; code may call it on any error it holds: an error (or a
/// `&dyn Error`), a [`crate::Report`] (the REPL then shows its site and
/// backtrace), a `RemoteError` from a child. `c` and `q` both leave: the
/// error goes on.
///
/// ```no_run
/// # async fn f() -> Result<(), smol_devx::debug::pause::PauseError> {
/// let err = "eighty".parse::<u16>().unwrap_err();
/// smol_devx::debug::pause::post_mortem(&err).await?;
/// let report = smol_devx::Report::new(err);
/// smol_devx::debug::pause::post_mortem(&report).await?;
/// # Ok(()) }
/// ```
pub async fn post_mortem<E: Inspect + ?Sized>(err: &E) -> Result<(), PauseError> {
    let host = host::require().map_err(PauseError::Refused)?;
    let uid = host.uid();
    let err = err.to_remote(&uid);
    let repl = until_not_gdb(|| Session::crash(&uid, &err), &*host);
    in_repl("post_mortem", repl).await.map(drop)
}

/// What a host runs when an actor's entry failed, in debug mode: the
/// crash REPL on `err` (boxed where it failed, or relayed from a child),
/// unless it is this actor's own quit (the user just left a REPL here)
/// or [`skip_crash_repl_for`] skips it. A refused REPL is logged.
pub async fn crash_repl(err: &RemoteError) {
    let Some(host) = host::current() else {
        log::warn!("no crash REPL: no debugger host in this process");
        return;
    };
    if !wants_crash_repl(&host.uid(), err) {
        return;
    }
    if let Err(e) = post_mortem(err).await {
        log::warn!("{}: no crash REPL: {e}", host.uid());
    }
}

/// Picks the errors for which the runtime opens no crash REPL.
pub type CrashFilter = fn(&RemoteError) -> bool;

static SKIP: std::sync::Mutex<Option<CrashFilter>> = std::sync::Mutex::new(None);

/// Makes the runtime skip the crash REPL for the errors `filter` picks
/// (they still go up the tree). Set it in each actor's process (with
/// the crate's runtime: in `main`, which subactors run too).
///
/// ```no_run
/// smol_devx::debug::pause::skip_crash_repl_for(|err| err.type_name == "TimedOut");
/// ```
pub fn skip_crash_repl_for(filter: CrashFilter) {
    *lock(&SKIP) = Some(filter);
}

/// Whether a failure of `here` gets a crash REPL: not an actor's own quit
/// (the user just left a REPL there), not what the filter skips.
fn wants_crash_repl(here: &ActorUid, err: &RemoteError) -> bool {
    let own_quit = err.type_name == QUIT_TYPE && err.src_uid == *here;
    let skipped = lock(&SKIP).is_some_and(|skip| skip(err));
    !own_quit && !skipped
}

/// [`post_mortem`] from a plain thread of an actor (refused, like
/// [`pause_blocking()`], on a thread that runs its tasks).
pub fn post_mortem_blocking<E: Inspect + ?Sized>(err: &E) -> Result<(), PauseError> {
    block_off_executor(post_mortem(err))
}

async fn run_repl(host: &dyn Host, mut session: Session) -> Result<Outcome, DebugError> {
    // A host that cannot ask the root still gets its REPL, without the
    // queue banner.
    session.waiting = match lock_queue().await {
        Ok((_, waiting)) => waiting,
        Err(DebugError::Unsupported(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    let is_root = host.is_root();
    session.lock_state = Arc::new(move || lock_state_now(is_root));
    let (asks, asked) = async_channel::bounded(1);
    session.native = Some(Arc::new(move |frame: &LiveFrame, query: &Query| {
        let (reply, answer) = async_channel::bounded(1);
        let gone = "*** the paused task is gone".to_owned();
        let ask = (frame.clone(), query.clone(), reply);
        asks.send_blocking(ask).map_err(|_| gone.clone())?;
        answer.recv_blocking().map_err(|_| gone)?
    }));
    // The REPL blocks on its input: off the executor, so the actor keeps
    // serving its dialogs meanwhile.
    let repl = smol::unblock(move || repl::run_on_stdio(&session)).instrument("REPL");
    let mut repl = std::pin::pin!(repl);
    loop {
        let ended = smol::future::or(async { Some((&mut repl).await) }, async {
            let Ok((frame, query, reply)) = asked.recv().await else {
                // The REPL is over (it held the sender): only its
                // outcome is left to wait for.
                return smol::future::pending().await;
            };
            // Answered here, inside the paused task's poll: its frames
            // are on this thread's stack, for gdb to read.
            let answer = native::ask(native::this_thread(), &frame, &query);
            let _ = reply.try_send(answer);
            None
        })
        .await;
        if let Some(outcome) = ended {
            return outcome.map_err(DebugError::Terminal);
        }
    }
}

/// The tree lock's state as the `lock` command shows it, asked when the
/// command is typed: the root reads its lock, a subactor asks the root
/// (from the REPL's own thread, while the actor's tasks run on).
fn lock_state_now(is_root: bool) -> String {
    if is_root {
        return Lock::root().to_string();
    }
    match smol::block_on(lock_queue()) {
        Ok((holder, waiting)) => {
            let holder = holder.map_or_else(|| "nobody".to_owned(), |h| h.to_string());
            let mut state = format!("tree lock held by {holder}");
            if waiting.is_empty() {
                state.push_str("\n  nobody waiting");
            }
            for (i, w) in waiting.iter().enumerate() {
                state.push_str(&format!("\n  waiting {}: {w}", i + 1));
            }
            state
        }
        Err(DebugError::Unsupported(_)) => {
            "tree lock held here; this host cannot ask the root who waits".to_owned()
        }
        Err(e) => format!("*** cannot ask the root about the tree lock: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn crash_repls_skip_an_own_quit_and_filtered_errors() {
        let (child, root) = (ActorUid::new("child", "c"), ActorUid::new("root", "r"));
        let quit = RemoteError::new("Quit", "quit", child.clone());
        assert!(!wants_crash_repl(&child, &quit), "its own quit");
        assert!(wants_crash_repl(&root, &quit), "a child's quit, boxed");
        let timeout = RemoteError::new("TimedOut", "slow", child.clone());
        assert!(wants_crash_repl(&child, &timeout));
        skip_crash_repl_for(|err| err.type_name == "TimedOut");
        assert!(!wants_crash_repl(&child, &timeout));
        assert!(wants_crash_repl(
            &child,
            &RemoteError::new("NameError", "x", child.clone())
        ));
        *SKIP.lock().unwrap() = None;
    }
}

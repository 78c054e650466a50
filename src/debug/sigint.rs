//! ctrl-c while a REPL may be live, and the terminal mode as state the
//! root owns.
//!
//! Every process of a tree watches SIGINT with one `async-signal`
//! `Signals`, created by [`host::install`] before anything can prompt
//! and kept for the process's life. What a ctrl-c does is
//! decided when it arrives, from the tree lock's state:
//!
//! - root, the lock held by a live REPL (queued ones wait behind it):
//!   ignored, with one log line; a REPL does not end because a key was
//!   pressed;
//! - root, the holder's connection gone (a stale lock): the lock is
//!   released, the terminal mode restored, and the next ctrl-c cancels;
//! - root, no REPL anywhere: the tree is cancelled
//!   ([`Host::cancel_tree`]);
//! - subactors never act on a terminal ctrl-c: their parent supervises
//!   them. One that lost its parent exits.
//!
//! A line editor in raw mode clears `ISIG`, so while a REPL reads no
//! SIGINT is raised at all: the editor gets the key and redraws its
//! prompt. That is also why the terminal mode is shared state: a holder
//! that dies in raw mode would leave ctrl-c dead for every process. The
//! root snapshots the mode at start-up and restores it whenever a holder
//! releases abnormally or dies, and when it exits.

use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, OnceLock};

use async_signal::{Signal, Signals};
use smol::stream::StreamExt;

use super::host::{self, Host};
use super::lock::{Lock, Owner};
use super::status::DebugStatus;
use crate::task::{self, lock, Instrument};

/// Tells whether a lock holder's connection is alive.
pub type Liveness = Arc<dyn Fn() -> bool + Send + Sync>;

/// The remote holder of the root's lock and how to tell it is alive,
/// kept by the lock dialog for as long as it holds.
static HOLDER: Mutex<Option<(Owner, Liveness)>> = Mutex::new(None);

/// The terminal mode at start-up (root, stdin a terminal).
static SAVED_MODE: OnceLock<Option<rustix::termios::Termios>> = OnceLock::new();

/// Starts watching SIGINT for this process's whole life; in the root,
/// first snapshots the terminal mode. Called once, early.
pub(crate) fn watch(is_root: bool) {
    static STARTED: OnceLock<()> = OnceLock::new();
    if STARTED.set(()).is_err() {
        return;
    }
    if is_root {
        SAVED_MODE.get_or_init(|| {
            let stdin = std::io::stdin();
            let fd = stdin.as_fd();
            rustix::termios::isatty(fd)
                .then(|| rustix::termios::tcgetattr(fd).ok())
                .flatten()
        });
    }
    // The root also ends the tree in order on SIGTERM and SIGHUP (the
    // terminal went away), REPL or not. A subactor gets SIGTERM when its
    // parent dies or gives up on it, and SIGHUP with the whole foreground
    // group when the terminal's controlling process dies: it leaves the
    // terminal cooked if its REPL had it, and exits.
    let watched = [Signal::Int, Signal::Term, Signal::Hup];
    let mut signals = match Signals::new(watched) {
        Ok(signals) => signals,
        Err(e) => {
            log::error!("cannot watch SIGINT, ctrl-c keeps its default action: {e}");
            return;
        }
    };
    // Off the actor's thread (see `task::block_on`): a ctrl-c is judged
    // even while a task blocks that thread.
    smol::spawn(task::track("SIGINT watcher", async move {
        while let Some(signal) = signals.next().instrument("SIGINT").await {
            match signal {
                Ok(Signal::Int) => on_sigint(),
                Ok(other) => on_termination(other),
                Err(e) => log::warn!("signal watcher: {e}"),
            }
        }
    }))
    .detach();
}

/// The lock dialog records its remote holder for the SIGINT watcher.
pub(crate) fn holding(owner: Owner, alive: Liveness) -> HolderMark {
    *lock(&HOLDER) = Some((owner.clone(), alive));
    HolderMark(owner)
}

/// Clears the record of a remote holder when dropped.
pub(crate) struct HolderMark(Owner);

impl Drop for HolderMark {
    fn drop(&mut self) {
        let mut holder = lock(&HOLDER);
        if holder.as_ref().is_some_and(|(o, _)| *o == self.0) {
            *holder = None;
        }
    }
}

/// Puts the terminal back in the mode the root found it in. Root only;
/// does nothing when stdin is not a terminal.
pub fn restore_terminal() {
    let Some(Some(mode)) = SAVED_MODE.get() else {
        return;
    };
    let stdin = std::io::stdin();
    let restored =
        rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, mode);
    match restored {
        Ok(()) => log::debug!("terminal mode restored"),
        Err(e) => log::warn!("cannot restore the terminal mode: {e}"),
    }
}

fn on_sigint() {
    let Some(host) = host::current() else {
        // No actor yet, so no REPL and nothing to cancel gracefully: do
        // what ctrl-c does by default.
        crate::log::flush();
        std::process::exit(130);
    };
    if host.is_root() {
        root_sigint(&*host);
    } else if DebugStatus::get().snapshot().holding.is_some() {
        log::debug!("{}: SIGINT during this actor's REPL: ignored", host.uid());
    } else if !host.parent_alive() {
        log::warn!("{}: SIGINT and no parent any more: exiting", host.uid());
        crate::log::flush();
        std::process::exit(1);
    } else {
        log::debug!("{}: SIGINT ignored: the parent supervises", host.uid());
    }
}

/// SIGTERM or SIGHUP in the root: the tree ends now, REPL or not. In a
/// subactor: out now, the terminal cooked again if its REPL had it.
fn on_termination(signal: Signal) {
    let code = 128 + signal as i32;
    match host::current() {
        Some(host) if host.is_root() => {
            log::warn!("{}: {signal:?}: ending the actor tree", host.uid());
            host.terminate(signal as i32);
        }
        _ => {
            // Should the exit itself hang, the process still ends.
            let _ = std::thread::Builder::new().spawn(|| {
                std::thread::sleep(EXIT_GRACE);
                let _ = rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::KILL,
                );
            });
            leave_terminal();
            crate::log::flush();
            std::process::exit(code);
        }
    }
}

/// How long a subactor told to end may take to exit before it kills
/// itself.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// What a subactor calls on its way out, however it goes: if its REPL
/// is reading a line (the terminal in a line editor's raw mode), puts the
/// terminal back in cooked mode. The root's snapshot is not at hand (the
/// root may be gone): line editing, echo, signal keys, CR to NL on input
/// and output processing are turned back on.
pub fn leave_terminal() {
    if !super::repl::editing() {
        return;
    }
    use rustix::termios::{InputModes, LocalModes, OptionalActions, OutputModes};
    let stdin = std::io::stdin();
    let Ok(mut mode) = rustix::termios::tcgetattr(stdin.as_fd()) else {
        return;
    };
    mode.local_modes |=
        LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG | LocalModes::IEXTEN;
    mode.input_modes |= InputModes::ICRNL;
    mode.output_modes |= OutputModes::OPOST | OutputModes::ONLCR;
    if let Err(e) = rustix::termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &mode) {
        log::warn!("cannot put the terminal back in cooked mode: {e}");
    }
}

/// What the root does with a ctrl-c.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// A live REPL holds or waits for the terminal: say so, do nothing.
    Ignore(String),
    /// The holder is gone: release its lock and restore the terminal.
    Stale(Owner),
    /// No REPL anywhere: cancel the tree.
    Cancel,
}

fn verdict(lock: &Lock, remote: Option<(Owner, Liveness)>) -> Verdict {
    match (lock.holder(), remote) {
        (Some(holder), Some((owner, alive))) if holder == owner && !alive() => {
            Verdict::Stale(holder)
        }
        (Some(holder), _) => Verdict::Ignore(format!("{holder} is in a REPL")),
        // The lock hands over to the next waiter as it is released: with
        // no holder, no one waits either.
        (None, _) => Verdict::Cancel,
    }
}

fn root_sigint(host: &dyn Host) {
    let remote = lock(&HOLDER).clone();
    let root_lock = Lock::root();
    match verdict(root_lock, remote) {
        Verdict::Ignore(why) => log::warn!("ignoring ctrl-c: {why}"),
        Verdict::Stale(holder) => {
            log::error!(
                "ctrl-c: the REPL holder {holder} is gone; releasing the stale tree lock \
                 (the next ctrl-c cancels the tree)"
            );
            root_lock.force_release();
            restore_terminal();
        }
        Verdict::Cancel => host.cancel_tree("ctrl-c (SIGINT)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{ActorUid, TaskUid};

    fn owner(name: &str, cid: Option<u64>) -> Owner {
        Owner {
            actor: ActorUid::new(name, "u"),
            task: TaskUid::new("t", 1),
            cid,
        }
    }

    #[test]
    fn ctrl_c_is_ignored_while_a_live_repl_holds_released_when_stale_else_cancels() {
        smol::block_on(async {
            let lock = Lock::new();
            assert_eq!(verdict(&lock, None), Verdict::Cancel);
            let root_repl = lock.acquire(owner("root", None)).await.unwrap();
            assert!(matches!(verdict(&lock, None), Verdict::Ignore(w) if w.contains("('root'")));
            let child = owner("child", Some(7));
            root_repl.release();
            let _held = lock.acquire(child.clone()).await.unwrap();
            let alive: Liveness = Arc::new(|| true);
            let dead: Liveness = Arc::new(|| false);
            assert!(matches!(
                verdict(&lock, Some((child.clone(), alive))),
                Verdict::Ignore(_)
            ));
            assert_eq!(
                verdict(&lock, Some((child.clone(), dead.clone()))),
                Verdict::Stale(child.clone())
            );
            // A dead record of someone else does not make this holder stale.
            assert!(matches!(
                verdict(&lock, Some((owner("other", Some(9)), dead))),
                Verdict::Ignore(_)
            ));
        });
    }
}

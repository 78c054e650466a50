//! ctrl-c (and SIGTERM, SIGHUP) while a REPL may be live.
//!
//! Every process of a tree watches SIGINT with one `async-signal`
//! `Signals`, created by [`install`](super::install) before anything can prompt
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
//! prompt (see [`terminal`](super::terminal)).

use std::sync::OnceLock;

use async_signal::{Signal, Signals};
use smol::stream::StreamExt;

use super::dialog::Liveness;
use super::host::{self, Host};
use super::lock::{remote_holder, Lock, Owner};
use super::status::DebugStatus;
use super::terminal::{leave_terminal, restore_terminal};
use crate::task::{self, Instrument};

/// Starts watching SIGINT (and SIGTERM, SIGHUP) for this process's whole
/// life. Called once, early.
pub(crate) fn watch() {
    static STARTED: OnceLock<()> = OnceLock::new();
    if STARTED.set(()).is_err() {
        return;
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
    let remote = remote_holder();
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
    use std::sync::Arc;

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

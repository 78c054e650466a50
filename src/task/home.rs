//! The home executor: one per process, run by the thread that calls
//! [`block_on`] (an actor's main thread), which waits on the home poller
//! (`poller.rs`) between polls.
//!
//! Why: on smol's global executor a socket event is seen by the thread
//! that drives the reactor and then handed to the executor's own thread,
//! a second thread wake-up on every hop of every dialog. An actor whose
//! tasks all run on the thread that waits for their sockets is woken once
//! per message, like a blocking socket.
//!
//! [`spawn`](super::spawn) puts a task here when it is called on a thread
//! inside [`block_on`], and on smol's global executor otherwise: a task
//! spawned from any other thread (a blocking REPL, a plain
//! `smol::block_on`, a unit test) must run even if no thread ever drives
//! the home executor again.

use std::cell::Cell;
use std::future::Future;

static HOME: smol::Executor<'static> = smol::Executor::new();

std::thread_local! {
    /// Whether this thread is inside [`block_on`].
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `fut` to completion on this thread, running the tasks that
/// [`spawn`](super::spawn) makes meanwhile on this thread too.
///
/// The actor runtime runs each actor's main future this way. Tasks still
/// pending when it returns wait for the next `block_on`.
///
/// Those tasks run only while this thread is free: blocking it (a sync
/// call that waits on them, a nested `smol::block_on`) stalls them all.
/// Block on another thread (`smol::unblock`, a plain thread).
///
/// ```
/// use smol_devx::task;
///
/// let here = std::thread::current().id();
/// let ran_on = task::block_on(async {
///     task::spawn("where", async { std::thread::current().id() }).await
/// });
/// assert_eq!(ran_on, here);
/// ```
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    struct Driving(bool);
    impl Drop for Driving {
        fn drop(&mut self) {
            DRIVING.set(self.0);
        }
    }
    let _driving = Driving(DRIVING.replace(true));
    match super::poller::drive(HOME.run(fut)) {
        Ok(out) => out,
        // Another thread drives the home poller (a second `block_on` at
        // once, in tests): wait on smol's reactor instead.
        Err(run) => smol::block_on(run),
    }
}

/// Spawns `fut` on the home executor if this thread drives it, else on
/// smol's global executor.
pub(super) fn spawn<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> smol::Task<T> {
    if DRIVING.get() {
        HOME.spawn(fut)
    } else {
        smol::spawn(fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawns_from_other_threads_still_run() {
        let from_other_thread = block_on(async {
            let task = std::thread::spawn(|| spawn(async { 7 })).join().unwrap();
            // Blocks the only home thread: only smol's executor can run it.
            smol::block_on(task)
        });
        assert_eq!(from_other_thread, 7);
    }

    #[test]
    fn tasks_spawned_inside_run_on_the_driving_thread() {
        let here = std::thread::current().id();
        let (inner, nested) = block_on(async {
            let nested = spawn(async { spawn(async { std::thread::current().id() }).await });
            (std::thread::current().id(), nested.await)
        });
        assert_eq!(inner, here);
        assert_eq!(nested, here);
    }
}

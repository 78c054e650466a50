//! Where tracked tasks run: each call of [`block_on`] (on an actor's main
//! thread) drives a smol [`LocalExecutor`] of its own, under
//! `async_io::block_on`, which waits on the reactor in that very thread
//! when no other thread is already waiting on it. An actor's tasks then
//! run on the thread that waits for their sockets.
//!
//! [`spawn`](super::spawn) puts a task on that executor when it is called
//! on a thread inside [`block_on`], and on smol's global executor
//! otherwise: a task spawned from any other thread (a blocking REPL, a
//! plain `smol::block_on`, a host's executor, a unit test) must run even
//! if no thread ever drives a local executor again.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use smol::LocalExecutor;

std::thread_local! {
    /// The executor of the innermost [`block_on`] running on this thread.
    static LOCAL: RefCell<Option<Rc<LocalExecutor<'static>>>> = const { RefCell::new(None) };
}

/// This thread's executor, if it drives one. `None` also while the
/// thread's locals are torn down: a task dropped then may spawn.
fn local() -> Option<Rc<LocalExecutor<'static>>> {
    LOCAL.try_with(|l| l.borrow().clone()).ok().flatten()
}

/// Puts back the executor of the enclosing [`block_on`] (if any) when
/// the inner one ends, also by unwinding.
struct Restore(Option<Rc<LocalExecutor<'static>>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let outer = self.0.take();
        let _ = LOCAL.try_with(|l| *l.borrow_mut() = outer);
    }
}

/// Runs `fut` to completion on this thread, running the tasks that
/// [`spawn`](super::spawn) makes meanwhile on this thread too.
///
/// The actor runtime runs each actor's main future this way. Tasks still
/// pending when it returns are cancelled (dropped), as smol's executors
/// do; a task dropped then that spawns goes to smol's global executor.
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
    let executor = Rc::new(LocalExecutor::new());
    // Declared after `executor`, so dropped before it: its tasks are
    // dropped with this thread no longer driving it.
    let _restore = Restore(LOCAL.with(|l| l.borrow_mut().replace(executor.clone())));
    smol::block_on(executor.run(fut))
}

/// Whether this thread runs tasks: it drives a local executor
/// ([`block_on`]) or is inside a tracked task's poll on any executor.
/// Blocking such a thread on a future stalls the tasks that would
/// complete it.
pub fn runs_tasks() -> bool {
    local().is_some() || super::current_id().is_some()
}

/// Spawns `fut` on this thread's local executor if this thread drives
/// it, else on smol's global executor.
pub(super) fn spawn<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> smol::Task<T> {
    match local() {
        Some(executor) => executor.spawn(fut),
        None => smol::spawn(fut),
    }
}

#[cfg(test)]
mod tests {
    use smol::future::FutureExt;

    use super::*;

    #[test]
    fn spawns_from_other_threads_still_run() {
        let from_other_thread = block_on(async {
            let task = std::thread::spawn(|| spawn(async { 7 })).join().unwrap();
            // Blocks the only driving thread: only smol's executor can
            // run it.
            smol::block_on(task)
        });
        assert_eq!(from_other_thread, 7);
    }

    #[test]
    fn a_panicking_task_reaches_its_awaiter_and_the_thread_goes_on() {
        let (caught, after) = block_on(async {
            let failing = spawn(async {
                panic!("on purpose");
            });
            let caught = std::panic::AssertUnwindSafe(failing).catch_unwind().await;
            (caught.is_err(), spawn(async { 7 }).await)
        });
        assert!(caught, "the panic reached the awaiter");
        assert_eq!(after, 7);
    }

    #[test]
    fn two_threads_in_block_on_each_run_their_own_tasks() {
        let (driving_tx, driving) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel::<Option<u32>>();
        // Blocks its thread until the second one's task has run: only the
        // second `block_on` can run that task.
        let first = std::thread::spawn(move || {
            block_on(async move {
                driving_tx.send(()).unwrap();
                done.recv_timeout(std::time::Duration::from_secs(10))
            })
        });
        driving.recv().unwrap();
        let got = block_on(async {
            let task = spawn(async { Some(42) });
            task.or(async {
                smol::Timer::after(std::time::Duration::from_secs(10)).await;
                None
            })
            .await
        });
        done_tx.send(got).unwrap();
        assert_eq!(got, Some(42), "the second block_on ran its task");
        assert_eq!(first.join().unwrap(), Ok(Some(42)));
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

    #[test]
    fn tasks_left_pending_are_dropped_and_their_drops_may_spawn() {
        /// Spawns a task when dropped, as a guard that hands off its
        /// cleanup would.
        struct SpawnsOnDrop(Option<smol::channel::Sender<u32>>);
        impl Drop for SpawnsOnDrop {
            fn drop(&mut self) {
                let tx = self.0.take().unwrap();
                spawn(async move { tx.send(5).await }).detach();
            }
        }
        let (tx, rx) = smol::channel::bounded(1);
        block_on(async move {
            let guard = SpawnsOnDrop(Some(tx));
            spawn(async move {
                let _guard = guard;
                smol::future::pending::<()>().await
            })
            .detach();
            assert!(runs_tasks());
        });
        assert!(!runs_tasks());
        assert_eq!(smol::block_on(rx.recv()), Ok(5));
    }

    #[test]
    fn a_nested_block_on_gives_the_thread_back_to_the_outer_one() {
        let here = std::thread::current().id();
        let outer = block_on(async {
            let inner = block_on(async { spawn(async { 1 }).await });
            inner + spawn(async move { u32::from(std::thread::current().id() == here) }).await
        });
        assert_eq!(outer, 2);
    }
}

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
//! Why not `smol::Executor` for it: built for many threads, it keeps a
//! set of every live task, searches local, global and other threads'
//! queues for the next one and tracks sleeping tickers: ~4k instructions
//! per lock dialog in the root, ~3k in the subactor (callgrind of
//! `cargo bench --bench lock`), a fifth of all. Here a woken task goes
//! into one queue, and the thread in [`block_on`] runs the queue.
//!
//! [`spawn`](super::spawn) puts a task here when it is called on a thread
//! inside [`block_on`], and on smol's global executor otherwise: a task
//! spawned from any other thread (a blocking REPL, a plain
//! `smol::block_on`, a unit test) must run even if no thread ever drives
//! the home executor again.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use async_task::Runnable;

use super::{lock, Raised};

/// Home tasks woken and not yet run, in the order they were woken.
static QUEUE: Mutex<VecDeque<Runnable>> = Mutex::new(VecDeque::new());

/// Wakers of the [`block_on`]s that run home tasks while another thread
/// drives the poller (two at once, in tests); `BYSTANDING` says some wait.
static BYSTANDERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());
static BYSTANDING: AtomicBool = AtomicBool::new(false);

/// Tasks run per turn, between two looks at I/O.
const TURN: usize = 64;

std::thread_local! {
    /// Whether this thread is inside [`block_on`].
    static DRIVING: Cell<bool> = const { Cell::new(false) };
    /// Whether this thread is running home tasks right now: a task it
    /// wakes is found before the thread waits, with no ring needed.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// A woken home task joins the queue; whoever runs home tasks is told,
/// unless it is this very thread, mid-turn.
fn schedule(runnable: Runnable) {
    lock(&QUEUE).push_back(runnable);
    if !RUNNING.get() {
        super::poller::ring();
    }
    if BYSTANDING.load(SeqCst) && BYSTANDING.swap(false, SeqCst) {
        for waker in std::mem::take(&mut *lock(&BYSTANDERS)) {
            waker.wake();
        }
    }
}

fn next_task() -> Option<Runnable> {
    lock(&QUEUE).pop_front()
}

pin_project_lite::pin_project! {
    /// `main` to completion, with the home tasks run between its polls.
    struct RunHome<F> {
        #[pin]
        main: OnlyWhenWoken<F>,
        drives: bool,
    }
}

impl<F: Future> Future for RunHome<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let _running = Raised::new(&RUNNING);
        // Whatever wakes `main` meanwhile wakes `cx` too (its gate passes
        // wakes on), so a `Pending` below never sleeps through one.
        if let Poll::Ready(out) = this.main.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        for _ in 0..TURN {
            let Some(task) = next_task() else {
                // The driver's poller rings for what is woken from now on;
                // a bystander asks to be woken.
                if !*this.drives {
                    let mut bystanders = lock(&BYSTANDERS);
                    if !bystanders.iter().any(|w| w.will_wake(cx.waker())) {
                        bystanders.push(cx.waker().clone());
                    }
                    BYSTANDING.store(true, SeqCst);
                    drop(bystanders);
                    // Woken between the last look and the registration.
                    if !lock(&QUEUE).is_empty() {
                        cx.waker().wake_by_ref();
                    }
                }
                return Poll::Pending;
            };
            task.run();
        }
        // More may wait: back after a look at I/O (the poller's, or smol's
        // reactor's), which tasks that keep waking themselves must not
        // starve.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
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
    let _driving = Raised::new(&DRIVING);
    let run = RunHome {
        main: OnlyWhenWoken::new(fut),
        drives: true,
    };
    match super::poller::drive(run) {
        Ok(out) => out,
        // Another thread drives the home poller (a second `block_on` at
        // once, in tests): run home tasks too, waiting on smol's reactor.
        Err(mut run) => {
            run.drives = false;
            smol::block_on(run)
        }
    }
}

pin_project_lite::pin_project! {
    /// `fut`, polled only when something woke it since its last poll.
    ///
    /// Why: the executor polls the future it runs on every turn, that is
    /// after every wake of any home task. An actor's main future is a deep
    /// chain (its entry, nurseries, channel waits) that rarely has
    /// anything to do: polling it cost the root ~800 instructions per
    /// message of each lock dialog it served (callgrind of
    /// `cargo bench --bench lock`).
    struct OnlyWhenWoken<F> {
        #[pin]
        fut: F,
        gate: Arc<Gate>,
        waker: Waker,
    }
}

/// The waker [`OnlyWhenWoken`] gives its future: it notes the wake and
/// passes it on to whoever polls the gate.
struct Gate {
    woken: AtomicBool,
    outer: Mutex<Option<Waker>>,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, SeqCst);
        if let Some(outer) = lock(&self.outer).as_ref() {
            outer.wake_by_ref();
        }
    }
}

impl<F: Future> OnlyWhenWoken<F> {
    fn new(fut: F) -> Self {
        let gate = Arc::new(Gate {
            // The first poll is always due.
            woken: AtomicBool::new(true),
            outer: Mutex::new(None),
        });
        let waker = Waker::from(gate.clone());
        Self { fut, gate, waker }
    }
}

impl<F: Future> Future for OnlyWhenWoken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        {
            let mut outer = lock(&this.gate.outer);
            if !outer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *outer = Some(cx.waker().clone());
            }
        }
        // After the registration: a wake from now on either is seen here
        // or reaches the new outer waker, which polls again.
        if !this.gate.woken.swap(false, SeqCst) {
            return Poll::Pending;
        }
        this.fut.poll(&mut Context::from_waker(this.waker))
    }
}

/// Whether this thread runs tasks: it drives a home executor
/// ([`block_on`]) or is inside a tracked task's poll on any executor.
/// Blocking such a thread on a future stalls the tasks that would
/// complete it.
pub fn runs_tasks() -> bool {
    DRIVING.get() || super::current_id().is_some()
}

/// Spawns `fut` on the home executor if this thread drives it, else on
/// smol's global executor.
pub(super) fn spawn<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> smol::Task<T> {
    if !DRIVING.get() {
        return smol::spawn(fut);
    }
    // A panic ends the task, not the home thread: it reaches whoever
    // awaits the task (as on smol's executors).
    let (runnable, task) = async_task::Builder::new()
        .propagate_panic(true)
        .spawn(|()| fut, schedule);
    runnable.schedule();
    task
}

#[cfg(test)]
mod tests {
    use smol::future::FutureExt;

    use super::*;

    #[test]
    fn spawns_from_other_threads_still_run() {
        let _turn = crate::task::home_turn();
        let from_other_thread = block_on(async {
            let task = std::thread::spawn(|| spawn(async { 7 })).join().unwrap();
            // Blocks the only home thread: only smol's executor can run it.
            smol::block_on(task)
        });
        assert_eq!(from_other_thread, 7);
    }

    /// Counts the polls of the future it wraps.
    struct CountPolls<F>(Pin<Box<F>>, Arc<std::sync::atomic::AtomicUsize>);

    impl<F: Future> Future for CountPolls<F> {
        type Output = F::Output;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            self.1.fetch_add(1, SeqCst);
            self.0.as_mut().poll(cx)
        }
    }

    #[test]
    fn the_main_future_is_polled_only_when_woken() {
        let _turn = crate::task::home_turn();
        let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = smol::channel::bounded::<()>(1);
        let waits = CountPolls(Box::pin(async move { rx.recv().await }), polls.clone());
        let got = block_on(async move {
            // Home tasks woken from smol's timer thread: each wake is a
            // turn of the executor, about 200 of them.
            for _ in 0..20 {
                spawn(async {
                    for _ in 0..10 {
                        smol::Timer::after(std::time::Duration::from_micros(200)).await;
                    }
                })
                .detach();
            }
            spawn(async move {
                smol::Timer::after(std::time::Duration::from_millis(50)).await;
                tx.send(()).await
            })
            .detach();
            waits.await
        });
        assert_eq!(got, Ok(()));
        // The first poll and the one the message's wake asks for; a
        // spurious wake or two would pass, the executor's turns would not.
        let polls = polls.load(SeqCst);
        assert!((2..=4).contains(&polls), "{polls} polls");
    }

    #[test]
    fn a_panicking_task_reaches_its_awaiter_and_the_home_thread_goes_on() {
        let _turn = crate::task::home_turn();
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
    fn a_second_block_on_runs_home_tasks_while_the_first_one_is_blocked() {
        let _turn = crate::task::home_turn();
        let (driving_tx, driving) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel::<Option<u32>>();
        // Holds the poller and blocks its thread until the second one's
        // task has run: only the second `block_on` can run that task.
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
        let _turn = crate::task::home_turn();
        let here = std::thread::current().id();
        let (inner, nested) = block_on(async {
            let nested = spawn(async { spawn(async { std::thread::current().id() }).await });
            (std::thread::current().id(), nested.await)
        });
        assert_eq!(inner, here);
        assert_eq!(nested, here);
    }
}

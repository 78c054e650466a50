//! The home thread's own wait: one epoll set with the sockets that home
//! tasks read, and an eventfd that other threads ring to wake it.
//!
//! Why not async-io's reactor, which smol provides: its reactor has one
//! lock, and the thread that holds it is whichever got there first. In an
//! actor that is usually async-io's fallback thread or a thread of smol's
//! global executor (the signal watchers run there), not the actor's own
//! thread. So every message woke that other thread out of `epoll_wait`,
//! and it then woke the actor's thread through a futex: two thread wakes
//! per hop where a blocking socket has one (`strace -f` of
//! `cargo bench --bench lock`). Each of its waits also costs four extra
//! syscalls (it re-arms a timerfd and its notifier around every
//! `epoll_wait`). Here a socket event wakes the actor's thread directly,
//! and a wait is one `epoll_wait`; while replies come back quickly, the
//! thread polls for up to 50 us before it sleeps (see `spin`), so the
//! reply finds it awake.
//!
//! Only what the home thread reads on the hot path goes through here
//! ([`HomeIo`], used by the channel read loop). Everything else (timers,
//! signals, child processes, writes that would block) stays on async-io,
//! driven by its own threads; their wakes reach the home thread through
//! the eventfd.

// Sockets are registered here by the runtime's IPC only: without it the
// poller drives the home executor alone.
#![cfg_attr(not(feature = "runtime"), allow(dead_code))]

use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use rustix::buffer::spare_capacity;
use rustix::event::{epoll, eventfd, EventfdFlags};
use rustix::io::Errno;

use super::spin::Spin;
use super::{lock, IdMap};

/// Token of the eventfd in the epoll set; sockets get 1, 2, ...
const WAKE_TOKEN: u64 = 0;

/// One waiting reader's state, shared between its future and the
/// dispatching thread.
#[derive(Default)]
struct Slot {
    /// An edge arrived that the reader has not seen yet.
    ready: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

struct Poller {
    epoll: OwnedFd,
    wake: OwnedFd,
    slots: Mutex<IdMap<Arc<Slot>>>,
    next_token: AtomicU64,
    /// The driving thread is in (or about to enter) a blocking wait.
    sleeping: AtomicBool,
    /// Something woke the driven future since it was last polled.
    notified: AtomicBool,
    /// Held by the one thread that waits on the epoll set.
    driver: Mutex<()>,
}

std::thread_local! {
    /// Whether this thread holds the poller's driver lock.
    static IS_DRIVER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn poller() -> Option<&'static Poller> {
    static POLLER: OnceLock<Option<Poller>> = OnceLock::new();
    POLLER
        .get_or_init(|| match Poller::new() {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn!("no home poller ({e}); home tasks wait on smol's reactor");
                None
            }
        })
        .as_ref()
}

impl Poller {
    fn new() -> rustix::io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        epoll::add(
            &epoll,
            &wake,
            epoll::EventData::new_u64(WAKE_TOKEN),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )?;
        Ok(Self {
            epoll,
            wake,
            slots: Mutex::default(),
            next_token: AtomicU64::new(WAKE_TOKEN + 1),
            sleeping: AtomicBool::new(false),
            notified: AtomicBool::new(false),
            driver: Mutex::new(()),
        })
    }

    fn notify(&self) {
        // Paired with `wait`: either it sees `notified`, or this sees
        // `sleeping` and rings (all SeqCst).
        if !self.notified.swap(true, SeqCst) && self.sleeping.load(SeqCst) {
            let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
        }
    }

    /// Waits for a socket edge or a wake (without blocking if a wake
    /// already came; polling for a while first if `spin` says so), then
    /// wakes the readers whose sockets are ready.
    fn wait(&self, events: &mut Vec<epoll::Event>, spin: &mut Spin) {
        events.clear();
        let waited = if self.notified.swap(false, SeqCst) {
            self.poll_now(events)
        } else {
            self.sleeping.store(true, SeqCst);
            // A wake rung from now on is an eventfd edge in the set.
            let waited = if self.notified.swap(false, SeqCst) {
                self.poll_now(events)
            } else {
                self.idle(events, spin)
            };
            self.sleeping.store(false, SeqCst);
            waited
        };
        match waited {
            Ok(()) | Err(Errno::INTR) => {}
            Err(e) => log::error!("home poller: epoll_wait failed: {e}"),
        }
        for event in events.iter() {
            let token = event.data.u64();
            if token == WAKE_TOKEN {
                // Drained so the counter never saturates; edge-triggered,
                // so a later ring is a new event either way.
                let _ = rustix::io::read(&self.wake, &mut [0u8; 8]);
                continue;
            }
            let slot = lock(&self.slots).get(&token).cloned();
            if let Some(slot) = slot {
                slot.ready.store(true, SeqCst);
                if let Some(waker) = lock(&slot.waker).take() {
                    waker.wake();
                }
            }
        }
        // Whatever rang so far, these wakes included, is seen by the poll
        // that follows: the next wait need not skip its sleep for them.
        self.notified.store(false, SeqCst);
    }

    fn poll_now(&self, events: &mut Vec<epoll::Event>) -> rustix::io::Result<()> {
        let zero = rustix::time::Timespec::default();
        epoll::wait(&self.epoll, spare_capacity(events), Some(&zero)).map(drop)
    }

    /// Nothing to run: polls for `spin`'s budget, then sleeps until an
    /// event; tells `spin` how long the gap was.
    fn idle(&self, events: &mut Vec<epoll::Event>, spin: &mut Spin) -> rustix::io::Result<()> {
        let start = Instant::now();
        let budget = spin.budget();
        let mut waited = Ok(());
        while events.is_empty() && waited.is_ok() && start.elapsed() < budget {
            waited = self.poll_now(events);
            std::hint::spin_loop();
        }
        if events.is_empty() && waited.is_ok() {
            waited = epoll::wait(&self.epoll, spare_capacity(events), None).map(drop);
        }
        spin.record(start.elapsed());
        waited
    }
}

struct Doorbell(&'static Poller);

impl Wake for Doorbell {
    fn wake(self: Arc<Self>) {
        self.0.notify();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify();
    }
}

/// Wakes the thread that waits on the home poller, if it sleeps; the
/// next wait after this call does not sleep.
pub(super) fn ring() {
    if let Some(poller) = poller() {
        poller.notify();
    }
}

/// Runs `fut` to completion on this thread, waiting on the home poller
/// between polls; `Err` (with `fut` given back) when another thread
/// already drives the poller or it could not be made.
pub(super) fn drive<F: Future>(fut: F) -> Result<F::Output, F> {
    let Some(poller) = poller() else {
        return Err(fut);
    };
    let _driving = match poller.driver.try_lock() {
        Ok(guard) => guard,
        // A driver that panicked left nothing half-done: the lock guards
        // no data.
        Err(TryLockError::Poisoned(guard)) => guard.into_inner(),
        Err(TryLockError::WouldBlock) => return Err(fut),
    };
    // Not in the poller: epoll events are not `Send`.
    let mut events = Vec::with_capacity(64);
    let mut spin = Spin::for_this_process();
    let _driver = super::Raised::new(&IS_DRIVER);
    let waker = Waker::from(Arc::new(Doorbell(poller)));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Ok(out);
        }
        poller.wait(&mut events, &mut spin);
    }
}

/// An fd whose readability the home thread's poller watches
/// (edge-triggered), owning the I/O object so that its interest is
/// removed before the fd can close.
///
/// Read it until `EAGAIN`, then [`HomeIo::poll_readable`]; the waker is
/// woken at the next edge, from the home thread.
pub(crate) struct HomeIo<F: AsFd> {
    token: u64,
    slot: Arc<Slot>,
    poller: &'static Poller,
    io: F,
}

impl<F: AsFd> HomeIo<F> {
    /// Registers `io` when called on the thread that drives the poller;
    /// gives it back otherwise (its reads then go through smol).
    pub(crate) fn new(io: F) -> Result<Self, F> {
        let Some(poller) = poller().filter(|_| IS_DRIVER.get()) else {
            return Err(io);
        };
        let token = poller.next_token.fetch_add(1, SeqCst);
        let slot = Arc::new(Slot::default());
        lock(&poller.slots).insert(token, slot.clone());
        let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP | epoll::EventFlags::ET;
        if let Err(e) = epoll::add(&poller.epoll, &io, epoll::EventData::new_u64(token), flags) {
            log::debug!("home poller cannot watch an fd ({e}); it goes through smol");
            lock(&poller.slots).remove(&token);
            return Err(io);
        }
        Ok(Self {
            token,
            slot,
            poller,
            io,
        })
    }

    /// The I/O object.
    pub(crate) fn get_ref(&self) -> &F {
        &self.io
    }

    /// Forgets edges seen so far: call it right before each read, so that
    /// an edge for bytes that read takes does not cause one more read.
    pub(crate) fn clear_readable(&self) {
        self.slot.ready.store(false, SeqCst);
    }

    /// Ready once an edge arrived since the last `Ready` or
    /// [`HomeIo::clear_readable`]; registers `cx`'s waker otherwise.
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.slot.ready.swap(false, SeqCst) {
            return Poll::Ready(());
        }
        *lock(&self.slot.waker) = Some(cx.waker().clone());
        // An edge dispatched from another thread between the check and
        // the registration.
        if self.slot.ready.swap(false, SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<F: AsFd> Drop for HomeIo<F> {
    fn drop(&mut self) {
        let _ = epoll::delete(&self.poller.epoll, &self.io);
        lock(&self.poller.slots).remove(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use super::*;

    /// `drive`, waiting up to 10 s for other tests of this binary that
    /// hold the driver.
    fn drive_when_free<F: Future + Unpin>(mut fut: F) -> F::Output {
        for _ in 0..2_000 {
            match drive(fut) {
                Ok(out) => return out,
                Err(back) => fut = back,
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("the poller stayed taken for 10 s");
    }

    /// Reads once from a non-blocking socket through the poller.
    fn read_via(io: &HomeIo<UnixStream>) -> impl Future<Output = Vec<u8>> + '_ {
        std::future::poll_fn(move |cx| loop {
            let mut buf = [0u8; 64];
            match rustix::io::read(io.get_ref(), &mut buf) {
                Ok(n) => return Poll::Ready(buf[..n].to_vec()),
                Err(Errno::AGAIN) => {
                    if io.poll_readable(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Err(e) => panic!("read: {e}"),
            }
        })
    }

    #[test]
    fn a_socket_edge_and_a_cross_thread_wake_both_reach_the_driver() {
        let _turn = crate::task::home_turn();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        // Off the driving thread there is no registration.
        let ours = HomeIo::new(ours).map(|_| ()).unwrap_err();
        let test = async move {
            let io = HomeIo::new(ours).unwrap_or_else(|_| panic!("driver registers"));
            let writer = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                theirs.write_all(b"ping").unwrap();
                theirs
            });
            let first = read_via(&io).await;
            // A wake from another thread: a oneshot channel filled there.
            let (tx, rx) = smol::channel::bounded(1);
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                tx.send_blocking(7).unwrap();
            });
            let rung = rx.recv().await.unwrap();
            drop(writer.join().unwrap());
            (first, rung)
        };
        let got = drive_when_free(Box::pin(test));
        assert_eq!(got, (b"ping".to_vec(), 7));
    }

    #[test]
    fn a_main_future_that_keeps_yielding_does_not_starve_the_sockets() {
        let _turn = crate::task::home_turn();
        let (done_tx, done) = std::sync::mpsc::channel();
        // On a thread of its own: a starved socket hangs, and the test
        // must fail instead.
        std::thread::spawn(move || {
            let got = loop {
                let (ours, mut theirs) = UnixStream::pair().unwrap();
                ours.set_nonblocking(true).unwrap();
                let got = crate::task::block_on(async move {
                    // Only the driver's sockets go through the poller:
                    // another test may drive it now; then try again.
                    let io = HomeIo::new(ours).ok()?;
                    // Once the reader waits for an edge.
                    let writer = std::thread::spawn(move || {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        theirs.write_all(b"ping").unwrap();
                        theirs
                    });
                    let read = crate::task::spawn("read", async move { read_via(&io).await });
                    while !read.is_finished() {
                        smol::future::yield_now().await;
                    }
                    drop(writer.join());
                    Some(read.await)
                });
                match got {
                    Some(got) => break got,
                    None => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            };
            let _ = done_tx.send(got);
        });
        let got = done.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(got, Ok(b"ping".to_vec()), "the socket's edge was seen");
    }

    /// A poller of the test's own (not the process's) watching `fd`.
    fn poller_watching(fd: &impl AsFd) -> Poller {
        let poller = Poller::new().unwrap();
        let flags = epoll::EventFlags::IN | epoll::EventFlags::ET;
        epoll::add(&poller.epoll, fd, epoll::EventData::new_u64(1), flags).unwrap();
        poller
    }

    /// A predictor that spins on the next wait.
    fn spinning() -> Spin {
        let mut spin = Spin::new(2);
        spin.record(std::time::Duration::ZERO);
        spin.record(std::time::Duration::ZERO);
        assert!(spin.budget() > std::time::Duration::ZERO);
        spin
    }

    #[test]
    fn a_spin_that_finds_nothing_sleeps_until_the_late_edge_and_stops_spinning() {
        let _turn = crate::task::home_turn();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let poller = poller_watching(&ours);
        let mut spin = spinning();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            theirs.write_all(b"late").unwrap();
            theirs
        });
        let mut events = Vec::with_capacity(4);
        poller.idle(&mut events, &mut spin).unwrap();
        let tokens: Vec<u64> = events.iter().map(|e| e.data.u64()).collect();
        assert_eq!(tokens, [1], "the edge after the spin wakes the sleep");
        assert_eq!(
            spin.budget(),
            std::time::Duration::ZERO,
            "a long gap ends the spinning"
        );
        drop(writer.join());
    }

    #[test]
    fn a_spin_returns_an_edge_that_is_already_there() {
        let _turn = crate::task::home_turn();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let poller = poller_watching(&ours);
        theirs.write_all(b"early").unwrap();
        let mut events = Vec::with_capacity(4);
        poller.idle(&mut events, &mut spinning()).unwrap();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn a_panicking_driver_does_not_retire_the_poller() {
        let _turn = crate::task::home_turn();
        let panicked =
            std::thread::spawn(|| drive_when_free(Box::pin(async { panic!("on purpose") }))).join();
        assert!(panicked.is_err());
        let drove = drive_when_free(Box::pin(async { IS_DRIVER.get() }));
        assert!(drove, "the next block_on drives the poller again");
    }
}

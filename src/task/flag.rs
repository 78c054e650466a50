//! A one-shot signal: raised once, it wakes every task waiting on it and
//! stays raised.
//!
//! Every served dialog has two of these (the peer's cancel, and the
//! handler's cooperative cancel token). They were closed-on-signal
//! `async_channel`s, whose cache-padded queues and event listeners were
//! ~9 of the 33 allocations the root then made per lock dialog. A flag is
//! one allocation, and a waiter's waker is stored only while it waits.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A one-shot, many-waiter signal; clones share it.
#[derive(Clone, Default)]
pub(crate) struct Flag {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    raised: AtomicBool,
    waiters: Mutex<Waiters>,
}

/// The wakers of pending [`Wait`]s, each under the key its future holds.
#[derive(Default)]
struct Waiters {
    next: u64,
    list: Vec<(u64, Waker)>,
}

impl Inner {
    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        super::lock(&self.waiters)
    }
}

impl Flag {
    /// A flag not raised yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Raises the flag and wakes every waiter; raising it again does
    /// nothing more.
    pub(crate) fn raise(&self) {
        self.inner.raised.store(true, Ordering::SeqCst);
        let woken = std::mem::take(&mut self.inner.waiters().list);
        for (_, waker) in woken {
            waker.wake();
        }
    }

    /// Whether the flag is raised.
    pub(crate) fn is_raised(&self) -> bool {
        self.inner.raised.load(Ordering::SeqCst)
    }

    /// Waits until the flag is raised (at once, when it is).
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait {
            flag: &self.inner,
            key: None,
        }
    }
}

/// The future returned by [`Flag::wait`]; dropping it forgets its waker.
#[must_use = "futures do nothing unless polled"]
pub(crate) struct Wait<'a> {
    flag: &'a Inner,
    key: Option<u64>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.flag.raised.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let flag = self.flag;
        let mut waiters = flag.waiters();
        // Checked again under the lock: `raise` takes the wakers under it
        // after setting the flag, so a waker stored here is always seen.
        if flag.raised.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let waker = cx.waker();
        match self.key {
            Some(key) => {
                if let Some((_, stored)) = waiters.list.iter_mut().find(|(k, _)| *k == key) {
                    if !stored.will_wake(waker) {
                        stored.clone_from(waker);
                    }
                }
            }
            None => {
                let key = waiters.next;
                waiters.next += 1;
                waiters.list.push((key, waker.clone()));
                drop(waiters);
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.flag.waiters().list.retain(|(k, _)| *k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::future;

    #[test]
    fn every_waiter_wakes_and_later_waits_end_at_once() {
        let flag = Flag::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let flag = flag.clone();
                std::thread::spawn(move || future::block_on(flag.wait()))
            })
            .collect();
        while flag.inner.waiters().list.len() < 3 {
            std::thread::yield_now();
        }
        flag.raise();
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert!(flag.inner.waiters().list.is_empty());
        future::block_on(flag.wait());
        flag.raise();
        assert!(flag.is_raised());
    }

    #[test]
    fn a_dropped_wait_leaves_no_waker_and_a_repoll_keeps_one() {
        let flag = Flag::new();
        let mut wait = Box::pin(flag.wait());
        assert!(future::block_on(future::poll_once(&mut wait)).is_none());
        assert!(future::block_on(future::poll_once(&mut wait)).is_none());
        assert_eq!(flag.inner.waiters().list.len(), 1);
        drop(wait);
        assert!(flag.inner.waiters().list.is_empty());
        assert!(!flag.is_raised());
    }
}

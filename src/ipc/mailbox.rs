//! An inbox with one consumer: a dialog's messages, or a connection's
//! incoming dialogs. Unbounded (the read loop never waits on a slow
//! consumer), and cheap to make, because every lock request makes one on
//! each side.
//!
//! Why not `async_channel::unbounded`: its queue's first push allocates
//! and zeroes a 2.7 KiB block of 31 slots, and freeing that block made
//! glibc consolidate chunks: ~6k of the ~33k instructions a subactor spent
//! per lock acquire+release (callgrind of `cargo bench --bench lock`). A
//! lock dialog carries three messages, one at a time. Here a lone message
//! waits in a slot of the mailbox itself, and a queue grows from nothing
//! (four messages at a time) only when more are waiting.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use crate::task::lock;

struct State<T> {
    /// The oldest message, when it waits alone: set only while `queue`
    /// is empty, so it always comes before everything queued.
    next: Option<T>,
    queue: VecDeque<T>,
    waker: Option<Waker>,
    /// The receiving end is gone: posts are dropped.
    deaf: bool,
    /// Takes each post in the poster's call instead ([`Mailbox::divert`]).
    divert: Option<Box<dyn FnMut(T) + Send>>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Live [`Poster`]s; at zero the mailbox is closed once drained.
    posters: AtomicUsize,
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }
}

/// A new mailbox and its first poster.
pub(crate) fn mailbox<T>() -> (Poster<T>, Mailbox<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            next: None,
            queue: VecDeque::new(),
            waker: None,
            deaf: false,
            divert: None,
        }),
        posters: AtomicUsize::new(0),
    });
    (Poster::new(shared.clone()), Mailbox(shared))
}

/// The sending end, held by the connection's read loop; clones share the
/// mailbox.
pub(crate) struct Poster<T>(Arc<Shared<T>>);

impl<T> Poster<T> {
    fn new(shared: Arc<Shared<T>>) -> Self {
        shared.posters.fetch_add(1, Ordering::Relaxed);
        Self(shared)
    }

    /// Queues `msg`; `false` when the receiver is gone (its dialog
    /// ended), and `msg` is dropped.
    pub(crate) fn post(&self, msg: T) -> bool {
        let waker = {
            let mut state = self.0.state();
            if let Some(divert) = state.divert.as_mut() {
                divert(msg);
                return true;
            }
            if state.deaf {
                return false;
            }
            if state.next.is_none() && state.queue.is_empty() {
                state.next = Some(msg);
            } else {
                state.queue.push_back(msg);
            }
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

impl<T> Clone for Poster<T> {
    fn clone(&self) -> Self {
        Poster::new(self.0.clone())
    }
}

impl<T> Drop for Poster<T> {
    fn drop(&mut self) {
        if self.0.posters.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: a waiting receiver learns the mailbox closed.
            let waker = self.0.state().waker.take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// The receiving end, held by the dialog's `Context` (or whoever serves
/// a connection's dialogs).
pub(crate) struct Mailbox<T>(Arc<Shared<T>>);

impl<T> Mailbox<T> {
    /// The next message, or `None` once every poster is gone and the
    /// queue is empty.
    pub(crate) async fn recv(&self) -> Option<T> {
        poll_fn(|cx| {
            let mut state = self.0.state();
            if let Some(msg) = state.next.take().or_else(|| state.queue.pop_front()) {
                return Poll::Ready(Some(msg));
            }
            // Read under the lock that `Poster::drop` takes after its
            // decrement: either this sees zero, or that drop sees the
            // waker stored here.
            if self.0.posters.load(Ordering::Acquire) == 0 {
                return Poll::Ready(None);
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl<T: 'static> Mailbox<T> {
    /// Hands every message from now on to `f`, inside the poster's call,
    /// instead of queueing it; what waits already goes to `f` first, in
    /// order. For a receiver that only passes each message on (a
    /// connection's incoming dialogs, each spawned as a task): no task of
    /// its own to wake per message. `f` runs under the mailbox's lock, so
    /// it must not post to this mailbox.
    pub(crate) fn divert(self, mut f: impl FnMut(T) + Send + 'static) {
        let mut state = self.0.state();
        if let Some(first) = state.next.take() {
            f(first);
        }
        for msg in state.queue.drain(..) {
            f(msg);
        }
        state.divert = Some(Box::new(f));
    }
}

impl<T> Drop for Mailbox<T> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.deaf = true;
        state.next = None;
        state.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Msg;

    #[test]
    fn delivers_in_order_then_closes_when_the_last_poster_goes() {
        let (poster, mailbox) = mailbox::<Msg>();
        let second = poster.clone();
        smol::block_on(async {
            poster.post(Msg::Stop { cid: 1 });
            second.post(Msg::Cancel { cid: 1 });
            assert_eq!(mailbox.recv().await, Some(Msg::Stop { cid: 1 }));
            drop(poster);
            assert_eq!(mailbox.recv().await, Some(Msg::Cancel { cid: 1 }));
            // A receiver already waiting when the last poster goes.
            let waiting = smol::spawn(async move { mailbox.recv().await });
            smol::Timer::after(std::time::Duration::from_millis(10)).await;
            drop(second);
            assert_eq!(waiting.await, None);
        });
    }

    #[test]
    fn messages_come_out_in_posting_order_however_they_interleave() {
        let (poster, mailbox) = mailbox::<Msg>();
        smol::block_on(async {
            let mut next_in = 0;
            let mut next_out = 0;
            // Posts and receives in every pattern of up to three pending.
            for step in 0..64u64 {
                let posts = step % 3 + 1;
                for _ in 0..posts {
                    poster.post(Msg::Stop { cid: next_in });
                    next_in += 1;
                }
                let takes = (step * 7) % 4;
                for _ in 0..takes.min(next_in - next_out) {
                    assert_eq!(mailbox.recv().await, Some(Msg::Stop { cid: next_out }));
                    next_out += 1;
                }
            }
            while next_out < next_in {
                assert_eq!(mailbox.recv().await, Some(Msg::Stop { cid: next_out }));
                next_out += 1;
            }
        });
    }

    #[test]
    fn a_diverted_mailbox_hands_over_what_waits_then_every_post_in_order() {
        let (poster, mailbox) = mailbox::<Msg>();
        for cid in 0..3 {
            poster.post(Msg::Stop { cid });
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        mailbox.divert(move |msg| lock(&into).push(msg.cid()));
        assert_eq!(*lock(&seen), [Some(0), Some(1), Some(2)]);
        assert!(poster.post(Msg::Stop { cid: 3 }), "taken, not refused");
        assert_eq!(*lock(&seen), [Some(0), Some(1), Some(2), Some(3)]);
        let state = poster.0.state();
        assert!(state.next.is_none() && state.queue.is_empty());
    }

    #[test]
    fn posts_after_the_receiver_went_are_dropped() {
        let (poster, mailbox) = mailbox::<Msg>();
        drop(mailbox);
        assert!(!poster.post(Msg::Stop { cid: 2 }));
        let state = poster.0.state();
        assert!(state.next.is_none() && state.queue.is_empty());
    }
}

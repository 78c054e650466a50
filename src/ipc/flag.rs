//! A one-shot signal: raised once, it wakes every task waiting on it and
//! stays raised. A dialog's cancel watch and a handler's cancel token are
//! flags.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use event_listener::Event;

/// A one-shot, many-waiter signal; clones share it.
#[derive(Clone, Default)]
pub(crate) struct Flag(Arc<Inner>);

#[derive(Default)]
struct Inner {
    raised: AtomicBool,
    event: Event,
}

impl Flag {
    /// A flag not raised yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Raises the flag and wakes every waiter; raising it again does
    /// nothing more.
    pub(crate) fn raise(&self) {
        self.0.raised.store(true, Ordering::SeqCst);
        self.0.event.notify(usize::MAX);
    }

    /// Whether the flag is raised.
    pub(crate) fn is_raised(&self) -> bool {
        self.0.raised.load(Ordering::SeqCst)
    }

    /// Waits until the flag is raised (at once, when it is).
    pub(crate) async fn wait(&self) {
        while !self.is_raised() {
            let listener = self.0.event.listen();
            // Raised between the first look and the listener's
            // registration: the notification went before it.
            if self.is_raised() {
                return;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::future::FutureExt;

    #[test]
    fn every_waiter_wakes_and_later_waits_end_at_once() {
        let flag = Flag::new();
        smol::block_on(async {
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let flag = flag.clone();
                    smol::spawn(async move { flag.wait().await })
                })
                .collect();
            smol::Timer::after(std::time::Duration::from_millis(10)).await;
            assert!(!flag.is_raised());
            flag.raise();
            for waiter in waiters {
                waiter.await;
            }
            assert!(flag.is_raised());
            flag.wait().await;
        });
    }

    #[test]
    fn a_wait_dropped_before_the_raise_does_not_stop_the_others() {
        let flag = Flag::new();
        smol::block_on(async {
            let dropped = flag
                .wait()
                .or(async {
                    smol::Timer::after(std::time::Duration::from_millis(5)).await;
                })
                .await;
            assert_eq!(dropped, ());
            let waiter = {
                let flag = flag.clone();
                smol::spawn(async move { flag.wait().await })
            };
            flag.raise();
            waiter.await;
        });
    }
}

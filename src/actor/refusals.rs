//! Refused connections and failed accepts, told in few log lines: the
//! first of a burst at once, the rest summed up once the burst is over,
//! and nothing while a REPL is live (held, then summed up after it). A
//! flood of strangers must not bury the terminal, least of all the REPL
//! someone is typing in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::debug::lock::Lock;
use crate::debug::status::DebugStatus;
use crate::task::{self, lock};

/// The shortest time between two lines of one kind.
pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

/// One kind of trouble (refused peers, failed accepts) of one actor.
pub(crate) struct Refusals {
    what: &'static str,
    who: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Not yet told.
    untold: u64,
    last: String,
    /// When a line was last written.
    told_at: Option<Instant>,
    /// A task sums up what is untold.
    summing: bool,
}

impl Refusals {
    /// `what` names the trouble in the log ("refused a connection").
    pub(crate) fn new(who: String, what: &'static str) -> Arc<Self> {
        Arc::new(Self {
            what,
            who,
            state: Mutex::new(State::default()),
        })
    }

    /// Counts one; logs it at once when nothing was logged for
    /// [`INTERVAL`] and no REPL is live, else leaves it to the summary.
    pub(crate) fn note(self: &Arc<Self>, why: String) {
        let mut state = lock(&self.state);
        let quiet = state.told_at.is_none_or(|t| t.elapsed() >= INTERVAL);
        if quiet && !repl_live() && state.untold == 0 {
            state.told_at = Some(Instant::now());
            drop(state);
            log::warn!("{}: {}: {why}", self.who, self.what);
            return;
        }
        state.untold += 1;
        state.last = why;
        if !std::mem::replace(&mut state.summing, true) {
            let me = self.clone();
            task::spawn("sum up refusals", async move { me.sum_up().await }).detach();
        }
    }

    /// Waits out the interval (and any live REPL), then writes one line
    /// for everything untold.
    async fn sum_up(&self) {
        loop {
            smol::Timer::after(INTERVAL).await;
            if repl_live() {
                continue;
            }
            let mut state = lock(&self.state);
            let (n, last) = (state.untold, std::mem::take(&mut state.last));
            state.untold = 0;
            if n == 0 {
                state.summing = false;
                return;
            }
            state.told_at = Some(Instant::now());
            drop(state);
            log::warn!(
                "{}: {} {n} more time{} since the last line; the last: {last}",
                self.who,
                self.what,
                if n == 1 { "" } else { "s" }
            );
        }
    }
}

/// Whether a REPL is live where this actor can tell: anywhere in the
/// tree for the root (it holds the lock), this actor's own elsewhere.
fn repl_live() -> bool {
    Lock::root().in_use() || DebugStatus::get().snapshot().holding.is_some()
}

//! Task-level machinery that works on any executor: task-local values
//! ([`local`]), the registry of tracked tasks with their await spans
//! ([`spawn`], [`track`], [`Instrument`]) and its rendering
//! ([`TaskTree`]).

pub(crate) mod dump;
#[cfg(feature = "runtime")]
mod flag;
mod home;
mod ids;
pub mod local;
mod poller;
mod registry;
mod render;
mod span;
mod spin;
mod tree;

pub use dump::ActorDump;
#[cfg(feature = "runtime")]
pub(crate) use flag::Flag;
pub use home::{block_on, runs_tasks};
pub(crate) use ids::IdMap;
#[cfg(feature = "runtime")]
pub(crate) use poller::HomeIo;
pub use registry::{current_id, is_polling, spawn, spawn_on, track, Tracked};
pub use span::{Instrument, Instrumented};
pub use tree::{SpanEntry, TaskEntry, TaskTree, LONG_IDLE};

/// Tests that drive the home executor take turns: it is one per process,
/// and a test's tasks run on whichever thread drives it.
#[cfg(test)]
pub(crate) fn home_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    lock(&TURN)
}

/// Locks `m`, ignoring poisoning. Every lock of this crate guards plain
/// data (pushes, swaps, flags, whole values replaced) that a panic
/// cannot leave half-written, and a debugger must keep working after the
/// panic it is there to show.
#[inline]
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sets a thread's flag for as long as the guard lives; its drop puts the
/// previous value back, also when the code in between unwinds.
pub(crate) struct Raised {
    flag: &'static std::thread::LocalKey<std::cell::Cell<bool>>,
    before: bool,
}

impl Raised {
    pub(crate) fn new(flag: &'static std::thread::LocalKey<std::cell::Cell<bool>>) -> Self {
        Self {
            flag,
            before: flag.replace(true),
        }
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        self.flag.set(self.before);
    }
}

//! Task-level machinery that works on any executor: task-local values
//! ([`local`]), the registry of tracked tasks with their await spans
//! ([`spawn`], [`track`], [`Instrument`]) and its rendering
//! ([`TaskTree`]).

pub(crate) mod dump;
mod executor;
pub mod local;
mod pld_spec;
mod registry;
mod render;
mod span;
mod tracked;
mod tree;

pub use dump::ActorDump;
pub use executor::{block_on, runs_tasks};
pub use pld_spec::{current_pld_spec, decode_pld, with_pld_spec};
pub use registry::{current_id, is_polling};
pub use span::{Instrument, Instrumented};
pub use tracked::{spawn, spawn_on, track, Tracked};
pub use tree::{SpanEntry, TaskEntry, TaskTree, LONG_IDLE};

/// Locks `m`, ignoring poisoning. Every lock of this crate guards plain
/// data (pushes, swaps, flags, whole values replaced) that a panic
/// cannot leave half-written, and a debugger must keep working after the
/// panic it is there to show.
#[inline]
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

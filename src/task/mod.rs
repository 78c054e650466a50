//! Task-level machinery that works on any executor.
//!
//! For now: [`local`], the task-local storage that the wire layer binds the
//! payload spec through.

pub mod local;

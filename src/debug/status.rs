//! `DebugStatus`: one per actor process, what this actor is doing with
//! the tree lock: which task is requesting it, which task holds it (for
//! its REPL), and the one place that resets all of it.

use std::sync::Mutex;

use async_channel::{bounded, Receiver, Sender};

use super::lock_dialog::{acquire_debug_lock, TreeLock};
use super::DebugError;
use crate::msg::TaskUid;
use crate::task::lock;

/// What the actor is doing with the tree lock, as a plain value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Tasks whose request is in flight, oldest first.
    pub requesting: Vec<TaskUid>,
    /// The task that holds the tree lock (its REPL runs), if any.
    pub holding: Option<TaskUid>,
}

#[derive(Default)]
struct Inner {
    requesting: Vec<TaskUid>,
    held: Option<(TaskUid, TreeLock)>,
    /// Closed (and replaced) each time a request finishes, however.
    finished: Option<(Sender<()>, Receiver<()>)>,
}

/// This actor's debug state. Obtain it with [`DebugStatus::get`].
#[derive(Default)]
pub struct DebugStatus {
    inner: Mutex<Inner>,
}

/// Marks a request finished on every way out (tractor's `finally`).
struct Requesting<'a> {
    status: &'a DebugStatus,
    task: TaskUid,
}

impl Drop for Requesting<'_> {
    fn drop(&mut self) {
        let mut inner = self.status.inner();
        if let Some(i) = inner.requesting.iter().position(|t| *t == self.task) {
            inner.requesting.remove(i);
        }
        // Closing the channel wakes every `wait_request_finished`.
        inner.finished = None;
    }
}

impl DebugStatus {
    /// This process's status.
    pub fn get() -> &'static DebugStatus {
        static STATUS: std::sync::OnceLock<DebugStatus> = std::sync::OnceLock::new();
        STATUS.get_or_init(DebugStatus::default)
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// What the actor is doing with the lock now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner();
        Snapshot {
            requesting: inner.requesting.clone(),
            holding: inner.held.as_ref().map(|(task, _)| task.clone()),
        }
    }

    /// Takes the tree lock for `task` and keeps it here until
    /// [`DebugStatus::release`]. A task that already holds it gets
    /// [`DebugError::DoubleLock`] (from the lock itself).
    pub async fn enter(&self, task: TaskUid) -> Result<(), DebugError> {
        let _requesting = {
            let mut inner = self.inner();
            inner.requesting.push(task.clone());
            Requesting {
                status: self,
                task: task.clone(),
            }
        };
        let lock = acquire_debug_lock(task.clone()).await?;
        self.inner().held = Some((task, lock));
        Ok(())
    }

    /// Waits until the request in flight (if any) has finished, granted
    /// or not.
    pub async fn wait_request_finished(&self) {
        let rx = {
            let mut inner = self.inner();
            if inner.requesting.is_empty() {
                return;
            }
            inner.finished.get_or_insert_with(|| bounded(1)).1.clone()
        };
        let _ = rx.recv().await;
    }

    /// The one reset path: releases the held lock, if any, and clears
    /// the holder. Continue, quit and every error path call it; calling
    /// it with nothing held does nothing.
    pub async fn release(&self) -> Result<(), DebugError> {
        let held = self.inner().held.take();
        match held {
            Some((_, lock)) => lock.release().await,
            None => Ok(()),
        }
    }
}

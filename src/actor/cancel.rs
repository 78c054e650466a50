//! Cooperative cancellation: an entry that cleans up when its parent
//! cancels it, asynchronously and for as long as it needs (it may even
//! pause in a REPL there).
//!
//! By default a cancelled entry's future is dropped: Rust runs its
//! destructors, which cannot await. Work wrapped in [`until_cancelled`]
//! is instead told: the call returns [`Cancelled`], the entry runs its
//! teardown, and its result goes to the parent when the teardown ends.
//! Meanwhile the parent's escalation to signals waits for the debugger:
//! a teardown REPL is not killed under its user.
//!
//! ```no_run
//! use smol_devx::actor::cancel::{until_cancelled, Cancelled};
//! use smol_devx::actor::Actor;
//!
//! async fn worker(_actor: Actor, _: ()) -> Result<(), Cancelled> {
//!     match until_cancelled(smol::future::pending::<()>()).await {
//!         Ok(()) => Ok(()),
//!         Err(cancelled) => {
//!             // Asynchronous cleanup; `pause!()` works here too.
//!             smol::Timer::after(std::time::Duration::from_millis(10)).await;
//!             Err(cancelled)
//!         }
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use smol::future::FutureExt;

use crate::ipc::flag::Flag;
use crate::task::lock;
use crate::task_local;

/// The entry was cancelled by its parent. Boxed for the trip up the tree
/// as a cancellation ([`CANCELLED_TYPE`](super::error::CANCELLED_TYPE)),
/// which opens no crash REPL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled by the peer")
    }
}

impl std::error::Error for Cancelled {}

task_local! {
    /// The cancel token of the served dialog this task runs.
    static TOKEN: u64;
}

/// One served dialog's cancellation, shared by its runner and the
/// handler's `until_cancelled` calls.
pub(crate) struct Token {
    id: u64,
    /// Raised when cancellation is requested.
    requested: Flag,
    /// How many `until_cancelled` calls are running.
    listening: AtomicUsize,
}

static TOKENS: Mutex<Option<HashMap<u64, Arc<Token>>>> = Mutex::new(None);

fn tokens() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Arc<Token>>>> {
    lock(&TOKENS)
}

/// A registered token; leaves the registry when dropped.
pub(crate) struct Registered(Arc<Token>);

impl Token {
    pub(crate) fn register() -> Registered {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let token = Arc::new(Token {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            requested: Flag::new(),
            listening: AtomicUsize::new(0),
        });
        tokens()
            .get_or_insert_with(HashMap::default)
            .insert(token.id, token.clone());
        Registered(token)
    }
}

impl Registered {
    /// Runs `fut` with this token bound, so `until_cancelled` finds it.
    pub(crate) fn scope<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> {
        TOKEN.scope(self.0.id, fut)
    }

    /// Requests cancellation; returns whether the handler listens for it
    /// (is inside `until_cancelled`) and will end by itself.
    pub(crate) fn cancel(&self) -> bool {
        self.0.requested.raise();
        self.0.listening.load(Ordering::SeqCst) > 0
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(map) = tokens().as_mut() {
            map.remove(&self.0.id);
        }
    }
}

/// Counts one listener for as long as it lives.
struct Listening(Arc<Token>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.listening.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `fut` until it ends or the served dialog running this task is
/// cancelled by its peer (the parent, for an entry): then `fut` is
/// dropped and [`Cancelled`] returned, and the handler goes on with its
/// teardown instead of being dropped itself. Outside a served dialog's
/// task it just runs `fut`.
pub async fn until_cancelled<F: Future>(fut: F) -> Result<F::Output, Cancelled> {
    let token = TOKEN
        .get()
        .and_then(|id| tokens().as_ref().and_then(|m| m.get(&id).cloned()));
    let Some(token) = token else {
        return Ok(fut.await);
    };
    token.listening.fetch_add(1, Ordering::SeqCst);
    let _listening = Listening(token.clone());
    if token.requested.is_raised() {
        return Err(Cancelled);
    }
    async { Ok(fut.await) }
        .or(async {
            token.requested.wait().await;
            Err(Cancelled)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_dialog_it_just_runs() {
        assert_eq!(smol::block_on(until_cancelled(async { 3 })), Ok(3));
    }

    #[test]
    fn a_listening_handler_is_told_and_finishes_its_teardown() {
        let token = Token::register();
        let (step_tx, step_rx) = async_channel::bounded::<()>(1);
        let handler = token.scope(async move {
            let got = until_cancelled(smol::future::pending::<()>()).await;
            // Asynchronous teardown after the cancel.
            step_rx.recv().await.unwrap();
            got
        });
        smol::block_on(async {
            let mut handler = Box::pin(handler);
            assert!(smol::future::poll_once(&mut handler).await.is_none());
            assert!(token.cancel(), "the handler listens");
            assert!(smol::future::poll_once(&mut handler).await.is_none());
            step_tx.send(()).await.unwrap();
            assert_eq!(handler.await, Err(Cancelled));
        });
        assert!(!token.cancel(), "no one listens any more");
    }

    #[test]
    fn a_cancel_before_listening_is_seen_at_once() {
        let token = Token::register();
        assert!(!token.cancel());
        let got = smol::block_on(token.scope(until_cancelled(async { 1 })));
        assert_eq!(got, Err(Cancelled));
    }
}

//! The crate's runtime as a debugger host: it implements the seam
//! ([`Host`]) and calls the debugger where any host would, through the
//! same public API.
//!
//! ```no_run
//! use smol_devx::actor::Runtime;
//! use smol_devx::actor::debugger;
//!
//! fn main() -> std::process::ExitCode {
//!     let runtime = debugger::install_stack_on_sig(debugger::install(Runtime::new()));
//!     runtime.debug_mode(true).run(|_root| async {
//!         smol_devx::pause!().await?;
//!         Ok::<_, smol_devx::debug::pause::PauseError>(())
//!     })
//! }
//! ```

use std::sync::Arc;
use std::time::Duration;

use super::{Actor, Runtime};
use crate::codec::{encode_lock_msg, encode_pld, PldSpec};
use crate::debug::dialog::Liveness;
use crate::debug::dialog::{BoxFuture, BoxedDialog, LockDialog};
use crate::debug::host::{ChildActor, Host};
use crate::debug::lock::LockQueue;
use crate::debug::lock_dialog::{
    answer_lock_queue, maybe_wait_for_debugger, serve_lock_dialog, LOCK_HANDLER, LOCK_STATE_HANDLER,
};
use crate::debug::pause::{crash_repl, error_name};
use crate::debug::terminal::restore_terminal;
use crate::debug::DebugError;
use crate::ipc::{Context, DialogError};
use crate::msg::{ActorUid, Cid, LockMsg, LockRequest, LockStatus};
use crate::stack_on_sig::{self, ActorDump, TREE_HANDLER};

/// An actor of this runtime, seen by the debugger.
struct ActorHost(Actor);

impl Host for ActorHost {
    fn uid(&self) -> ActorUid {
        self.0.uid().clone()
    }

    fn is_root(&self) -> bool {
        self.0.is_root()
    }

    fn open_lock_dialog(
        &self,
        req: LockRequest,
    ) -> BoxFuture<'static, Result<BoxedDialog, DebugError>> {
        let actor = self.0.clone();
        Box::pin(async move {
            let root = root_channel(&actor).await?;
            let args = encode_lock_msg(&LockMsg::LockRequest(req));
            let ctx = root
                .open(LOCK_HANDLER, args, &PldSpec::LOCK)
                .await
                .map_err(link_error)?;
            Ok(BoxedDialog::new(ctx))
        })
    }

    fn lock_queue(&self) -> BoxFuture<'static, Result<LockQueue, DebugError>> {
        let actor = self.0.clone();
        Box::pin(async move {
            let root = root_channel(&actor).await?;
            let args = encode_pld(&()).map_err(|e| DebugError::Protocol(e.to_string()))?;
            let mut ctx = root
                .open(LOCK_STATE_HANDLER, args, &PldSpec::ANY)
                .await
                .map_err(link_error)?;
            ctx.result().await.map_err(link_error)
        })
    }

    fn children(&self) -> Vec<ChildActor> {
        let children = self.0.children().into_iter();
        children
            .map(|c| ChildActor {
                uid: c.uid,
                pid: c.pid,
            })
            .collect()
    }

    fn ask_dump(
        &self,
        child: &ChildActor,
        budget: Duration,
    ) -> BoxFuture<'static, Result<ActorDump, String>> {
        let portal = self
            .0
            .children()
            .into_iter()
            .find(|c| c.pid == child.pid)
            .map(|c| c.portal);
        let budget_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        Box::pin(async move {
            let portal = portal.ok_or("the child is gone")?;
            let asked = portal.run::<_, ActorDump>(TREE_HANDLER, &budget_ms);
            asked.await.map_err(|e| e.to_string())
        })
    }

    fn cancel_tree(&self, why: &str) {
        self.0.cancel_tree(why);
    }

    fn terminate(&self, signal: i32) {
        let code = u8::try_from(128 + signal).unwrap_or(u8::MAX);
        self.0.terminate_tree(&format!("signal {signal}"), code);
    }

    fn parent_alive(&self) -> bool {
        self.0.parent().is_some_and(|p| p.is_connected())
    }
}

async fn root_channel(actor: &Actor) -> Result<crate::ipc::Channel, DebugError> {
    let root = actor.root_channel().await;
    root.map_err(|e| DebugError::Link(Box::new(e)))
}

/// Installs the actor as this process's debugger host when it boots.
/// Both installers add it; the second install is a no-op.
fn boot_hook() -> super::BootHook {
    Arc::new(|actor: &Actor| {
        let _ = crate::debug::install(ActorHost(actor.clone()));
    })
}

/// Makes the debugger work in every actor of `runtime`'s tree: the host
/// installed at boot, the root's lock handlers, crash REPLs on failures
/// (in debug mode), teardown that waits for the debugger, the terminal
/// restored when the root exits.
pub fn install(runtime: Runtime) -> Runtime {
    super::error::register_namer(error_name);
    runtime
        .on_boot(boot_hook())
        .on_exit(Arc::new(|_: &Actor| restore_terminal()))
        .on_crash(Arc::new(|_: Actor, err| {
            Box::pin(async move { crash_repl(&err).await })
        }))
        .before_teardown(Arc::new(|actor: Actor| {
            Box::pin(async move {
                let waited = maybe_wait_for_debugger().await;
                if waited {
                    log::info!("{}: waited for the debugger before teardown", actor.uid());
                }
                waited
            })
        }))
        .handler_encoded_by(
            LOCK_HANDLER,
            &PldSpec::LOCK,
            |_: Actor, mut ctx: Context, req: LockMsg| async move {
                let LockMsg::LockRequest(req) = req else {
                    return Err(DebugError::Protocol(format!(
                        "expected LockRequest, got {}",
                        req.tag()
                    )));
                };
                serve_lock_dialog(&mut ctx, req)
                    .await
                    .map(LockMsg::LockStatus)
            },
            |msg: &LockMsg| Ok(encode_lock_msg(msg)),
        )
        .handler(
            LOCK_STATE_HANDLER,
            &PldSpec::ANY,
            |_: Actor, ctx: Context, (): ()| async move {
                Ok::<_, DebugError>(answer_lock_queue(ctx.peer()))
            },
        )
}

/// Makes `kill -USR1` dump every actor of `runtime`'s tree: the host
/// installed at boot, the dumps enabled when `SMOL_DEVX_STACK_ON_SIG` is
/// `1`, and the handler through which a parent asks for a child's dump.
pub fn install_stack_on_sig(runtime: Runtime) -> Runtime {
    stack_on_sig::enable_from_env();
    runtime.on_boot(boot_hook()).handler(
        TREE_HANDLER,
        &PldSpec::ANY,
        |_: Actor, _ctx, budget_ms: u64| async move {
            let budget = Duration::from_millis(budget_ms);
            Ok::<_, std::io::Error>(stack_on_sig::answer_dump_request(budget).await)
        },
    )
}

fn link_error(e: DialogError) -> DebugError {
    match e {
        DialogError::Codec(e) => DebugError::Protocol(e.to_string()),
        DialogError::Cancelled => DebugError::Cancelled,
        other => DebugError::Link(Box::new(other)),
    }
}

/// How long an abandoned request's clean-up waits for the root's answer
/// to its cancel before giving up on a root that says nothing.
const CANCEL_ACK_TIMEOUT: Duration = Duration::from_secs(2);

impl LockDialog for Context {
    fn peer(&self) -> ActorUid {
        Context::peer(self).clone()
    }
    fn cid(&self) -> Cid {
        Context::cid(self)
    }
    async fn send_started(&mut self, status: LockStatus) -> Result<(), DebugError> {
        let pld = encode_lock_msg(&LockMsg::LockStatus(status));
        self.send_started_pld(pld).await.map_err(link_error)
    }
    async fn wait_started(&mut self) -> Result<LockMsg, DebugError> {
        self.started().await.map_err(link_error)
    }
    async fn send(&mut self, msg: LockMsg) -> Result<(), DebugError> {
        self.send_pld(encode_lock_msg(&msg))
            .await
            .map_err(link_error)
    }
    async fn recv(&mut self) -> Result<Option<LockMsg>, DebugError> {
        Context::recv(self).await.map_err(link_error)
    }
    async fn result(&mut self) -> Result<LockMsg, DebugError> {
        Context::result(self).await.map_err(link_error)
    }
    fn liveness(&self) -> Liveness {
        let chan = self.channel().clone();
        Arc::new(move || chan.is_connected())
    }
    /// Cancels the dialog and waits (a bounded time) for the root to end
    /// its side.
    async fn abandon(mut self) {
        let _ = self.cancel().await;
        let ended = async {
            let _ = self.result_raw().await;
        };
        let timeout = async {
            smol::Timer::after(CANCEL_ACK_TIMEOUT).await;
            log::warn!("the root did not answer a lock-dialog cancel in {CANCEL_ACK_TIMEOUT:?}");
        };
        smol::future::or(ended, timeout).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::error::{box_error, register_namer};
    use crate::debug::pause::{PauseError, Quit};
    use crate::debug::DebugError;
    use crate::msg::ActorUid;

    #[test]
    fn a_quit_travels_as_quit_and_a_refusal_as_itself() {
        register_namer(error_name);
        let here = ActorUid::new("breakpoint_forever", "b");
        let quit = PauseError::Quit(Quit {
            actor: here.clone(),
        });
        let boxed = box_error(quit, &here);
        assert_eq!(boxed.type_name, "Quit");
        assert!(boxed
            .message
            .starts_with("quit from the REPL in ('breakpoint_forever'"));
        let refused = PauseError::Refused(DebugError::Cancelled);
        assert_eq!(box_error(refused, &here).type_name, "PauseError");
    }
}

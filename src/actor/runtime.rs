//! [`Runtime`]: a program's entries and handlers, and how it runs as the
//! root or as the subactor its environment names.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;
use smol::future::FutureExt;

use crate::codec::{encode_pld, Codec, CodecError, PldSpec};
use crate::ipc::random::{new_token, new_uuid};
use crate::ipc::{Addr, Context, Listener, Transport};
use crate::msg::RemoteError;
use crate::msg::{ActorUid, Pld};
use crate::report::IntoFailure;
use crate::task::{self, Instrument};

use super::env;
use super::error;
use super::handle::{
    Actor, ActorInner, BootHook, CrashHook, ExitHook, Handler, HandlerFn, TeardownHook,
    CANCELLED_EXIT, CURRENT,
};
use super::nursery;
use super::serve::{accept_loop, dialog_task_name, run_dialog};

/// Declares a program's entries and handlers, then runs it as the root
/// or as the subactor its environment names.
pub struct Runtime {
    boot_hooks: Vec<BootHook>,
    exit_hooks: Vec<ExitHook>,
    crash_hook: Option<CrashHook>,
    teardown_hook: Option<TeardownHook>,
    name: String,
    handlers: HashMap<String, Handler>,
    debug_mode: bool,
    transport: Transport,
    codec: Codec,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A runtime whose root is called `root`, on Unix sockets (or TCP
    /// when `SMOL_DEVX_TRANSPORT=tcp`), debug mode off.
    pub fn new() -> Self {
        let transport = match std::env::var(env::TRANSPORT).as_deref() {
            Ok("tcp") => Transport::TcpLoopback,
            _ => Transport::Unix,
        };
        Self {
            boot_hooks: Vec::new(),
            exit_hooks: Vec::new(),
            crash_hook: None,
            teardown_hook: None,
            name: "root".into(),
            handlers: HashMap::new(),
            debug_mode: false,
            transport,
            codec: Codec::default(),
        }
    }

    /// Names the root actor.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Turns debug mode on for the whole tree (children inherit it).
    pub fn debug_mode(mut self, on: bool) -> Self {
        self.debug_mode = on;
        self
    }

    /// Runs `hook` on a failure of an actor's entry (or of the root's
    /// body), in debug mode, before the failure is reported upward. Not
    /// for cancellations.
    pub fn on_crash(mut self, hook: CrashHook) -> Self {
        self.crash_hook = Some(hook);
        self
    }

    /// Awaits `hook` before a failure makes a nursery cancel the failed
    /// child's siblings, when the actor or one of those children runs in
    /// debug mode.
    pub fn before_teardown(mut self, hook: TeardownHook) -> Self {
        self.teardown_hook = Some(hook);
        self
    }

    /// Runs `hook` in every actor (root and subactors) as soon as it
    /// exists, before it serves its first dialog.
    pub fn on_boot(mut self, hook: BootHook) -> Self {
        self.boot_hooks.push(hook);
        self
    }

    /// Runs `hook` when the root is about to exit, however it ends
    /// (not in subactors).
    pub fn on_exit(mut self, hook: ExitHook) -> Self {
        self.exit_hooks.push(hook);
        self
    }

    /// Chooses the transport.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Registers an entry: a function a subactor runs with the arguments
    /// its parent sent, whose result (or error) goes back to the parent.
    pub fn entry<A, R, E, F, Fut>(self, name: &str, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
        E: IntoFailure,
        F: Fn(Actor, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.handler(
            name,
            &PldSpec::ANY,
            move |actor: Actor, ctx: Context, args: A| {
                drop(ctx);
                f(actor, args)
            },
        )
    }

    /// Registers a dialog handler: it gets the dialog's [`Context`] (to
    /// send `started`, stream items) and its decoded argument; every
    /// payload of the dialog is decoded under `spec`.
    pub fn handler<A, R, E, F, Fut>(self, name: &str, spec: &'static PldSpec, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
        E: IntoFailure,
        F: Fn(Actor, Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        self.handler_encoded_by(name, spec, f, encode_pld::<R>)
    }

    /// [`Runtime::handler`] with its own encoding of the result: the
    /// lock dialog's handler writes its `LockStatus` directly (serde's calls
    /// cost the root ~650 instructions per lock dialog).
    pub(crate) fn handler_encoded_by<A, R, E, F, Fut>(
        mut self,
        name: &str,
        spec: &'static PldSpec,
        f: F,
        encode: fn(&R) -> Result<Pld, CodecError>,
    ) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: 'static,
        E: IntoFailure,
        F: Fn(Actor, Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        let run: HandlerFn = Box::new(move |actor: Actor, ctx: Context, args: Pld| {
            let f = f.clone();
            Box::pin(async move {
                let here = actor.uid().clone();
                let args: A = ctx
                    .decode(&args)
                    .await
                    .map_err(|e| error::box_error(e, &here))?;
                let e = match f(actor, ctx, args).await {
                    Ok(out) => return encode(&out).map_err(|e| error::box_error(e, &here)),
                    Err(e) => e,
                };
                // Boxing a Report resolves its backtrace, milliseconds on
                // this actor's thread: first let the tasks that the
                // failure's cleanup woke run (a force-released lock's next
                // holder).
                smol::future::yield_now().await;
                Err(error::box_error(e, &here))
            })
        });
        self.handlers.insert(name.to_owned(), Handler { spec, run });
        self
    }

    /// Runs the program: the subactor named by the environment (this call
    /// then never returns), or else the root with `root` as its body.
    /// An `Err` from the body goes to the crash hook (in debug mode), is
    /// printed, and makes the exit code 1.
    pub fn run<F, Fut, E>(mut self, root: F) -> ExitCode
    where
        F: FnOnce(Actor) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: IntoFailure,
    {
        error::capture_panics();
        if let Ok(entry) = std::env::var(env::ENTRY) {
            self.run_sub(entry)
        }
        let exit_hooks = std::mem::take(&mut self.exit_hooks);
        // Booted inside `block_on`, so that the accept loop and every task
        // it spawns run on this thread's local executor.
        let code = task::block_on(task::track("root", async {
            let actor = match self.boot_root() {
                Ok(actor) => actor,
                Err(e) => {
                    eprintln!("smol-devx: cannot start the root actor: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = run_root(actor.clone(), root).await;
            actor.cleanup();
            for hook in &exit_hooks {
                hook(&actor);
            }
            match result {
                Some(Ok(())) => ExitCode::SUCCESS,
                Some(Err(e)) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
                None => {
                    eprintln!("smol-devx: the actor tree was cancelled");
                    let code = actor
                        .inner
                        .cancelled_exit
                        .load(std::sync::atomic::Ordering::SeqCst);
                    ExitCode::from(code)
                }
            }
        }));
        crate::log::flush();
        code
    }

    fn boot_root(self) -> std::io::Result<Actor> {
        let token = match std::env::var(env::TOKEN) {
            Ok(token) if !token.is_empty() => token,
            _ => new_token()?,
        };
        let uid = ActorUid::new(self.name.clone(), new_uuid()?);
        crate::ipc::transport::remove_stale_dirs();
        let listener = Listener::bind(self.transport)?;
        let boot = Boot {
            uid,
            parent_addr: None,
            is_root: true,
            debug_mode: self.debug_mode,
            token,
            root_addr: listener.addr().clone(),
        };
        Ok(self.start(boot, listener))
    }

    fn start(self, boot: Boot, listener: Listener) -> Actor {
        let Boot {
            uid,
            parent_addr,
            is_root,
            debug_mode,
            token,
            root_addr,
        } = boot;
        let addr = listener.addr().clone();
        let socket_dir = match &addr {
            Addr::Unix(path) => path.parent().map(PathBuf::from),
            Addr::Tcp(_) => None,
        };
        let actor = Actor {
            inner: Arc::new(ActorInner {
                uid,
                is_root,
                debug_mode,
                token,
                addr,
                root_addr,
                transport: self.transport,
                codec: self.codec,
                handlers: self.handlers,
                parent: std::sync::OnceLock::new(),
                parent_addr,
                root_chan: smol::lock::Mutex::new(None),
                children: Mutex::new(Vec::new()),
                cancel: smol::channel::bounded(1),
                cancel_requested: std::sync::atomic::AtomicBool::new(false),
                forced: std::sync::atomic::AtomicBool::new(false),
                cancelled_exit: std::sync::atomic::AtomicU8::new(CANCELLED_EXIT),
                pending_spawns: Mutex::new(HashMap::new()),
                socket_dir,
                crash_hook: self.crash_hook,
                teardown_hook: self.teardown_hook,
            }),
        };
        let _ = CURRENT.set(actor.clone());
        for hook in &self.boot_hooks {
            hook(&actor);
        }
        log::info!("actor {} listening on {}", actor.uid(), actor.addr());
        task::spawn("accept", accept_loop(actor.clone(), listener)).detach();
        actor
    }

    fn run_sub(self, entry: String) -> ! {
        let code = match task::block_on(task::track("serve parent", self.serve_as_sub(entry))) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("smol-devx: subactor failed to start: {e}");
                2
            }
        };
        crate::debug::terminal::leave_terminal();
        crate::log::flush();
        std::process::exit(code)
    }

    /// Boots from the environment, connects to the parent and serves its
    /// dialogs; the process ends with the entry dialog, or as soon as the
    /// parent is gone.
    async fn serve_as_sub(self, entry: String) -> Result<i32, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        let uid = ActorUid::new(var(env::NAME)?, var(env::UUID)?);
        let parent_addr: Addr = var(env::PARENT)?.parse().map_err(|e| format!("{e}"))?;
        let root_addr: Addr = var(env::ROOT)?.parse().map_err(|e| format!("{e}"))?;
        let token = var(env::TOKEN)?;
        let debug_mode = std::env::var(env::DEBUG).as_deref() == Ok("1");
        let tree_dir = match &root_addr {
            Addr::Unix(path) => path.parent(),
            Addr::Tcp(_) => None,
        };
        let listener = Listener::bind_under(self.transport, tree_dir).map_err(|e| e.to_string())?;
        let boot = Boot {
            uid,
            parent_addr: Some(parent_addr.clone()),
            is_root: false,
            debug_mode,
            token,
            root_addr,
        };
        let actor = self.start(boot, listener);

        let (chan, incoming) = actor
            .dial(&parent_addr)
            .await
            .map_err(|e| format!("parent: {e}"))?;
        let _ = actor.inner.parent.set(chan.clone());

        let mut main_started = false;
        while let Some(dialog) = incoming.recv().instrument("next dialog").await {
            let is_main = !main_started && dialog.handler == entry;
            let name = dialog_task_name(&dialog, &chan);
            let task = task::spawn(
                name,
                run_dialog(actor.clone(), chan.clone(), dialog, is_main),
            );
            if is_main {
                main_started = true;
                let actor = actor.clone();
                task::spawn("exit with entry", async move {
                    let ok = task.await;
                    actor.cleanup();
                    crate::debug::terminal::leave_terminal();
                    crate::log::flush();
                    std::process::exit(if ok { 0 } else { 1 });
                })
                .detach();
            } else {
                task.detach();
            }
        }
        // The parent is gone: no process outlives its parent.
        log::warn!(
            "{}: connection to parent closed ({}); exiting",
            actor.uid(),
            chan.close_reason().as_deref().unwrap_or("?")
        );
        actor.cleanup();
        Ok(1)
    }
}

/// The root's body raced against a tree cancel: `None` when cancelled.
/// A body's `Err` goes to the crash hook first.
async fn run_root<F, Fut, E>(actor: Actor, root: F) -> Option<Result<(), RemoteError>>
where
    F: FnOnce(Actor) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: IntoFailure,
{
    let cancelled = actor.inner.cancel.1.clone();
    let body = async { Some(root(actor.clone()).await) };
    let cancel = async {
        let why = cancelled.recv().await.unwrap_or_default();
        log::warn!("{}: cancelling the actor tree: {why}", actor.uid());
        actor.cancel_children(nursery::Nursery::DEFAULT_GRACE).await;
        None
    };
    let result = body.instrument("root body").or(cancel).await;
    if actor.cancel_requested() {
        return None;
    }
    let result = result.map(|r| r.map_err(|e| error::box_root_error(e, actor.uid())));
    if let Some(Err(boxed)) = &result {
        actor.crashed(boxed.to_string(), || boxed.clone()).await;
    }
    result
}

/// Who an actor is and where its tree is, at boot.
struct Boot {
    uid: ActorUid,
    parent_addr: Option<Addr>,
    is_root: bool,
    debug_mode: bool,
    token: String,
    root_addr: Addr,
}

//! The actor tree: a root process that spawns subactor processes (which
//! may spawn their own), each with an identity, a listening address, a
//! connection to its parent and the address of the root.
//!
//! A program declares its entry functions and dialog handlers on a
//! [`Runtime`] and calls [`Runtime::run`] from `main`. The same executable
//! is the root when started by a user and a subactor when re-executed by
//! its parent: `run` tells the two apart by the environment and
//! dispatches.
//!
//! ```no_run
//! use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
//! use smol_devx::msg::RemoteError;
//!
//! async fn double(_actor: Actor, x: u64) -> Result<u64, std::io::Error> {
//!     Ok(2 * x)
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     Runtime::new()
//!         .entry("double", double)
//!         .run(|actor| async move {
//!             let mut nursery = Nursery::new(&actor);
//!             let child = nursery.run_in_actor(ActorSpec::new("double"), &21u64).await?;
//!             nursery.join().await?;
//!             assert_eq!(nursery.result::<u64>(child)?, 42);
//!             Ok::<_, RemoteError>(())
//!         })
//! }
//! ```

pub mod cancel;
pub mod debugger;
pub mod error;
mod nursery;
mod refusals;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;

use crate::codec::{encode_pld, Codec, CodecError, PldSpec};
use crate::ipc::auth::{client_handshake, server_handshake};
use crate::ipc::random::{new_token, new_uuid};
use crate::ipc::{Addr, Channel, Context, Incoming, IncomingDialogs, Listener, Side, Transport};
use crate::msg::{ActorUid, Msg, Pld, RemoteError};
use crate::task::{self, lock, Instrument};

pub use nursery::{ActorSpec, ChildId, Nursery, Portal};

/// Environment a parent passes to a subactor.
pub mod env {
    /// The entry (handler name) the subactor runs; its presence makes a
    /// process a subactor.
    pub const ENTRY: &str = "SMOL_DEVX_ENTRY";
    /// The subactor's name.
    pub const NAME: &str = "SMOL_DEVX_NAME";
    /// The subactor's uuid.
    pub const UUID: &str = "SMOL_DEVX_UUID";
    /// The parent's address.
    pub const PARENT: &str = "SMOL_DEVX_PARENT";
    /// The root's address.
    pub const ROOT: &str = "SMOL_DEVX_ROOT";
    /// The per-tree secret. A root started with it set uses it (tests,
    /// hosts that hand it out); otherwise the root makes a fresh one.
    pub const TOKEN: &str = "SMOL_DEVX_TOKEN";
    /// `1` when the subactor runs in debug mode.
    pub const DEBUG: &str = "SMOL_DEVX_DEBUG";
    /// `tcp` to use TCP on loopback instead of Unix sockets.
    pub const TRANSPORT: &str = "SMOL_DEVX_TRANSPORT";

    use std::sync::Mutex;

    use crate::task::lock;

    static PASSED_ON: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

    /// Sets `key=value` in the environment of every subactor this process
    /// spawns from now on (and, through them, of their own children when
    /// they pass it on). A later value for the same key replaces the
    /// earlier one. This process's own environment is left alone:
    /// changing it while threads run is unsound in libc.
    pub fn pass_on(key: &str, value: &str) {
        let mut vars = lock(&PASSED_ON);
        vars.retain(|(k, _)| k != key);
        vars.push((key.to_owned(), value.to_owned()));
    }

    /// The variables given to [`pass_on`].
    pub(crate) fn passed_on() -> Vec<(String, String)> {
        lock(&PASSED_ON).clone()
    }
}

/// A child process of this actor, connected and not yet reaped.
#[derive(Clone, Debug)]
pub struct LiveChild {
    /// The child's identity.
    pub uid: ActorUid,
    /// Its process id.
    pub pid: u32,
    /// The way to its handlers.
    pub portal: Portal,
    /// Its entry's dialog, once opened: cancelling it cancels the child.
    main: Option<crate::msg::Cid>,
}

impl LiveChild {
    /// Sends `signal` to the child's process.
    pub fn signal(&self, signal: rustix::process::Signal) -> std::io::Result<()> {
        nursery::kill(self.pid, signal)
    }
}

/// What an actor does as soon as it exists, before it serves anything
/// (install the debugger's host, say); registered with
/// [`Runtime::on_boot`].
pub type BootHook = Arc<dyn Fn(&Actor) + Send + Sync>;

/// What a root does on its way out (restore the terminal, say);
/// registered with [`Runtime::on_exit`].
pub type ExitHook = Arc<dyn Fn(&Actor) + Send + Sync>;

/// The exit code of a tree cancelled by ctrl-c (128 + SIGINT).
pub const CANCELLED_EXIT: u8 = 130;

/// A spawned child's connection, handed from the accept loop to the
/// nursery waiting for it.
type Connected = (Channel, IncomingDialogs);

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Pld, RemoteError>> + Send>>;
type HandlerFn = Box<dyn Fn(Actor, Context, Pld) -> HandlerFuture + Send + Sync>;

struct Handler {
    spec: &'static PldSpec,
    run: HandlerFn,
}

/// What an actor does with a failure of its entry (or, in the root, of
/// its body) before the failure goes up the tree: the debugger opens its
/// crash REPL here. Registered with [`Runtime::on_crash`].
pub type CrashHook =
    Arc<dyn Fn(Actor, RemoteError) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What an actor awaits before a failure makes its nursery cancel the
/// failed child's siblings: the debugger waits there until no one in the
/// tree is in (or waiting for) a REPL. Registered with
/// [`Runtime::before_teardown`].
pub type TeardownHook =
    Arc<dyn Fn(Actor) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// A handle on the running actor: its identity, its place in the tree
/// and its mode. Clones share it.
#[derive(Clone)]
pub struct Actor {
    inner: Arc<ActorInner>,
}

struct ActorInner {
    uid: ActorUid,
    is_root: bool,
    debug_mode: bool,
    token: String,
    addr: Addr,
    root_addr: Addr,
    transport: Transport,
    codec: Codec,
    handlers: HashMap<String, Handler>,
    parent: std::sync::OnceLock<Channel>,
    parent_addr: Option<Addr>,
    root_chan: smol::lock::Mutex<Option<Channel>>,
    children: Mutex<Vec<LiveChild>>,
    /// Set once by [`Actor::cancel_tree`]: why the tree is cancelled.
    cancel: (Sender<String>, Receiver<String>),
    cancel_requested: std::sync::atomic::AtomicBool,
    /// Set by [`Actor::terminate_tree`]: no waiting for the debugger.
    forced: std::sync::atomic::AtomicBool,
    /// The root's exit code when the tree was cancelled.
    cancelled_exit: std::sync::atomic::AtomicU8,
    pending_spawns: Mutex<HashMap<String, Sender<Connected>>>,
    socket_dir: Option<PathBuf>,
    crash_hook: Option<CrashHook>,
    teardown_hook: Option<TeardownHook>,
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Actor{}", self.inner.uid)
    }
}

/// The actor this process runs, set once at boot.
static CURRENT: std::sync::OnceLock<Actor> = std::sync::OnceLock::new();

impl Actor {
    /// The actor this process runs (`None` before [`Runtime::run`]
    /// started it).
    pub fn current() -> Option<Actor> {
        CURRENT.get().cloned()
    }

    /// This actor's identity.
    pub fn uid(&self) -> &ActorUid {
        &self.inner.uid
    }

    /// Whether this is the root of the tree.
    pub fn is_root(&self) -> bool {
        self.inner.is_root
    }

    /// Whether debug mode is on for this actor (inherited from its
    /// parent unless overridden at spawn).
    pub fn debug_mode(&self) -> bool {
        self.inner.debug_mode
    }

    /// Where this actor listens.
    pub fn addr(&self) -> &Addr {
        &self.inner.addr
    }

    /// Where the root listens.
    pub fn root_addr(&self) -> &Addr {
        &self.inner.root_addr
    }

    /// The connection to the parent (subactors only).
    pub fn parent(&self) -> Option<&Channel> {
        self.inner.parent.get()
    }

    /// This actor's children that are alive, from every nursery, in spawn
    /// order.
    pub fn children(&self) -> Vec<LiveChild> {
        self.live_children().clone()
    }

    fn live_children(&self) -> std::sync::MutexGuard<'_, Vec<LiveChild>> {
        // Plain pushes and retains: a panic cannot leave it inconsistent.
        lock(&self.inner.children)
    }

    fn remember_child(&self, child: LiveChild) {
        self.live_children().push(child);
    }

    fn set_child_main(&self, pid: u32, cid: crate::msg::Cid) {
        if let Some(child) = self.live_children().iter_mut().find(|c| c.pid == pid) {
            child.main = Some(cid);
        }
    }

    /// Cancels the whole tree (root only; a subactor's request is
    /// ignored with a warning): every live child's entry is cancelled,
    /// the children get [`Nursery::DEFAULT_GRACE`] to end, then the root's
    /// body is dropped (its nurseries kill what is left), and the root
    /// exits with [`CANCELLED_EXIT`]. The debugger's ctrl-c handling calls
    /// it; so can a host's own shutdown path. Later calls do nothing.
    pub fn cancel_tree(&self, why: &str) {
        if !self.is_root() {
            log::warn!("{}: only the root cancels the tree ({why})", self.uid());
            return;
        }
        use std::sync::atomic::Ordering;
        if !self.inner.cancel_requested.swap(true, Ordering::SeqCst) {
            let _ = self.inner.cancel.0.try_send(why.to_owned());
        }
    }

    /// Ends the tree now (root only): like [`Actor::cancel_tree`], but
    /// without waiting for anyone in a REPL, and the root exits with
    /// `exit_code`. SIGTERM and SIGHUP to the root come here.
    pub fn terminate_tree(&self, why: &str, exit_code: u8) {
        use std::sync::atomic::Ordering;
        if self.is_root() {
            self.inner.forced.store(true, Ordering::SeqCst);
            self.inner.cancelled_exit.store(exit_code, Ordering::SeqCst);
        }
        self.cancel_tree(why);
    }

    /// Whether [`Actor::terminate_tree`] was called: teardown waits for
    /// no one.
    pub(crate) fn forced(&self) -> bool {
        self.inner.forced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether [`Actor::cancel_tree`] was called.
    pub fn cancel_requested(&self) -> bool {
        self.inner
            .cancel_requested
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Cancels every live child's entry, then waits up to `grace` for them
    /// all to be reaped; longer while someone is in a REPL (a child's
    /// teardown may pause), since what is left is then killed.
    async fn cancel_children(&self, grace: std::time::Duration) {
        use std::time::{Duration, Instant};
        for child in self.children() {
            if let Some(cid) = child.main {
                log::info!("{}: cancelling {}", self.uid(), child.uid);
                let _ = child.portal.chan.send(&Msg::Cancel { cid }).await;
            }
        }
        let mut deadline = Instant::now() + grace;
        while !self.live_children().is_empty() {
            if Instant::now() >= deadline {
                if !self.before_teardown(true).await {
                    return;
                }
                deadline = Instant::now() + grace;
            }
            smol::Timer::after(Duration::from_millis(10)).await;
        }
    }

    fn forget_child(&self, pid: u32) {
        self.live_children().retain(|c| c.pid != pid);
    }

    /// The connection to the root, made on first use and kept (the
    /// parent's, when the parent is the root). Subactors only.
    pub async fn root_channel(&self) -> Result<Channel, RemoteError> {
        if self.is_root() {
            return Err(RemoteError::new(
                "NotASubactor",
                "the root has no connection to itself",
                self.uid().clone(),
            ));
        }
        let mut cached = self.inner.root_chan.lock().await;
        if let Some(chan) = cached.as_ref().filter(|c| c.is_connected()) {
            return Ok(chan.clone());
        }
        let chan = match self.parent() {
            Some(parent) if self.inner.parent_addr.as_ref() == Some(&self.inner.root_addr) => {
                parent.clone()
            }
            _ => self.connect(&self.inner.root_addr).await?,
        };
        *cached = Some(chan.clone());
        Ok(chan)
    }

    /// Connects to another actor of the tree (the root, say) as a peer.
    pub async fn connect(&self, addr: &Addr) -> Result<Channel, RemoteError> {
        let (chan, incoming) = self
            .dial(addr)
            .await
            .map_err(|e| RemoteError::new("ConnectError", e, self.uid().clone()))?;
        serve_dialogs(self.clone(), chan.clone(), incoming);
        Ok(chan)
    }

    /// Connects to `addr` and proves this actor belongs to the tree; the
    /// caller serves the dialogs the peer opens.
    async fn dial(&self, addr: &Addr) -> Result<(Channel, IncomingDialogs), String> {
        let inner = &self.inner;
        let mut stream = crate::ipc::transport::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let peer = client_handshake(&mut stream, &inner.uid, &inner.token, &inner.codec)
            .await
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        Ok(Channel::start(
            stream,
            inner.uid.clone(),
            peer,
            Side::Client,
            inner.codec,
        ))
    }

    /// Runs the crash hook for a failure, in debug mode.
    async fn crashed(&self, what: String, boxed: impl FnOnce() -> RemoteError) {
        let Some(hook) = self.inner.crash_hook.clone().filter(|_| self.debug_mode()) else {
            return;
        };
        log::debug!("{}: crashed: {what}", self.uid());
        hook(self.clone(), boxed()).await;
    }

    /// Awaits the teardown hook, when this actor or one of the children
    /// being torn down runs in debug mode.
    pub(crate) async fn before_teardown(&self, child_in_debug: bool) -> bool {
        let wanted = (self.debug_mode() || child_in_debug) && !self.forced();
        match self.inner.teardown_hook.clone().filter(|_| wanted) {
            Some(hook) => hook(self.clone()).await,
            None => false,
        }
    }

    /// Removes this actor's socket directory: the process is about to end
    /// and destructors of detached tasks will not run.
    fn cleanup(&self) {
        if let Some(dir) = &self.inner.socket_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

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
        E: std::error::Error + Send + Sync + 'static,
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
        E: std::error::Error + Send + Sync + 'static,
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
        E: std::error::Error + Send + Sync + 'static,
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
                // Boxing resolves a backtrace, milliseconds on this actor's
                // only thread: first let the tasks that the failure's
                // cleanup woke run (a force-released lock's next holder).
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
        E: std::error::Error + Send + Sync + 'static,
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
async fn run_root<F, Fut, E>(actor: Actor, root: F) -> Option<Result<(), E>>
where
    F: FnOnce(Actor) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
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
    if let Some(Err(e)) = &result {
        actor
            .crashed(e.to_string(), || error::box_error_ref(e, actor.uid()))
            .await;
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

/// Accepts connections for the actor's whole life. A peer that fails the
/// handshake is logged and dropped; children being spawned are handed to
/// their nursery; any other authenticated peer is served.
async fn accept_loop(actor: Actor, listener: Listener) {
    let handshakes = Arc::new(async_lock::Semaphore::new(MAX_HANDSHAKES));
    let who = actor.uid().to_string();
    let refused = refusals::Refusals::new(who.clone(), "refused a connection");
    let failed = refusals::Refusals::new(who, "accept failed");
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        let (mut stream, user) = match listener.accept().await {
            Ok(conn) => {
                backoff = ACCEPT_BACKOFF;
                conn
            }
            Err(e) => {
                failed.note(e.to_string());
                // Out of file descriptors, say: each retry would fail the
                // same way until some close, so wait longer each time.
                smol::Timer::after(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_AT_MOST);
                continue;
            }
        };
        let Some(slot) = handshakes.try_acquire_arc() else {
            log::debug!(
                "{}: {MAX_HANDSHAKES} connections in their handshake already: one more closed",
                actor.uid()
            );
            continue;
        };
        let (actor, refused) = (actor.clone(), refused.clone());
        task::spawn("handshake", async move {
            let inner = &actor.inner;
            let shaken =
                server_handshake(&mut stream, user, &inner.uid, &inner.token, &inner.codec).await;
            drop(slot);
            let peer = match shaken {
                Ok(peer) => peer,
                Err(e) => {
                    refused.note(e.to_string());
                    return;
                }
            };
            let (chan, incoming) = Channel::start(
                stream,
                inner.uid.clone(),
                peer.clone(),
                Side::Server,
                inner.codec,
            );
            let waiting = lock(&inner.pending_spawns).remove(&*peer.uuid);
            match waiting {
                Some(nursery) => {
                    let _ = nursery.send((chan, incoming)).await;
                }
                None => {
                    log::debug!("{}: peer {peer} connected", inner.uid);
                    serve_dialogs(actor.clone(), chan, incoming);
                }
            }
        })
        .detach();
    }
}

/// The first wait after a failed accept; it doubles with each failure in
/// a row, up to [`ACCEPT_BACKOFF_AT_MOST`].
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
const ACCEPT_BACKOFF_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);

/// How many accepted connections may be in their handshake at once.
/// Before it a peer is a stranger: each costs a task and a socket (its
/// frames are bounded by [`HELLO_MAX_FRAME`](crate::ipc::auth::HELLO_MAX_FRAME)),
/// and a flood of strangers must not grow the actor without bound.
const MAX_HANDSHAKES: usize = 256;

/// Serves the dialogs a peer opens, each in its own task.
fn serve_dialogs(actor: Actor, chan: Channel, incoming: IncomingDialogs) {
    let name = format!("serve {}", chan.peer());
    incoming.serve_each(name, move |dialog| {
        let name = dialog_task_name(&dialog, &chan);
        task::spawn(name, run_dialog(actor.clone(), chan.clone(), dialog, false)).detach();
    });
}

/// `handler #cid from peer`: what a task dump shows for a served dialog.
fn dialog_task_name(dialog: &Incoming, chan: &Channel) -> String {
    use std::fmt::Write;
    // Sized once and written piecewise: `format!` grew the string twice
    // and went through `core::fmt` for every part, per lock dialog.
    let peer = &chan.peer().name;
    let mut name = String::with_capacity(dialog.handler.len() + peer.len() + 28);
    name.push_str(&dialog.handler);
    let _ = write!(name, " #{}", dialog.cid);
    name.push_str(" from ");
    name.push_str(peer);
    name
}

/// Runs one handler to its end, a peer's cancel or the connection's loss,
/// and reports the outcome to the peer. A failure of the actor's main
/// entry goes through the crash hook first. Returns whether it succeeded.
async fn run_dialog(actor: Actor, chan: Channel, mut dialog: Incoming, is_main: bool) -> bool {
    let cid = dialog.cid;
    let here = actor.uid().clone();
    let Some(handler) = actor.inner.handlers.get(&dialog.handler) else {
        let error = RemoteError::new(
            "UnknownHandler",
            format!("no handler named {:?}", dialog.handler),
            here,
        );
        log::warn!("{}: {} asked for {error}", actor.uid(), chan.peer());
        let _ = chan.send(&Msg::Error { cid, error }).await;
        return false;
    };
    let watch = dialog.take_cancel_watch();
    let args = std::mem::take(&mut dialog.args);
    let ctx = chan.accept(dialog, handler.spec);
    let token = cancel::Token::register();
    let work =
        AssertUnwindSafe(token.scope((handler.run)(actor.clone(), ctx, args))).catch_unwind();
    let mut work = std::pin::pin!(work.instrument("handler"));
    let first = async { Some((&mut work).await) }
        .or(async {
            match &watch {
                Some(watch) => watch.cancelled().await,
                None => smol::future::pending().await,
            }
            None
        })
        .await;
    let outcome = match first {
        Some(done) => Some(done),
        // A handler inside `until_cancelled` is told, and ends by itself
        // after its teardown; any other is dropped here.
        None if token.cancel() => {
            log::info!(
                "{}: handler {cid} cancelled: waiting for its teardown",
                actor.uid()
            );
            Some(work.await)
        }
        None => None,
    };
    drop(watch);
    let reply = match outcome {
        Some(Ok(Ok(pld))) => Msg::Return { cid, pld },
        Some(Ok(Err(error))) => Msg::Error { cid, error },
        Some(Err(panic)) => Msg::Error {
            cid,
            error: error::box_panic(&*panic, &here),
        },
        None => Msg::Error {
            cid,
            error: RemoteError::new(error::CANCELLED_TYPE, "cancelled by the peer", here),
        },
    };
    let ok = matches!(reply, Msg::Return { .. });
    if let Msg::Error { error, .. } = &reply {
        if is_main && error.type_name != error::CANCELLED_TYPE {
            actor.crashed(error.to_string(), || error.clone()).await;
        }
        if error.type_name != error::CANCELLED_TYPE {
            log::info!("{}: handler {cid} failed: {error}", actor.uid());
        }
    }
    let _ = chan.send(&reply).await;
    ok
}

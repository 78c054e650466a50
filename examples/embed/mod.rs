//! `toy`: a small actor system of its own, as a smol-devx user already
//! has one. Its spawning: this executable re-executed with `TOY_ROLE` set.
//! Its IPC: one JSON line per message ([`Wire`]) over Unix sockets, a new
//! connection per dialog, every actor listening on `<dir>/<name>.sock`.
//! Its executor: whatever [`Rt`] says (smol in `embed_host`, async-std in
//! `embed_async_std`). It never touches `smol_devx::actor` or
//! `smol_devx::ipc`.
//!
//! The glue that makes it a debugger host is the section marked "glue"
//! below: a [`Host`], a [`LockDialog`] over its connections, and serving
//! what the debugger asks over them (the root's lock dialogs, dump
//! requests); then one line at each place a host calls the debugger
//! (install, crash REPLs, wait for the debugger, restore the terminal).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smol::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use smol_devx::debug::dialog::{BoxFuture, BoxedDialog, LockDialog};
use smol_devx::debug::host::{ChildActor, Host};
use smol_devx::debug::lock::Lock;
use smol_devx::debug::{lock_dialog, pause, terminal, DebugError};
use smol_devx::msg::{ActorUid, Cid, LockMsg, LockRelease, LockRequest, LockStatus, RemoteError};
use smol_devx::stack_on_sig::{self, ActorDump};

/// What the toy system needs from an executor.
pub trait Rt: Send + Sync + 'static {
    /// A connected Unix socket.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Runs an actor's main future on this thread.
    fn block_on<T>(fut: impl Future<Output = T>) -> T;
    /// Connects to `path`.
    fn connect(path: PathBuf) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Listens on `path`, serving each connection in its own task.
    fn listen(path: &Path, serve: fn(Self::Stream) -> BoxFuture<'static, ()>) -> io::Result<()>;
    /// Sleeps.
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send;
}

/// The toy system's messages.
#[derive(Serialize, Deserialize, Debug)]
enum Wire {
    /// Opens a lock dialog with the root: the dialog's id and the request.
    Request(Cid, LockRequest),
    Status(LockStatus),
    Release(LockRelease),
    /// Asks an actor for its task-tree dump within this many ms.
    Dump(u64),
    Tree(Box<ActorDump>),
    /// A child's last word to the root: its name and its failure.
    Done(String, Option<RemoteError>),
}

/// One connection: JSON lines.
struct Conn<S>(BufReader<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn send(&mut self, msg: &Wire) -> io::Result<()> {
        let mut line = serde_json::to_vec(msg)?;
        line.push(b'\n');
        self.0.write_all(&line).await?;
        self.0.flush().await
    }

    async fn recv(&mut self) -> io::Result<Option<Wire>> {
        let mut line = String::new();
        if self.0.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(io::Error::other)
    }
}

/// This process's actor.
struct Toy {
    uid: ActorUid,
    is_root: bool,
    dir: PathBuf,
    children: Mutex<Vec<ChildActor>>,
    done: async_channel::Sender<(String, Option<RemoteError>)>,
}

fn sock(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

// ---- glue: the toy system as a debugger host --------------------------

struct ToyHost<R>(Arc<Toy>, PhantomData<fn() -> R>);

impl<R: Rt> Host for ToyHost<R> {
    fn uid(&self) -> ActorUid {
        self.0.uid.clone()
    }

    fn is_root(&self) -> bool {
        self.0.is_root
    }

    fn open_lock_dialog(
        &self,
        req: LockRequest,
    ) -> BoxFuture<'static, Result<BoxedDialog, DebugError>> {
        static NEXT_CID: AtomicU64 = AtomicU64::new(1);
        let root = sock(&self.0.dir, "root");
        let peer = ActorUid::new("root", std::os::unix::process::parent_id().to_string());
        Box::pin(async move {
            let gone = |e: io::Error| DebugError::Request(format!("the root: {e}"));
            let conn = Conn(BufReader::new(R::connect(root).await.map_err(gone)?));
            let cid = NEXT_CID.fetch_add(1, Ordering::Relaxed);
            let mut dialog = ToyDialog { conn, peer, cid };
            dialog
                .conn
                .send(&Wire::Request(cid, req))
                .await
                .map_err(gone)?;
            Ok(BoxedDialog::new(dialog))
        })
    }

    fn children(&self) -> Vec<ChildActor> {
        self.0.children.lock().unwrap().clone()
    }

    fn ask_dump(
        &self,
        child: &ChildActor,
        budget: Duration,
    ) -> BoxFuture<'static, Result<ActorDump, String>> {
        let path = sock(&self.0.dir, &child.uid.name);
        Box::pin(async move {
            let stream = R::connect(path).await.map_err(|e| e.to_string())?;
            let mut conn = Conn(BufReader::new(stream));
            let ms = budget.as_millis() as u64;
            conn.send(&Wire::Dump(ms))
                .await
                .map_err(|e| e.to_string())?;
            match conn.recv().await {
                Ok(Some(Wire::Tree(dump))) => Ok(*dump),
                other => Err(format!("no dump: {other:?}")),
            }
        })
    }

    fn cancel_tree(&self, why: &str) {
        eprintln!("toy: {why}: killing the tree");
        for child in self.children() {
            let pid = rustix::process::Pid::from_raw(child.pid as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let _ = std::fs::remove_dir_all(&self.0.dir);
        terminal::restore_terminal();
        std::process::exit(130);
    }
}

/// A lock dialog over one toy connection, from either end.
struct ToyDialog<S> {
    conn: Conn<S>,
    peer: ActorUid,
    cid: Cid,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ToyDialog<S> {
    async fn next(&mut self) -> Result<Option<LockMsg>, DebugError> {
        match self.conn.recv().await {
            Ok(Some(Wire::Status(s))) => Ok(Some(LockMsg::LockStatus(s))),
            Ok(Some(Wire::Release(r))) => Ok(Some(LockMsg::LockRelease(r))),
            Ok(None) => Ok(None),
            Ok(Some(other)) => Err(DebugError::Protocol(format!("{other:?}"))),
            Err(e) => Err(DebugError::Request(e.to_string())),
        }
    }

    async fn answer(&mut self) -> Result<LockMsg, DebugError> {
        let gone = || DebugError::Request("the root hung up".into());
        self.next().await?.ok_or_else(gone)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> LockDialog for ToyDialog<S> {
    fn peer(&self) -> ActorUid {
        self.peer.clone()
    }
    fn cid(&self) -> Cid {
        self.cid
    }
    async fn send_started(&mut self, status: LockStatus) -> Result<(), DebugError> {
        self.send(LockMsg::LockStatus(status)).await
    }
    async fn wait_started(&mut self) -> Result<LockMsg, DebugError> {
        self.answer().await
    }
    async fn send(&mut self, msg: LockMsg) -> Result<(), DebugError> {
        let wire = match msg {
            LockMsg::LockStatus(s) => Wire::Status(s),
            LockMsg::LockRelease(r) => Wire::Release(r),
            LockMsg::LockRequest(r) => Wire::Request(self.cid, r),
        };
        let sent = self.conn.send(&wire).await;
        sent.map_err(|e| DebugError::Request(e.to_string()))
    }
    async fn recv(&mut self) -> Result<Option<LockMsg>, DebugError> {
        self.next().await
    }
    async fn result(&mut self) -> Result<LockMsg, DebugError> {
        self.answer().await
    }
}

/// Serves one connection to this actor: a lock dialog (root), a dump
/// request, a child's last word (root).
fn serve<R: Rt>(stream: R::Stream) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut conn = Conn(BufReader::new(stream));
        match conn.recv().await {
            Ok(Some(Wire::Request(cid, req))) => {
                let peer = req.subactor_uid.clone();
                let mut dialog = ToyDialog { conn, peer, cid };
                match lock_dialog::serve_lock_dialog(&mut dialog, req).await {
                    Ok(end) => drop(dialog.conn.send(&Wire::Status(end)).await),
                    Err(e) => log::warn!("toy: lock dialog with {}: {e}", dialog.peer),
                }
            }
            Ok(Some(Wire::Dump(ms))) => {
                let dump = stack_on_sig::answer_dump_request(Duration::from_millis(ms)).await;
                let _ = conn.send(&Wire::Tree(Box::new(dump))).await;
            }
            Ok(Some(Wire::Done(name, err))) => {
                let _ = toy().done.send((name, err)).await;
            }
            other => log::warn!("toy: unexpected opening {other:?}"),
        }
    })
}

// ---- end of glue: beyond it, the toy calls the debugger in one line at
// each place a host does (install, enable_from_env, crash_repl,
// maybe_wait_for_debugger, restore_terminal, log::flush) ---------------

/// Makes this process's actor, installs it as the debugger's host and
/// starts serving its socket.
fn boot<R: Rt>(name: &str, is_root: bool, dir: PathBuf) -> io::Result<Arc<Toy>> {
    let (done, done_rx) = async_channel::unbounded();
    let me = Arc::new(Toy {
        uid: ActorUid::new(name, std::process::id().to_string()),
        is_root,
        dir,
        children: Mutex::new(Vec::new()),
        done,
    });
    let _ = TOY.set((me.clone(), done_rx));
    smol_devx::debug::install(ToyHost::<R>(me.clone(), PhantomData)).map_err(io::Error::other)?;
    stack_on_sig::enable_from_env();
    R::listen(&sock(&me.dir, name), serve::<R>)?;
    Ok(me)
}

/// A child's failure, as the debugger's crash REPL shows it, then sent up.
async fn crashed(me: &Toy, err: &Failure) -> RemoteError {
    let boxed = RemoteError::new("Error", err.to_string(), me.uid.clone())
        .with_backtrace(std::backtrace::Backtrace::force_capture().to_string());
    pause::crash_repl(&boxed).await;
    boxed
}

type Receiver = async_channel::Receiver<(String, Option<RemoteError>)>;
static TOY: std::sync::OnceLock<(Arc<Toy>, Receiver)> = std::sync::OnceLock::new();

fn toy() -> &'static Toy {
    &TOY.get().expect("booted").0
}

/// How an actor's entry fails.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// An actor's entry.
pub type Entry = fn() -> BoxFuture<'static, Result<(), Failure>>;

/// `crasher`'s entry: it fails.
pub fn crasher() -> BoxFuture<'static, Result<(), Failure>> {
    Box::pin(async { Err(io::Error::other("crasher: the config is missing").into()) })
}

/// Runs this process as the root, or as the child `TOY_ROLE` names.
pub fn main<R: Rt>(entries: &[(&str, Entry)]) -> ExitCode {
    smol_devx::log::init();
    let code = match std::env::var("TOY_ROLE") {
        Ok(role) => R::block_on(child::<R>(&role, entries)),
        Err(_) => R::block_on(root::<R>(entries)),
    };
    smol_devx::log::flush();
    code
}

async fn child<R: Rt>(name: &str, entries: &[(&str, Entry)]) -> ExitCode {
    let dir = PathBuf::from(std::env::var_os("TOY_DIR").expect("TOY_DIR"));
    let me = boot::<R>(name, false, dir).expect("boot the child");
    let entry = entries
        .iter()
        .find(|(n, _)| *n == name)
        .expect("an entry")
        .1;
    let failure = match entry().await {
        Ok(()) => None,
        Err(e) => Some(crashed(&me, &e).await),
    };
    let code = if failure.is_some() { 1 } else { 0 };
    if let Ok(stream) = R::connect(sock(&me.dir, "root")).await {
        let _ = Conn(BufReader::new(stream))
            .send(&Wire::Done(name.to_owned(), failure))
            .await;
    }
    ExitCode::from(code)
}

/// Spawns the children of `entries` in order, each once the one before
/// holds the tree lock (so that they queue for the terminal in that
/// order), waits for them all, and fails with the first child's failure.
async fn root<R: Rt>(entries: &[(&str, Entry)]) -> ExitCode {
    let dir = std::env::temp_dir().join(format!("toy-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("the socket directory");
    let me = boot::<R>("root", true, dir.clone()).expect("boot the root");
    let mut procs = HashMap::new();
    for (i, (name, _)) in entries.iter().enumerate() {
        if i > 0 {
            while Lock::root().holder().is_none() {
                R::sleep(Duration::from_millis(10)).await;
            }
        }
        let exe = std::env::current_exe().unwrap();
        let proc = std::process::Command::new(exe)
            .env("TOY_ROLE", name)
            .env("TOY_DIR", &dir)
            .spawn()
            .expect("spawn a child");
        println!("toy: spawned {name} pid {}", proc.id());
        let uid = ActorUid::new(*name, proc.id().to_string());
        me.children.lock().unwrap().push(ChildActor {
            uid,
            pid: proc.id(),
        });
        procs.insert(name.to_string(), proc);
    }
    let mut failure = None;
    let done = &TOY.get().expect("booted").1;
    while !procs.is_empty() {
        let Ok((name, err)) = done.recv().await else {
            break;
        };
        if let Some(mut proc) = procs.remove(&name) {
            let _ = proc.wait();
        }
        me.children.lock().unwrap().retain(|c| *c.uid.name != *name);
        failure = failure.or(err.map(|e| e.relayed_by(me.uid.clone())));
    }
    if let Some(err) = &failure {
        pause::crash_repl(err).await;
    }
    lock_dialog::maybe_wait_for_debugger().await;
    let _ = std::fs::remove_dir_all(&dir);
    terminal::restore_terminal();
    match failure {
        Some(err) => {
            eprintln!("toy: {err}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

//! Spawning subactor processes and supervising them: results, errors that
//! climb, one-cancels-all, graceful-then-forceful cancellation, reaping.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use smol::channel::{unbounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::lock::OnceCell;

use super::portal::Portal;
use super::process::{kill, kill_and_reap, prepare_child};
use super::serve::serve_dialogs;
use super::{env, Actor, LiveChild};
use crate::codec::{encode_pld, CodecError, PldSpec};
use crate::ipc::random::new_uuid;
use crate::ipc::{Channel, DialogError, Transport};
use crate::msg::{ActorUid, Cid, Msg, Pld, RemoteError};
use crate::task::{self, lock, Instrument};

/// How long a spawned child may take to connect back.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to spawn: the actor's name, the entry it runs, and an optional
/// debug-mode override (it otherwise inherits its parent's).
#[derive(Clone, Debug)]
pub struct ActorSpec {
    name: String,
    entry: String,
    debug_mode: Option<bool>,
}

impl ActorSpec {
    /// An actor named after the entry it runs.
    pub fn new(entry: &str) -> Self {
        Self {
            name: entry.to_owned(),
            entry: entry.to_owned(),
            debug_mode: None,
        }
    }

    /// Gives the actor a name other than its entry's.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// Overrides the inherited debug mode for this actor (and, by
    /// inheritance, its own children).
    pub fn debug_mode(mut self, on: bool) -> Self {
        self.debug_mode = Some(on);
        self
    }
}

/// A child of a [`Nursery`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChildId(usize);

struct Child {
    uid: ActorUid,
    pid: u32,
    chan: Channel,
    main_cid: Cid,
    daemon: bool,
    debug_mode: bool,
    exited: Arc<OnceCell<Option<ExitStatus>>>,
    result: Option<Result<Pld, RemoteError>>,
}

/// A supervisor of subactor processes.
///
/// Children run either *in actor* (run their entry, return a result:
/// [`Nursery::run_in_actor`]) or as *daemons* (serve dialogs until
/// cancelled: [`Nursery::start_actor`]). [`Nursery::join`] waits for the
/// former, cancels the latter, and reaps every process. The first failure
/// cancels every sibling (one-cancels-all) and is returned, boxed, naming
/// its source actor.
///
/// Cancellation is graceful first (a cancel message), then `SIGTERM`,
/// then `SIGKILL`, a grace period apart. A nursery dropped before `join`
/// (its task was cancelled) sends `SIGKILL` to the children still alive.
pub struct Nursery {
    actor: Actor,
    children: Vec<Child>,
    results_tx: Sender<(usize, Result<Pld, DialogError>)>,
    results_rx: Receiver<(usize, Result<Pld, DialogError>)>,
    grace: Duration,
}

impl Nursery {
    /// The default time between cancel steps.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(1);

    /// A nursery of `actor`'s children.
    pub fn new(actor: &Actor) -> Self {
        let (results_tx, results_rx) = unbounded();
        Self {
            actor: actor.clone(),
            children: Vec::new(),
            results_tx,
            results_rx,
            grace: Self::DEFAULT_GRACE,
        }
    }

    /// Sets the time between cancel steps.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Spawns a child that runs `spec`'s entry with `args`; its result is
    /// collected by [`Nursery::join`].
    pub async fn run_in_actor<A: Serialize>(
        &mut self,
        spec: ActorSpec,
        args: &A,
    ) -> Result<ChildId, RemoteError> {
        self.spawn(spec, args, false).await
    }

    /// Spawns a daemon child: it runs `spec`'s entry (which serves until
    /// cancelled) and answers dialogs through [`Nursery::portal`].
    pub async fn start_actor<A: Serialize>(
        &mut self,
        spec: ActorSpec,
        args: &A,
    ) -> Result<ChildId, RemoteError> {
        self.spawn(spec, args, true).await
    }

    /// The way to a child's handlers.
    pub fn portal(&self, child: ChildId) -> Portal {
        Portal {
            chan: self.children[child.0].chan.clone(),
        }
    }

    /// A child's identity.
    pub fn uid(&self, child: ChildId) -> &ActorUid {
        &self.children[child.0].uid
    }

    /// A child's process id.
    pub fn pid(&self, child: ChildId) -> u32 {
        self.children[child.0].pid
    }

    /// A finished child's result, decoded.
    pub fn result<R: DeserializeOwned>(&self, child: ChildId) -> Result<R, RemoteError> {
        let here = self.actor.uid();
        match &self.children[child.0].result {
            Some(Ok(pld)) => crate::task::decode_pld(pld)
                .map_err(|e: CodecError| super::error::box_error(e, here)),
            Some(Err(e)) => Err(e.clone()),
            None => Err(RemoteError::new(
                "NotFinished",
                format!("{} has no result yet", self.children[child.0].uid),
                here.clone(),
            )),
        }
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> RemoteError {
        RemoteError::new(
            "SpawnError",
            format!("{what}: {e}"),
            self.actor.uid().clone(),
        )
    }

    async fn spawn<A: Serialize>(
        &mut self,
        spec: ActorSpec,
        args: &A,
        daemon: bool,
    ) -> Result<ChildId, RemoteError> {
        let args = encode_pld(args).map_err(|e| self.fail("encode arguments", e))?;
        let uuid = new_uuid().map_err(|e| self.fail("make a uuid", e))?;
        let uid = ActorUid::new(spec.name.clone(), uuid.clone());
        let inner = &self.actor.inner;
        let debug_mode = spec.debug_mode.unwrap_or(inner.debug_mode);
        let (connected_tx, connected_rx) = smol::channel::bounded(1);
        lock(&inner.pending_spawns).insert(uuid.clone(), connected_tx);

        let exe = std::env::current_exe().map_err(|e| self.fail("find the executable", e))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.env(env::ENTRY, &spec.entry)
            .env(env::NAME, &spec.name)
            .env(env::UUID, &uuid)
            .env(env::PARENT, inner.addr.to_string())
            .env(env::ROOT, inner.root_addr.to_string())
            .env(env::TOKEN, &inner.token)
            .env(env::DEBUG, if debug_mode { "1" } else { "0" })
            .env(
                env::TRANSPORT,
                match inner.transport {
                    Transport::Unix => "unix",
                    Transport::TcpLoopback => "tcp",
                },
            );
        cmd.envs(env::passed_on());
        if crate::stack_on_sig::enabled() {
            cmd.env(crate::stack_on_sig::ENV, "1");
        }
        prepare_child(&mut cmd);
        let mut process = smol::process::Command::from(cmd)
            .spawn()
            .map_err(|e| self.fail("spawn", e))?;
        let pid = process.id();
        let exited = Arc::new(OnceCell::new());
        {
            let exited = exited.clone();
            let actor = self.actor.clone();
            let name = format!("reap {uid}");
            task::spawn(name, async move {
                let status = process.status().instrument("child exit").await.ok();
                if status.is_some_and(|s| s.signal().is_some()) {
                    // Killed, so it cleaned nothing up.
                    crate::ipc::transport::remove_dirs_of(pid);
                }
                // Set first: `spawn` checks it after remembering the child.
                let _ = exited.set(status).await;
                actor.forget_child(pid);
            })
            .detach();
        }
        let connected = within(
            CONNECT_TIMEOUT,
            async { connected_rx.recv().await.ok() }.or(async {
                exited.wait().await;
                None
            }),
        )
        .await
        .flatten();
        let Some((chan, incoming)) = connected else {
            lock(&inner.pending_spawns).remove(&uuid);
            let _ = kill(pid, rustix::process::Signal::KILL);
            return Err(self.fail(&format!("{uid} never connected"), "exited or timed out"));
        };
        // A child's own requests are served like any peer's.
        serve_dialogs(self.actor.clone(), chan.clone(), incoming);
        // Remembered before its entry starts: once the entry runs, signals
        // and dumps relayed through this actor reach the child.
        self.actor.remember_child(LiveChild {
            uid: uid.clone(),
            pid,
            portal: Portal { chan: chan.clone() },
            main: None,
        });
        if exited.get().is_some() {
            // Reaped already, maybe before it was remembered.
            self.actor.forget_child(pid);
        }
        let mut main = chan
            .open(&spec.entry, args, &PldSpec::ANY)
            .await
            .map_err(|e| self.fail("start the entry", e))?;
        let main_cid = main.cid();
        self.actor.set_child_main(pid, main_cid);
        let index = self.children.len();
        let results = self.results_tx.clone();
        task::spawn(format!("result of {uid}"), async move {
            let result = main.result_raw().instrument("child result").await;
            let _ = results.send((index, result)).await;
        })
        .detach();
        log::debug!("{} spawned {uid} (pid {pid})", self.actor.uid());
        self.children.push(Child {
            debug_mode,
            uid,
            pid,
            chan,
            main_cid,
            daemon,
            exited,
            result: None,
        });
        Ok(ChildId(index))
    }

    /// Waits for every run-in-actor child's result, then cancels the
    /// daemons, and reaps every process. The first failure cancels all
    /// the other children and is returned.
    pub async fn join(&mut self) -> Result<(), RemoteError> {
        let mut first_error = None;
        while first_error.is_none()
            && self
                .children
                .iter()
                .any(|c| !c.daemon && c.result.is_none())
        {
            let Ok((index, result)) = self.results_rx.recv().await else {
                break;
            };
            let result = result.map_err(|e| self.child_error(index, e));
            if self.actor.is_root() {
                crate::debug::lock_dialog::forget_questions_of(&self.children[index].uid);
            }
            if let Err(e) = &result {
                first_error = Some(e.clone());
            }
            self.children[index].result = Some(result);
        }
        if let Some(e) = &first_error {
            // Do not tear down a tree whose terminal someone holds.
            self.wait_for_debugger().await;
            log::info!(
                "{}: {} failed; cancelling its siblings",
                self.actor.uid(),
                e.src_uid
            );
        }
        self.stop_all().await;
        first_error.map_or(Ok(()), Err)
    }

    /// Tears the nursery down because its owner failed with `err`: waits
    /// for the debugger first (when anyone involved runs in debug mode:
    /// no child is killed in the middle of its REPL), then cancels every
    /// child and reaps them all, and hands `err` back.
    ///
    /// ```no_run
    /// # async fn f(mut nursery: smol_devx::actor::Nursery, e: std::io::Error) -> Result<(), std::io::Error> {
    /// return Err(nursery.abort(e).await);
    /// # }
    /// ```
    pub async fn abort<E>(&mut self, err: E) -> E {
        self.wait_for_debugger().await;
        self.stop_all().await;
        err
    }

    /// Awaits the teardown hook (the debugger's wait), when this actor or
    /// one of its children runs in debug mode.
    async fn wait_for_debugger(&self) {
        let debugged = self.children.iter().any(|c| c.debug_mode);
        self.actor.before_teardown(debugged).await;
    }

    /// Cancels every child still running and reaps them all; when this
    /// actor or a child runs in debug mode, only once no one in the tree
    /// is in (or waiting for) a REPL.
    pub async fn cancel(&mut self) {
        // Not while someone in the tree is in (or waiting for) a REPL: the
        // children being cancelled may be the ones debugged.
        self.wait_for_debugger().await;
        self.stop_all().await;
    }

    /// Boxes a failure of child `index`'s entry dialog.
    fn child_error(&self, index: usize, e: DialogError) -> RemoteError {
        let child = &self.children[index];
        match e {
            DialogError::Remote(remote) => remote,
            other => RemoteError::new(
                "ActorFailed",
                format!("{} ended without a result: {other}", child.uid),
                child.uid.clone(),
            ),
        }
    }

    /// Stops every child: a child that has finished is only waited for;
    /// one still running is cancelled, then signalled.
    async fn stop_all(&mut self) {
        let grace = self.grace;
        let stops: Vec<_> = self
            .children
            .iter()
            .map(|c| {
                let running = c.result.is_none();
                let (chan, cid, pid, uid) = (c.chan.clone(), c.main_cid, c.pid, c.uid.clone());
                let exited = c.exited.clone();
                let (actor, debug) = (self.actor.clone(), c.debug_mode);
                task::spawn(format!("stop {uid}"), async move {
                    if running && exited.get().is_none() {
                        let _ = chan.send(&Msg::Cancel { cid }).await;
                    }
                    let child = Stopping {
                        actor: &actor,
                        debug,
                        uid: &uid,
                        pid,
                    };
                    child.stop(&exited, grace).await;
                })
            })
            .collect();
        for stop in stops {
            stop.await;
        }
    }
}

/// A child being stopped, by its parent `actor`.
struct Stopping<'a> {
    actor: &'a Actor,
    debug: bool,
    uid: &'a ActorUid,
    pid: u32,
}

impl Stopping<'_> {
    /// Waits for the child's exit, escalating to SIGTERM then SIGKILL when
    /// it does not come within `grace` of each step. Never while someone
    /// in the tree is in (or waiting for) a REPL: that may be the child,
    /// tearing down after a cancel, and it gets another `grace` after.
    async fn stop(&self, exited: &OnceCell<Option<ExitStatus>>, grace: Duration) {
        use rustix::process::Signal;
        let (uid, pid) = (self.uid, self.pid);
        let mut signals = [Signal::TERM, Signal::KILL].into_iter();
        loop {
            if within(grace, exited.wait()).await.is_some() {
                return;
            }
            if self.actor.before_teardown(self.debug).await {
                continue;
            }
            match signals.next() {
                Some(signal) => {
                    log::warn!("{uid} (pid {pid}) still running {grace:?} on: sending {signal:?}");
                    let _ = kill(pid, signal);
                }
                None => {
                    exited.wait().await;
                    return;
                }
            }
        }
    }
}

/// `fut`'s output, or `None` when `limit` passes first.
async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    async { Some(fut.await) }
        .or(async {
            smol::Timer::after(limit).await;
            None
        })
        .await
}

impl Drop for Nursery {
    // No await here. A child that holds or waits for the tree lock (the
    // root knows) is left to a task that waits for the debugger first,
    // as `join` and `cancel` do: dropping a nursery (a `?`, a timeout)
    // must not kill a REPL. Any other child is killed and reaped at once
    // (a SIGKILLed process exits immediately), so that no zombie is left
    // if this process ends next; when the reaper task got there first,
    // waitpid just says so.
    fn drop(&mut self) {
        let alive: Vec<_> = self
            .children
            .iter()
            .filter(|c| c.exited.get().is_none())
            .map(|c| (c.uid.clone(), c.pid, c.exited.clone()))
            .collect();
        // Only the root knows who holds and waits for the tree lock.
        let queued: Vec<ActorUid> = if self.actor.is_root() && !self.actor.forced() {
            let (holder, waiters) = crate::debug::lock::Lock::root().queue();
            holder.into_iter().chain(waiters).collect()
        } else {
            Vec::new()
        };
        let (debugged, others): (Vec<_>, Vec<_>) = alive
            .into_iter()
            .partition(|(uid, ..)| queued.contains(uid));
        for (uid, pid, _) in others {
            log::warn!("nursery dropped with {uid} alive: SIGKILL");
            kill_and_reap(pid);
        }
        if debugged.is_empty() {
            return;
        }
        let names: Vec<String> = debugged.iter().map(|(uid, ..)| uid.to_string()).collect();
        log::warn!(
            "nursery dropped while {} in the debugger: killed once it is free",
            names.join(", ")
        );
        let actor = self.actor.clone();
        task::spawn("kill after the debugger", async move {
            actor.before_teardown(true).await;
            // One that ended by itself meanwhile was reaped: its pid may
            // be another process's by now.
            for (uid, pid, _) in debugged.into_iter().filter(|(.., e)| e.get().is_none()) {
                log::warn!("the debugger is free: SIGKILL to {uid} of a dropped nursery");
                kill_and_reap(pid);
            }
        })
        .detach();
    }
}

//! `kill -USR1` task-tree dumps of a whole actor tree.
//!
//! When enabled ([`enable_stack_on_sig`], or `SMOL_DEVX_STACK_ON_SIG=1`
//! with [`enable_from_env`]), SIGUSR1 makes an actor write its
//! [task tree](crate::task::TaskTree) to stderr and append it to
//! `<tmpdir>/smol-devx-<pid>.log`, then relay the signal to its children:
//! every actor dumps, parent before child. The root also gathers every
//! actor's tree through the host seam ([`Host::ask_dump`], answered by
//! [`answer_dump_request`]) into one dump ordered by the actor tree, appended
//! to its log as text and written as JSON to
//! `<tmpdir>/smol-devx-tree-<root pid>.json`. An actor that does not
//! answer in time (its threads are stuck) is marked missing, and the
//! program keeps running after a dump.
//!
//! The signal is watched on the runtime with `async-signal`: no work runs
//! in a signal handler.
//!
//! The actors are the host's ([`Host`]): the actor that dumps, its
//! children and how to ask them. Without a host a process still dumps
//! its own tasks.
//!
//! ```no_run
//! use smol_devx::stack_on_sig;
//!
//! stack_on_sig::enable_stack_on_sig().expect("SIGUSR1 watcher");
//! // ... `kill -USR1 <pid>` now dumps this process's tasks.
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use async_signal::{Signal, Signals};
use smol::future::FutureExt;
use smol::stream::StreamExt;

use crate::debug::host::{self, ChildActor, Host};
pub use crate::task::ActorDump;
use crate::task::{self, Instrument, TaskTree};

/// `1` turns the dumps on; a host passes it on to the subactors it spawns
/// once [`enabled`].
pub const ENV: &str = "SMOL_DEVX_STACK_ON_SIG";

/// The dialog through which a parent asks a child for its dump.
pub const TREE_HANDLER: &str = "smol_devx.task_tree";

/// How long the root waits for the whole tree's answers. Each level gives
/// its children three quarters of its own budget, so that a stuck
/// grandchild is reported missing by its parent, not its whole branch by
/// the root.
pub const GATHER_BUDGET: Duration = Duration::from_secs(2);

/// Signals closer together than this make one dump: a process can get
/// the same request twice, straight and relayed by its parent.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Enables the dumps when `SMOL_DEVX_STACK_ON_SIG` is `1` in this
/// process's environment (a subactor inherits it): every actor of a tree
/// calls it at start-up.
pub fn enable_from_env() {
    if std::env::var(ENV).as_deref() == Ok("1") {
        if let Err(e) = enable_stack_on_sig() {
            log::error!("cannot watch SIGUSR1: {e}");
        }
    }
}

/// What an actor answers when its parent asks for its dump (through
/// [`Host::ask_dump`]): its own tree and its descendants', gathered
/// within `budget`, cut to fit in a frame.
pub async fn answer_dump_request(budget: Duration) -> ActorDump {
    let mut dump = gather(budget.min(GATHER_BUDGET)).await;
    fit(&mut dump, REPLY_LIMIT);
    dump
}

/// The most a dump sent up the tree may weigh: room under the codec's
/// frame limit for the envelope.
const REPLY_LIMIT: usize = crate::codec::Codec::DEFAULT_MAX_FRAME - 4096;

fn encoded_len(dump: &ActorDump) -> usize {
    crate::codec::encode_pld(dump).map_or(usize::MAX, |p| p.as_bytes().len())
}

/// Makes `dump` fit in `limit` encoded bytes by replacing the largest
/// task trees with a note pointing at the actor's own log (every actor
/// wrote its full tree there), largest first.
fn fit(dump: &mut ActorDump, limit: usize) {
    /// The path (child indices) to the actor with the most tasks, and
    /// how many; `None` when no actor has any left.
    fn largest(dump: &ActorDump) -> Option<(usize, Vec<usize>)> {
        let mine = dump.tasks.as_ref().map_or(0, TaskTree::len);
        let mut best = (mine > 0).then(|| (mine, Vec::new()));
        for (i, child) in dump.children.iter().enumerate() {
            if let Some((n, mut path)) = largest(child) {
                if best.as_ref().is_none_or(|(m, _)| n > *m) {
                    path.insert(0, i);
                    best = Some((n, path));
                }
            }
        }
        best
    }
    while encoded_len(dump) > limit {
        let Some((tasks, path)) = largest(dump) else {
            return;
        };
        let big = path.iter().fold(&mut *dump, |d, &i| &mut d.children[i]);
        big.tasks = None;
        big.missing = Some(format!(
            "{tasks} tasks are too many to send up the tree; see {}",
            log_path(big.pid).display()
        ));
    }
}

static ENABLED: OnceLock<()> = OnceLock::new();

/// Whether the dumps are on in this process: a host then passes [`ENV`]
/// on to the subactors it spawns.
pub fn enabled() -> bool {
    ENABLED.get().is_some()
}

/// Starts dumping on SIGUSR1 in this process. Idempotent. Until it is
/// called, SIGUSR1 keeps its default action (the process ends).
pub fn enable_stack_on_sig() -> std::io::Result<()> {
    if ENABLED.get().is_some() {
        return Ok(());
    }
    // Created here, not in the task: a signal sent right after this call
    // returns is caught, not fatal.
    let mut signals = Signals::new([Signal::Usr1])?;
    if ENABLED.set(()).is_err() {
        return Ok(());
    }
    // On smol's executor thread, not the actor's own:
    // an actor whose thread is blocked by a task still dumps, and its dump
    // shows which task blocks it.
    smol::spawn(task::track("dump tasks on SIGUSR1", async move {
        let mut last: Option<std::time::Instant> = None;
        while signals.next().instrument("SIGUSR1").await.is_some() {
            // `kill -USR1 $(pgrep app)` signals every actor of the tree,
            // which also relays to its children: one dump per burst.
            if last.is_some_and(|t| t.elapsed() < DEBOUNCE) {
                log::debug!("SIGUSR1 again within {DEBOUNCE:?}: dumped already");
                continue;
            }
            on_signal().await;
            last = Some(std::time::Instant::now());
        }
    }))
    .detach();
    Ok(())
}

/// `<tmpdir>/smol-devx-<pid>.log`, where each dump of process `pid` is
/// appended.
pub fn log_path(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("smol-devx-{pid}.log"))
}

/// `<tmpdir>/smol-devx-tree-<root pid>.json`: the last gathered dump.
pub fn json_path(root_pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("smol-devx-tree-{root_pid}.json"))
}

/// Dumps name the program's tasks and actors: only the user reads them.
fn open_private(path: &std::path::Path, append: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .mode(0o600)
        .open(path)
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    open_private(path, false)?.write_all(bytes)
}

fn append_log(text: &str) {
    let path = log_path(std::process::id());
    let written = open_private(&path, true).and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        log::error!("cannot append the task dump to {}: {e}", path.display());
    }
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Dumps this process, relays the signal to the children, and (in the
/// root) gathers the tree's dump.
async fn on_signal() {
    let host = host::current();
    let pid = std::process::id();
    let who = host
        .as_ref()
        .map_or_else(|| "this process".to_owned(), |h| h.uid().to_string());
    let tree = TaskTree::capture();
    // Header, tree and footer in one buffer: one write to each file.
    let mut text = format!(
        "--- smol-devx: tasks of {who} pid {pid} (SIGUSR1, unix time {}) ---\n",
        unix_time()
    );
    tree.write_text(&mut text, 0);
    let _ = writeln!(text, "--- end of tasks of {who} pid {pid} ---");
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    append_log(&text);
    let Some(host) = host else { return };
    // Parent before child: each child dumps once this one has written.
    for child in host.children() {
        let relayed = rustix::process::Pid::from_raw(child.pid as i32)
            .ok_or(rustix::io::Errno::SRCH)
            .and_then(|p| rustix::process::kill_process(p, rustix::process::Signal::USR1));
        if let Err(e) = relayed {
            log::warn!("cannot relay SIGUSR1 to {}: {e}", child.uid);
        }
    }
    if host.is_root() {
        let dump = gather_with(&*host, GATHER_BUDGET, Some(tree)).await;
        let actors = dump.actors();
        let missing = actors.iter().filter(|a| a.tasks.is_none()).count();
        append_log(&format!(
            "=== smol-devx: gathered task trees of the actor tree of {who} pid {pid}: {} actors, {missing} missing ===\n{dump}=== end of gathered task trees ===\n",
            actors.len(),
        ));
        let json = json_path(pid);
        let written = write_private(&json, dump.to_json().as_bytes());
        match written {
            // One write: `eprintln!` writes its pieces one by one, and the
            // other actors' dumps on the same stderr landed between them.
            Ok(()) => {
                let line = format!(
                    "smol-devx: gathered task trees of {} actors ({missing} missing) in {} and {}\n",
                    actors.len(),
                    log_path(pid).display(),
                    json.display()
                );
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Err(e) => log::error!("cannot write {}: {e}", json.display()),
        }
    }
}

/// This actor's tree with those of its descendants, asked for through
/// the host; a child that does not answer within `budget` is marked
/// missing. Without a host: this process's tree alone.
pub async fn gather(budget: Duration) -> ActorDump {
    match host::current() {
        Some(host) => gather_with(&*host, budget, None).await,
        None => ActorDump {
            actor: crate::msg::ActorUid::new("process", std::process::id().to_string()),
            pid: std::process::id(),
            tasks: Some(TaskTree::capture()),
            missing: None,
            children: Vec::new(),
        },
    }
}

/// [`gather`], with this actor's own tree when it is already captured
/// (the root's signal handler just dumped it).
async fn gather_with(host: &dyn Host, budget: Duration, own: Option<TaskTree>) -> ActorDump {
    let child_budget = budget * 3 / 4;
    let asks: Vec<_> = host
        .children()
        .into_iter()
        .map(|child| {
            let name = format!("gather tasks of {}", child.uid.name);
            let asked = host.ask_dump(&child, child_budget);
            task::spawn(name, ask_child(child, asked, budget))
        })
        .collect();
    let tasks = own.unwrap_or_else(TaskTree::capture);
    let mut children = Vec::with_capacity(asks.len());
    for ask in asks {
        children.push(ask.await);
    }
    ActorDump {
        actor: host.uid(),
        pid: std::process::id(),
        tasks: Some(tasks),
        missing: None,
        children,
    }
}

/// A child's dump, or the child marked missing: it failed to answer, or
/// did not within `budget`.
async fn ask_child(
    child: ChildActor,
    asked: crate::debug::dialog::BoxFuture<'static, Result<ActorDump, String>>,
    budget: Duration,
) -> ActorDump {
    let asked = async { Some(asked.await) }.or(async {
        smol::Timer::after(budget).await;
        None
    });
    let missing = |why: String| ActorDump {
        actor: child.uid.clone(),
        pid: child.pid,
        tasks: None,
        missing: Some(why),
        children: Vec::new(),
    };
    match asked.instrument("child's task tree").await {
        Some(Ok(dump)) => dump,
        Some(Err(e)) => missing(format!("asking failed: {e}")),
        None => missing(format!("no reply within {budget:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::dump::tests::actor;

    #[test]
    fn a_dump_too_big_to_send_drops_its_largest_trees_first() {
        let mut dump = actor(
            "root",
            1,
            10,
            vec![
                actor("big", 2, 5_000, vec![]),
                actor("small", 3, 20, vec![]),
            ],
        );
        let whole = encoded_len(&dump);
        fit(&mut dump, whole);
        assert!(
            dump.actors().iter().all(|a| a.tasks.is_some()),
            "fits: unchanged"
        );
        fit(&mut dump, whole / 2);
        assert!(encoded_len(&dump) <= whole / 2);
        let stripped: Vec<&str> = dump
            .actors()
            .iter()
            .filter(|a| a.tasks.is_none())
            .map(|a| &*a.actor.name)
            .collect();
        assert_eq!(stripped, ["big"]);
        let note = dump.children[0].missing.as_deref().unwrap();
        assert!(
            note.contains("5000 tasks") && note.contains("smol-devx-2.log"),
            "{note}"
        );
    }
}

//! `kill -USR1` task-tree dumps of a whole actor tree.
//!
//! When enabled ([`enable_stack_on_sig`], or `SMOL_DEVX_STACK_ON_SIG=1`
//! with [`install`]), SIGUSR1 makes an actor write its
//! [task tree](crate::task::TaskTree) to stderr and append it to
//! `<tmpdir>/smol-devx-<pid>.log`, then relay the signal to its children:
//! every actor dumps, parent before child. The root also gathers every
//! actor's tree over IPC into one dump ordered by the actor tree, appended
//! to its log as text and written as JSON to
//! `<tmpdir>/smol-devx-tree-<root pid>.json`. An actor that does not
//! answer in time (its threads are stuck) is marked missing, and the
//! program keeps running after a dump.
//!
//! The signal is watched on the runtime with `async-signal`: no work runs
//! in a signal handler.
//!
//! ```no_run
//! use smol_devx::actor::Runtime;
//! use smol_devx::stack_on_sig;
//!
//! fn main() -> std::process::ExitCode {
//!     stack_on_sig::enable_stack_on_sig().expect("SIGUSR1 watcher");
//!     stack_on_sig::install(Runtime::new()).run(|_root| async {
//!         // ... `kill -USR1 <pid>` now dumps every actor's tasks.
//!         Ok::<_, std::io::Error>(())
//!     })
//! }
//! ```

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use async_signal::{Signal, Signals};
use serde::{Deserialize, Serialize};
use smol::future::FutureExt;
use smol::stream::StreamExt;

use crate::actor::{env, Actor, Runtime};
use crate::codec::PldSpec;
use crate::msg::ActorUid;
use crate::task::{self, Instrument, TaskTree};

/// `1` turns the dumps on; passed on to every subactor once enabled.
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

/// One actor's task tree, with those of its descendants.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ActorDump {
    /// Who.
    pub actor: ActorUid,
    /// Its process id.
    pub pid: u32,
    /// Its tasks; `None` when it did not answer.
    pub tasks: Option<TaskTree>,
    /// Why its tasks are missing.
    pub missing: Option<String>,
    /// Its children's dumps, in spawn order.
    pub children: Vec<ActorDump>,
}

impl ActorDump {
    /// Every actor in the dump, this one first, depth first.
    pub fn actors(&self) -> Vec<&ActorDump> {
        let mut out = vec![self];
        for child in &self.children {
            out.extend(child.actors());
        }
        out
    }

    /// The dump as JSON, what `serde_json` makes of it: the task trees
    /// are written by [`TaskTree::to_json`]'s writer, three to four times
    /// faster than through `serde_json` (the rest is small), into one
    /// buffer.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        out.push_str("{\"actor\":");
        out.push_str(&small_json(&self.actor));
        out.push_str(",\"pid\":");
        let _ = write!(out, "{}", self.pid);
        out.push_str(",\"tasks\":");
        match &self.tasks {
            Some(tasks) => tasks.write_json(out),
            None => out.push_str("null"),
        }
        out.push_str(",\"missing\":");
        out.push_str(&small_json(&self.missing));
        out.push_str(",\"children\":[");
        for (i, child) in self.children.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            child.write_json(out);
        }
        out.push_str("]}");
    }

    /// Each actor's header, its tree written straight into the buffer
    /// at its depth: through `core::fmt` line by line, the gathered text
    /// of a 10k-task actor took twice as long as its own dump.
    fn write_text(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let _ = write!(out, "{pad}actor {} pid {}", self.actor, self.pid);
        match (&self.tasks, &self.missing) {
            (Some(tasks), _) => {
                let _ = writeln!(out, ": {} tasks", tasks.len());
                tasks.write_text(out, depth + 1);
            }
            (None, why) => {
                let why = why.as_deref().unwrap_or("?");
                let _ = writeln!(out, ": MISSING ({why})");
            }
        }
        for child in &self.children {
            child.write_text(out, depth + 1);
        }
    }
}

/// A small part of a dump, through `serde_json`.
fn small_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data")
}

impl fmt::Display for ActorDump {
    /// Each actor's header, its tasks indented under it, its children
    /// indented under those.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_text(&mut out, 0);
        f.write_str(&out)
    }
}

/// Registers the dump handler on `runtime` (every actor of a tree must
/// have it for the root's gathered dump) and, when `SMOL_DEVX_STACK_ON_SIG`
/// is `1`, enables the dumps in this process. Call it in `main`, which
/// subactors run too.
pub fn install(runtime: Runtime) -> Runtime {
    if std::env::var(ENV).as_deref() == Ok("1") {
        if let Err(e) = enable_stack_on_sig() {
            log::error!("cannot watch SIGUSR1: {e}");
        }
    }
    runtime.handler(
        TREE_HANDLER,
        &PldSpec::ANY,
        |actor: Actor, _ctx, budget_ms: u64| async move {
            let budget = Duration::from_millis(budget_ms).min(GATHER_BUDGET);
            let mut dump = gather(&actor, budget).await;
            fit(&mut dump, REPLY_LIMIT);
            Ok::<_, std::io::Error>(dump)
        },
    )
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

/// Starts dumping on SIGUSR1 in this process, and passes the setting on
/// to every subactor spawned from now on. Idempotent. Until it is called,
/// SIGUSR1 keeps its default action (the process ends).
pub fn enable_stack_on_sig() -> std::io::Result<()> {
    static ENABLED: OnceLock<()> = OnceLock::new();
    if ENABLED.get().is_some() {
        return Ok(());
    }
    // Created here, not in the task: a signal sent right after this call
    // returns is caught, not fatal.
    let mut signals = Signals::new([Signal::Usr1])?;
    if ENABLED.set(()).is_err() {
        return Ok(());
    }
    env::pass_on(ENV, "1");
    // On smol's executor thread, not the actor's own (see `task::block_on`):
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
    let actor = Actor::current();
    let pid = std::process::id();
    let who = actor
        .as_ref()
        .map_or_else(|| "this process".to_owned(), |a| a.uid().to_string());
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
    let Some(actor) = actor else { return };
    // Parent before child: each child dumps once this one has written.
    for child in actor.children() {
        if let Err(e) = child.signal(rustix::process::Signal::USR1) {
            log::warn!("cannot relay SIGUSR1 to {}: {e}", child.uid);
        }
    }
    if actor.is_root() {
        let dump = gather_with(&actor, GATHER_BUDGET, Some(tree)).await;
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

/// This actor's tree with those of its descendants, asked for over IPC;
/// a child that does not answer within `budget` is marked missing.
pub async fn gather(actor: &Actor, budget: Duration) -> ActorDump {
    gather_with(actor, budget, None).await
}

/// [`gather`], with this actor's own tree when it is already captured
/// (the root's signal handler just dumped it).
async fn gather_with(actor: &Actor, budget: Duration, own: Option<TaskTree>) -> ActorDump {
    let child_budget = budget * 3 / 4;
    let asks: Vec<_> = actor
        .children()
        .into_iter()
        .map(|child| {
            let name = format!("gather tasks of {}", child.uid.name);
            task::spawn(name, async move {
                let budget_ms = u64::try_from(child_budget.as_millis()).unwrap_or(u64::MAX);
                let asked = async {
                    Some(
                        child
                            .portal
                            .run::<_, ActorDump>(TREE_HANDLER, &budget_ms)
                            .await,
                    )
                }
                .or(async {
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
            })
        })
        .collect();
    let tasks = own.unwrap_or_else(TaskTree::capture);
    let mut children = Vec::with_capacity(asks.len());
    for ask in asks {
        children.push(ask.await);
    }
    ActorDump {
        actor: actor.uid().clone(),
        pid: std::process::id(),
        tasks: Some(tasks),
        missing: None,
        children,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskEntry;

    fn tree(n: u64) -> TaskTree {
        let task = |id| TaskEntry {
            id,
            name: "worker".into(),
            parent: None,
            depth: 0,
            file: "src/app.rs".into(),
            line: 1,
            polling: false,
            for_us: 1,
            polls: 1,
            busy_us: 0,
            long_idle: false,
            spans: 0..0,
        };
        TaskTree {
            tasks: (0..n).map(task).collect(),
            spans: Vec::new(),
        }
    }

    fn actor(name: &str, pid: u32, tasks: u64, children: Vec<ActorDump>) -> ActorDump {
        ActorDump {
            actor: ActorUid::new(name, "u"),
            pid,
            tasks: Some(tree(tasks)),
            missing: None,
            children,
        }
    }

    #[test]
    fn json_and_text_of_a_dump_are_those_of_serde_json_and_of_each_tree() {
        let mut quiet = actor("quiet \"one\"", 4, 0, vec![]);
        quiet.tasks = None;
        quiet.missing = Some("no reply within 1.5s".into());
        let dump = actor("root", 1, 3, vec![actor("child", 2, 2, vec![quiet])]);
        assert_eq!(dump.to_json(), serde_json::to_string(&dump).unwrap());
        let back: ActorDump = serde_json::from_str(&dump.to_json()).unwrap();
        assert_eq!(back, dump);
        let text = dump.to_string();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("actor ('root', 'u') pid 1: 3 tasks"));
        let first_task = tree(3).to_text().lines().next().unwrap().to_owned();
        assert_eq!(lines.next(), Some(format!("  {first_task}").as_str()));
        assert!(
            text.contains("\n  actor ('child', 'u') pid 2: 2 tasks\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "    actor ('quiet \"one\"', 'u') pid 4: MISSING (no reply within 1.5s)\n"
            ),
            "{text}"
        );
    }

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

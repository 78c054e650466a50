//! The REPL: what a paused or crashed actor shows once it owns the
//! terminal, and the commands it answers.
//!
//! The interpreter is independent of where lines come from
//! ([`LineSource`]): a terminal, plain lines on a pipe, or a script
//! (`SMOL_DEVX_REPL_SCRIPT="bt;p x;c"`, for CI), and of where output goes.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::native::{LiveFrame, Native, Query};
use crate::msg::ActorUid;
use input::{EnvScript, Terminal};
pub use input::{LineSource, Plain, Script, MAX_LINE, NOT_UTF8, SCRIPT_ENV, TOO_LONG};

mod input;

/// Header of a pause REPL, followed by the actor's name and uid.
pub const PAUSE_MSG: &str = "Opening a REPL in paused actor";
/// Header of a crash REPL, followed by the actor's name and uid.
pub const CRASH_MSG: &str = "Opening a REPL in crashed actor";
/// The prompt.
pub const PROMPT: &str = "(devx) ";

/// Crates whose frames are runtime plumbing, hidden from `bt` (shown by
/// `bt full`). A frame is theirs when its function path starts with one,
/// also inside a `<Type as Trait>` or `<&dyn Trait>` form.
const HIDDEN_CRATES: &[&str] = &[
    "smol_devx::",
    "smol::",
    "async_task::",
    "async_executor::",
    "async_io::",
    "async_std::",
    "async_global_executor::",
    "async_lock::",
    "async_channel::",
    "futures_lite::",
    "blocking::",
    "std::",
    "core::",
    "alloc::",
    "__rust",
];

/// Process and thread start-up frames, below every `main`.
const STARTUP_FRAMES: &[&str] = &[
    "main",
    "_start",
    "__libc_start_call_main",
    "__libc_start_main_impl",
    "start_thread",
    "clone",
    "clone3",
];

/// Whether a frame is runtime plumbing rather than the program's own:
/// a function of a hidden crate, that crate's trait implemented for a
/// hidden crate's type or for a type without a path, a generic or a
/// primitive (`<&mut F as core::future::future::Future>::poll`, `<usize
/// as core::slice::index::SliceIndex<[T]>>::index`: never the program's
/// code), or process start-up.
fn is_runtime_frame(function: &str) -> bool {
    let hidden = |path: &str| HIDDEN_CRATES.iter().any(|c| path.starts_with(c));
    if let Some(qualified) = function.strip_prefix('<') {
        if let Some((ty, rest)) = qualified.split_once(" as ") {
            let ty = ty
                .trim_start_matches("&mut ")
                .trim_start_matches('&')
                .trim_start_matches("dyn ");
            return hidden(ty) || (!ty.contains("::") && hidden(rest));
        }
        return hidden(qualified.trim_start_matches("&dyn "));
    }
    hidden(function) || STARTUP_FRAMES.contains(&function)
}

/// Where the REPL was opened: the `pause!` call site, or where the
/// failure of a crash REPL was raised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Source file, as the compiler named it (relative to the package
    /// that was built).
    pub file: std::borrow::Cow<'static, str>,
    /// Line.
    pub line: u32,
}

impl From<&crate::msg::Site> for Location {
    fn from(site: &crate::msg::Site) -> Self {
        Location {
            file: site.file.clone().into(),
            line: site.line,
        }
    }
}

impl Location {
    /// The source file on this machine: as named when that path exists
    /// from here, else under the running program's package (cargo's
    /// `CARGO_MANIFEST_DIR`, or a directory above the executable, which a
    /// cargo build puts under the package's `target/`). `None` when none
    /// of them has it.
    pub fn source_path(&self) -> Option<std::path::PathBuf> {
        let file = std::path::Path::new(&*self.file);
        if file.is_absolute() || file.exists() {
            return file.exists().then(|| file.to_path_buf());
        }
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from);
        let exe = std::env::current_exe().ok();
        let above_exe = exe.iter().flat_map(|e| e.ancestors().skip(1));
        manifest
            .iter()
            .map(|dir| dir.as_path())
            .chain(above_exe)
            .map(|dir| dir.join(file))
            .find(|candidate| candidate.exists())
    }
}

/// Why the REPL opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `pause!`.
    Pause,
    /// A crash.
    Crash,
}

/// Everything one REPL session shows.
pub struct Session {
    /// Pause or crash.
    pub kind: Kind,
    /// The actor it runs in.
    pub actor: ActorUid,
    /// The caller's location (a pause's; crashes may have none).
    pub location: Option<Location>,
    /// Values captured by `pause!(a, b)`, rendered with `Debug`.
    pub values: Vec<(&'static str, String)>,
    /// For crashes: the error chain, one line each.
    pub error: Vec<String>,
    /// Rendered backtrace frames (`std::backtrace` text).
    pub backtrace: String,
    /// Actors waiting for the terminal, oldest first.
    pub waiting: Vec<ActorUid>,
    /// The tree lock's state as the `lock` command shows it, taken each
    /// time the command is typed.
    pub lock_state: LockState,
    /// The registry's id of the task that opened the REPL, if tracked:
    /// `tasks` waits for its poll to end, so that its spans show.
    pub task: Option<u64>,
    /// Asks gdb about a frame still on the stack (`locals`, `p <expr>`):
    /// set where the REPL runs, by whoever can ask from that stack's
    /// thread.
    pub(crate) native: Option<Native>,
}

/// Tells the tree lock's state now.
pub type LockState = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// How the user left the REPL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `c`: go on.
    Continue,
    /// `q`: the paused task fails with `Quit`.
    Quit,
    /// `gdb`: hand the terminal to a native debugger attached to this
    /// process, then come back to the REPL.
    Gdb,
}

impl Session {
    /// A pause at `location` in `actor`, with a backtrace captured here.
    pub fn pause(
        actor: &ActorUid,
        location: Location,
        values: Vec<(&'static str, String)>,
    ) -> Self {
        Self {
            kind: Kind::Pause,
            actor: actor.clone(),
            location: Some(location),
            values,
            error: Vec::new(),
            backtrace: std::backtrace::Backtrace::force_capture().to_string(),
            waiting: Vec::new(),
            lock_state: std::sync::Arc::new(String::new),
            task: crate::task::current_id(),
            native: None,
        }
    }

    /// A crash of `err` shown in `actor` (its source, or an actor it was
    /// relayed to: then the backtrace is marked remote).
    pub fn crash(actor: &ActorUid, err: &crate::msg::RemoteError) -> Self {
        // Its display holds the cause chain, a line each.
        let mut error: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
        let remote = err.src_uid != *actor;
        if remote && !err.backtrace.is_empty() {
            error.push(format!("(remote backtrace, from {})", err.src_uid));
        }
        let location = err.site.as_ref().map(Location::from);
        Self {
            kind: Kind::Crash,
            actor: actor.clone(),
            location,
            values: Vec::new(),
            error,
            backtrace: err.backtrace.clone(),
            waiting: Vec::new(),
            lock_state: std::sync::Arc::new(String::new),
            task: crate::task::current_id(),
            native: None,
        }
    }

    /// The task tree once the REPL's own task has ended the poll that
    /// opened it (the REPL starts during that poll, and a task's spans
    /// are published when a poll ends); at most a short wait.
    fn settled_tasks(&self) -> crate::task::TaskTree {
        if let Some(id) = self.task {
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
            while crate::task::is_polling(id) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        crate::task::TaskTree::capture()
    }

    /// The header line: which message, which actor.
    pub fn header(&self) -> String {
        let msg = match self.kind {
            Kind::Pause => PAUSE_MSG,
            Kind::Crash => CRASH_MSG,
        };
        format!("{msg} {}", self.actor)
    }

    /// What the REPL prints before its first prompt.
    pub fn banner(&self) -> String {
        let mut s = self.header();
        if let Some(at) = &self.location {
            let _ = write!(s, "\n> {}:{}", at.file, at.line);
        }
        for line in &self.error {
            let _ = write!(s, "\n{line}");
        }
        if self.kind == Kind::Crash {
            let _ = write!(s, "\n{}", self.render_backtrace(false));
        }
        if !self.waiting.is_empty() {
            let names: Vec<&str> = self.waiting.iter().map(|u| &*u.name).collect();
            let _ = write!(
                s,
                "\n{} actor{} waiting for the terminal: {}",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            );
        }
        s
    }

    /// The backtrace, with runtime frames hidden unless `full`.
    pub fn render_backtrace(&self, full: bool) -> String {
        self.render_marked(full, None)
    }

    /// The backtrace, the program's frame `selected` (see
    /// [`Session::program_frames`]) marked with `->`.
    fn render_marked(&self, full: bool, selected: Option<usize>) -> String {
        let mut out = String::new();
        let mut hidden = 0;
        let mut program = 0;
        for frame in frames(&self.backtrace) {
            let runtime = is_runtime_frame(frame.function);
            if runtime && !full {
                hidden += 1;
                continue;
            }
            let mark = if !runtime && selected == Some(program) {
                "->"
            } else {
                "  "
            };
            if !runtime {
                program += 1;
            }
            let _ = writeln!(out, "{mark}{}", frame.function);
            if let Some(at) = frame.at {
                let _ = writeln!(out, "      at {at}");
            }
        }
        if hidden > 0 {
            let _ = writeln!(
                out,
                "  ({hidden} runtime frames hidden; `bt full` shows them)"
            );
        }
        if out.is_empty() {
            out.push_str(NOTHING_CAPTURED);
            out.push('\n');
        }
        out.trim_end().to_owned()
    }

    /// The program's frames of the backtrace, innermost first: those `bt`
    /// shows, which `up`, `down` and `frame N` move between.
    fn program_frames(&self) -> Vec<Frame<'_>> {
        frames(&self.backtrace)
            .into_iter()
            .filter(|f| !is_runtime_frame(f.function))
            .collect()
    }

    /// Moves the selection to program frame `to`: what the REPL says.
    fn select(&self, to: Option<usize>, selected: &mut usize) -> String {
        let frames = self.program_frames();
        match to {
            _ if frames.is_empty() => NOTHING_CAPTURED.trim_start().to_owned(),
            Some(n) if n < frames.len() => {
                *selected = n;
                let frame = &frames[n];
                match frame.at {
                    Some(at) => format!("#{n} {}\n      at {at}", frame.function),
                    None => format!("#{n} {}", frame.function),
                }
            }
            _ => format!("*** no such frame: 0 to {} (see bt)", frames.len() - 1),
        }
    }

    /// `l` in program frame `selected`: the REPL's own location for the
    /// innermost (a pause's call site, a failure's site), else the
    /// frame's.
    fn listing_in(&self, selected: usize) -> String {
        if selected == 0 {
            return self.listing();
        }
        let frames = self.program_frames();
        let at = frames
            .get(selected)
            .and_then(|f| f.at)
            .and_then(crate::msg::Site::parse);
        match at {
            Some(at) => listing_at(&Location::from(&at)),
            None => "(no source location for this frame)".to_owned(),
        }
    }

    /// Program frame `selected` as gdb finds it on the stack.
    fn live_frame(&self, selected: usize) -> Result<LiveFrame, String> {
        let frames = self.program_frames();
        let Some(frame) = frames.get(selected) else {
            return Err(NOTHING_CAPTURED.trim_start().to_owned());
        };
        let Some(site) = frame.at.and_then(crate::msg::Site::parse) else {
            return Err("*** no source location for this frame: gdb cannot find it".to_owned());
        };
        let same_function = |f: &&Frame<'_>| f.function == frame.function;
        Ok(LiveFrame {
            function: frame.function.to_owned(),
            nth: frames[..selected].iter().filter(same_function).count(),
            file: site.file,
            line: site.line,
        })
    }

    /// `locals`, or `p` of what was not captured: gdb's answer about the
    /// selected frame.
    fn inspect(&self, selected: usize, query: &Query) -> Result<String, String> {
        let Some(native) = &self.native else {
            return Err("*** this REPL cannot ask gdb: it runs apart from its frames".to_owned());
        };
        native(&self.live_frame(selected)?, query)
    }

    /// `p <expr>`: a value `pause!` captured (in the pause's own frame),
    /// else gdb's evaluation in the selected frame.
    fn print(&self, selected: usize, expr: &str) -> String {
        let captured = self.values.iter().find(|(n, _)| *n == expr);
        let value = match captured {
            Some((_, value)) if selected == 0 => Ok(value.clone()),
            _ => self.inspect(selected, &Query::Print(expr.to_owned())),
        };
        value.map_or_else(|why| why, |value| format!("{expr} = {value}"))
    }

    /// Source lines around the location, when the file is readable.
    pub fn listing(&self) -> String {
        match &self.location {
            Some(at) => listing_at(at),
            None => format!("(no source location) {NOTHING_CAPTURED}"),
        }
    }
}

/// Source lines around `at`, when its file is readable.
fn listing_at(at: &Location) -> String {
    let Some(Ok(text)) = at.source_path().map(std::fs::read_to_string) else {
        return format!("(source of {} not readable here)", at.file);
    };
    let line = at.line as usize;
    let first = line.saturating_sub(5).max(1);
    text.lines()
        .enumerate()
        .skip(first - 1)
        .take(11)
        .map(|(i, l)| {
            let mark = if i + 1 == line { "->" } else { "  " };
            format!("{:>5} {mark} {l}", i + 1)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `bt` and `l` say of a failure that captured nothing where it
/// was raised (a plain error, boxed on its way up).
pub const NOTHING_CAPTURED: &str = "  (nothing was captured where this error was raised: \
return smol_devx::Report from the failing function for its site and backtrace)";

const HELP: &str = "\
commands:
  c, continue     leave the REPL; the task goes on
  q, quit         leave the REPL; the task fails with Quit
  bt, w, where    backtrace, runtime frames hidden (`bt full`: all); `->`
                  marks the selected frame
  up, down        select the calling frame, or back toward the innermost
  frame N         select frame N (0: the innermost of those `bt` shows)
  l, list         source around the pause, or where the failure was
                  raised, or in the selected frame
  locals          the selected frame's variables (from gdb)
  p EXPR          EXPR evaluated by gdb in the selected frame; a name
                  that pause!(name, ...) captured shows that value
  lock            the tree lock's state
  tasks [json]    this process's task tree, as text or JSON
  gdb             attach gdb to this process on this terminal; back here
                  when it detaches
  h, help         this text";

/// Runs one session until the user continues or quits. End of input
/// continues (logged).
pub fn run(
    session: &Session,
    input: &mut dyn LineSource,
    out: &mut dyn Write,
) -> io::Result<Outcome> {
    writeln!(out, "{}", session.banner())?;
    // The program frame that `l` and `bt` look at, innermost first.
    let mut selected = 0;
    loop {
        let Some(line) = input.read_line(PROMPT, out)? else {
            log::info!("{}: end of REPL input, continuing", session.actor);
            writeln!(out)?;
            return Ok(Outcome::Continue);
        };
        if line.len() >= MAX_LINE {
            writeln!(out, "{TOO_LONG}")?;
            continue;
        }
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next()) {
            (None, _) => continue,
            (Some("c" | "continue"), _) => return Ok(Outcome::Continue),
            (Some("q" | "quit"), _) => return Ok(Outcome::Quit),
            (Some("gdb"), _) => return Ok(Outcome::Gdb),
            (Some("bt" | "w" | "where"), full) => {
                session.render_marked(full == Some("full"), Some(selected))
            }
            (Some("l" | "list"), _) => session.listing_in(selected),
            (Some("up" | "u"), _) => session.select(Some(selected + 1), &mut selected),
            (Some("down" | "d"), _) => session.select(selected.checked_sub(1), &mut selected),
            (Some("frame" | "f"), n) => {
                session.select(n.and_then(|n| n.parse().ok()), &mut selected)
            }
            (Some("locals"), _) => session
                .inspect(selected, &Query::Locals)
                .unwrap_or_else(|why| why),
            (Some("p" | "print"), Some(_)) => {
                let expr = line.trim().split_once(char::is_whitespace).map(|(_, e)| e);
                session.print(selected, expr.unwrap_or_default().trim())
            }
            (Some("p" | "print"), None) => "*** p needs an expression".to_owned(),
            (Some("lock"), _) => (session.lock_state)(),
            (Some("tasks"), Some("json")) => session.settled_tasks().to_json(),
            (Some("tasks"), _) => {
                let tree = session.settled_tasks();
                if tree.is_empty() {
                    "no tracked tasks in this process".to_owned()
                } else {
                    tree.to_text().trim_end().to_owned()
                }
            }
            (Some("h" | "help"), _) => HELP.to_owned(),
            (Some(other), _) => format!("*** unknown command {other:?}; h for help"),
        };
        writeln!(out, "{reply}")?;
    }
}

/// Runs a session on this process's terminal: the script of
/// `SMOL_DEVX_REPL_SCRIPT` when set, the line editor when stdin is a
/// terminal, plain lines otherwise. Blocks on input.
pub(crate) fn run_on_stdio(session: &Session) -> io::Result<Outcome> {
    use std::io::IsTerminal;
    let mut input: Box<dyn LineSource> = if EnvScript::active() {
        Box::new(EnvScript)
    } else if io::stdin().is_terminal() {
        Box::new(Terminal)
    } else {
        Box::new(Plain(io::stdin().lock()))
    };
    run(session, input.as_mut(), &mut io::stdout())
}

struct Frame<'a> {
    function: &'a str,
    at: Option<&'a str>,
}

/// Frames of a `std::backtrace` rendering: `N: function` lines, each
/// optionally followed by `at file:line`.
fn frames(text: &str) -> Vec<Frame<'_>> {
    let mut frames: Vec<Frame<'_>> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(at) = line.strip_prefix("at ") {
            if let Some(last) = frames.last_mut() {
                last.at.get_or_insert(at);
            }
        } else if let Some((n, function)) = line.split_once(": ") {
            if n.chars().all(|c| c.is_ascii_digit()) {
                frames.push(Frame { function, at: None });
            }
        }
    }
    frames
}

#[cfg(test)]
mod tests;

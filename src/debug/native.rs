//! `locals` and `p <expr>`: gdb asked, in batch mode, about a frame that
//! is still on one of this process's stacks.
//!
//! Each question attaches gdb, finds the frame on the thread that holds
//! it, answers, and detaches (0.6-0.7 s in a debug build; `cargo bench
//! --bench inspect` measures it). The question
//! must be asked while that thread is inside the frame: a pause asks from
//! the paused task's own poll, `crash_handler` from its own thread.

use std::sync::Arc;

use super::gdb::{native_debugger, with_ptrace_allowed};

/// What the REPL asks about a frame.
#[derive(Clone, Debug)]
pub(crate) enum Query {
    /// `locals`: the frame's variables, runtime state left out.
    Locals,
    /// `p <expr>`: the expression evaluated in the frame.
    Print(String),
}

/// A frame of the REPL's backtrace, as gdb finds it on the stack: by the
/// function holding the line where the backtrace saw it (names alone
/// differ between Rust's backtraces and gdb: `{{closure}}` and
/// `{async_fn#0}`, `Type::method` and `{impl#0}::method`).
#[derive(Clone, Debug)]
pub(crate) struct LiveFrame {
    /// The function, as the backtrace names it.
    pub function: String,
    /// Where the backtrace saw it: its source file and line.
    pub file: String,
    pub line: u32,
    /// Which frame of that function, innermost first (recursion).
    pub nth: usize,
}

/// Answers a [`Query`] about a [`LiveFrame`]: gdb's text, or why there
/// is none, in one line (the REPL's `***` message).
pub(crate) type Native = Arc<dyn Fn(&LiveFrame, &Query) -> Result<String, String> + Send + Sync>;

/// A [`Native`] for a REPL that runs on the thread holding its frames.
pub(crate) fn on_this_thread() -> Native {
    let thread = this_thread();
    Arc::new(move |frame, query| ask(thread, frame, query))
}

/// The id of the calling thread, as gdb numbers threads (its LWP).
pub(crate) fn this_thread() -> rustix::thread::Pid {
    rustix::thread::gettid()
}

/// What `locals` and `p` say where gdb is not installed.
pub const NO_GDB_TO_INSPECT: &str = "*** `locals` and `p` of what pause! did not capture \
need gdb, which is not installed here: install it (e.g. `apt-get install gdb`, or your \
system's gdb package); the other commands work without it";

const SCRIPT: &str = include_str!("native.py");
const MARK: &str = "\x1esmol-devx\x1e";

/// Runs gdb on this process to answer `query` about `frame` on `thread`.
/// Blocks until gdb has detached; the process is stopped meanwhile.
pub(crate) fn ask(
    thread: rustix::thread::Pid,
    frame: &LiveFrame,
    query: &Query,
) -> Result<String, String> {
    let Some(gdb) = native_debugger() else {
        return Err(NO_GDB_TO_INSPECT.to_owned());
    };
    let mut cmd = std::process::Command::new(gdb);
    cmd.args(["-nx", "-batch", "-p", &std::process::id().to_string()])
        .args(["-ex", "set width unlimited", "-ex", "set pagination off"])
        .args([
            "-ex",
            "python exec(__import__('os').environ['SMOL_DEVX_SCRIPT'])",
        ])
        .env("SMOL_DEVX_SCRIPT", SCRIPT)
        .env("SMOL_DEVX_TID", thread.as_raw_nonzero().to_string())
        .env("SMOL_DEVX_FILE", &frame.file)
        .env("SMOL_DEVX_LINE", frame.line.to_string())
        .env("SMOL_DEVX_NTH", frame.nth.to_string())
        .stdin(std::process::Stdio::null());
    // Out of the terminal's process group: a ctrl-c typed meanwhile must
    // not kill gdb while it holds this process stopped.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    match query {
        Query::Locals => cmd.env("SMOL_DEVX_QUERY", "locals"),
        Query::Print(expr) => cmd.env("SMOL_DEVX_QUERY", "p").env("SMOL_DEVX_EXPR", expr),
    };
    match with_ptrace_allowed(|| cmd.output()) {
        Ok(out) => answer(
            frame,
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        ),
        Err(e) => Err(format!("*** cannot run {gdb}: {e}")),
    }
}

/// The REPL's text from gdb's output: the script's answer between its
/// marks, or why gdb gave none, in one line.
fn answer(frame: &LiveFrame, stdout: &str, stderr: &str) -> Result<String, String> {
    let Some(said) = stdout.split(MARK).nth(1) else {
        return Err(no_answer(stderr));
    };
    let said = said.trim_matches('\n');
    match said.strip_prefix("! ") {
        Some("gone") => Err(format!(
            "*** {} has returned: its frame is gone (frames still running, like \
             post_mortem's caller or a pause!'s, keep their locals)",
            short_name(&frame.function)
        )),
        Some(why) => Err(format!("*** {}", why.lines().next().unwrap_or_default())),
        None => Ok(said.to_owned()),
    }
}

/// Why gdb answered nothing, from what it wrote on stderr.
fn no_answer(stderr: &str) -> String {
    let last = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("warning:"))
        .unwrap_or("gdb said nothing");
    if last.contains("ptrace") {
        format!(
            "*** gdb could not attach to this process ({last}): allow ptrace \
             (kernel.yama.ptrace_scope, or CAP_SYS_PTRACE in a container)"
        )
    } else if last.contains("Python") {
        format!("*** this gdb cannot run the query: {last} (a gdb built with Python can)")
    } else {
        format!("*** gdb gave no answer: {last}")
    }
}

/// `locals::fn_with_state` for `locals::fn_with_state::{{closure}}`.
fn short_name(function: &str) -> &str {
    let mut name = function;
    while let Some(outer) = name.strip_suffix("::{{closure}}") {
        name = outer;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> LiveFrame {
        LiveFrame {
            function: "app::fn_with_state::{{closure}}".into(),
            file: "./src/main.rs".into(),
            line: 20,
            nth: 0,
        }
    }

    #[test]
    fn the_answer_is_what_the_marks_hold() {
        let out = format!(
            "Attaching to process 7\n{MARK}\nname = \"devx\"\nport = 8080\n{MARK}\n\
             [Inferior 1 (process 7) detached]\n"
        );
        assert_eq!(
            answer(&frame(), &out, ""),
            Ok("name = \"devx\"\nport = 8080".to_owned())
        );
    }

    #[test]
    fn failures_are_one_line() {
        let gone = answer(&frame(), &format!("{MARK}\n! gone\n{MARK}\n"), "").unwrap_err();
        assert!(gone.starts_with("*** app::fn_with_state has returned: its frame is gone"));
        assert!(!gone.contains('\n'));
        let said = format!("{MARK}\n! No symbol \"nope\" in current context.\n{MARK}\n");
        let bad = answer(&frame(), &said, "").unwrap_err();
        assert_eq!(bad, "*** No symbol \"nope\" in current context.");
        let denied = answer(
            &frame(),
            "",
            "warning: x\nptrace: Operation not permitted.\n",
        )
        .unwrap_err();
        assert!(denied.starts_with("*** gdb could not attach"), "{denied}");
        assert!(denied.contains("Operation not permitted"));
        let nothing = answer(&frame(), "", "").unwrap_err();
        assert_eq!(nothing, "*** gdb gave no answer: gdb said nothing");
    }
}

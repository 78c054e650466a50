//! Where the REPL's lines come from: the terminal's line editor, plain
//! lines from a pipe, or a script; each line capped and read whatever its
//! bytes.

use std::io::{self, BufRead, Write};

use crate::task::lock;

/// The longest line the REPL takes, in bytes; a longer one is refused
/// with [`TOO_LONG`].
pub const MAX_LINE: usize = 4096;
/// What the REPL says of a line of [`MAX_LINE`] bytes or more.
pub const TOO_LONG: &str = "*** that line is too long (4096 bytes or more): ignored";
/// What the REPL says of a typed line it could not read as UTF-8.
pub const NOT_UTF8: &str = "*** that line held a byte that is not UTF-8: ignored; type it again";
/// Environment variable holding a `;`-separated script of commands.
pub const SCRIPT_ENV: &str = "SMOL_DEVX_REPL_SCRIPT";

/// Where the REPL's lines come from.
pub trait LineSource {
    /// Shows `prompt` and reads one line; `None` at end of input.
    fn read_line(&mut self, prompt: &str, out: &mut dyn Write) -> io::Result<Option<String>>;
}

/// Plain lines from a reader (a pipe, a test), the prompt written as is.
pub struct Plain<R>(pub R);

impl<R: BufRead> LineSource for Plain<R> {
    fn read_line(&mut self, prompt: &str, out: &mut dyn Write) -> io::Result<Option<String>> {
        out.write_all(prompt.as_bytes())?;
        out.flush()?;
        // Bytes, not `read_line`: one byte that is not UTF-8 (a Latin-1
        // key, a stray meta bit) must not fail the read, and with it the
        // paused task.
        let mut line = Vec::new();
        if self.0.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let line = String::from_utf8_lossy(&line);
        Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()))
    }
}

/// A line editor on the terminal, with history across the sessions of
/// the process. A ctrl-c at the prompt redraws it (the REPL goes on).
pub(crate) struct Terminal;

impl Terminal {
    fn editor() -> &'static std::sync::Mutex<Option<rustyline::DefaultEditor>> {
        static EDITOR: std::sync::OnceLock<std::sync::Mutex<Option<rustyline::DefaultEditor>>> =
            std::sync::OnceLock::new();
        // No cursor-position query at each prompt: its answer is read
        // from the input, so lines typed ahead that arrive while it waits
        // for one would be eaten (and a terminal that does not answer,
        // like a test's pty, would make every prompt wait for it). The banner
        // ends its line, so the prompt starts at the left anyway.
        let config = rustyline::Config::builder()
            .check_cursor_position(false)
            .build();
        EDITOR.get_or_init(|| {
            let editor = rustyline::DefaultEditor::with_config(config).ok();
            std::sync::Mutex::new(editor.map(|mut editor| {
                let cap = rustyline::EventHandler::Conditional(Box::new(LineCap));
                editor.bind_sequence(rustyline::Event::Any, cap);
                editor
            }))
        })
    }
}

/// Drops the characters typed past [`MAX_LINE`]: the editor redraws the
/// whole line at each key, so a line without end would take quadratic
/// time while its REPL holds the tree lock. The line then reaches the REPL at
/// the cap, which refuses it with a message.
struct LineCap;

impl rustyline::ConditionalEventHandler for LineCap {
    fn handle(
        &self,
        evt: &rustyline::Event,
        _: rustyline::RepeatCount,
        _: bool,
        ctx: &rustyline::EventContext,
    ) -> Option<rustyline::Cmd> {
        let typed = matches!(
            evt.get(0),
            Some(rustyline::KeyEvent(rustyline::KeyCode::Char(_), _))
        );
        (typed && ctx.line().len() >= MAX_LINE).then_some(rustyline::Cmd::Noop)
    }
}

impl LineSource for Terminal {
    fn read_line(&mut self, prompt: &str, out: &mut dyn Write) -> io::Result<Option<String>> {
        use rustyline::error::ReadlineError;
        let mut editor = lock(Self::editor());
        let Some(editor) = editor.as_mut() else {
            // No editor on this terminal: plain lines.
            drop(editor);
            return Plain(io::stdin().lock()).read_line(prompt, out);
        };
        loop {
            let in_editor = crate::debug::terminal::Editing::enter();
            let read = editor.readline(prompt);
            drop(in_editor);
            match read {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    return Ok(Some(line));
                }
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => return Ok(None),
                // The editor drops a line holding a byte that is not
                // UTF-8; say so and read the next one.
                Err(ReadlineError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    writeln!(out, "{NOT_UTF8}")?;
                }
                Err(ReadlineError::Io(e)) => return Err(e),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }
}

/// Commands from a script, echoed after the prompt as if typed.
pub struct Script(std::collections::VecDeque<String>);

impl Script {
    /// Parses `a;b;c`.
    pub fn new(script: &str) -> Self {
        Self(
            script
                .split(';')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect(),
        )
    }

    fn next(&mut self) -> Option<String> {
        self.0.pop_front()
    }
}

impl LineSource for Script {
    fn read_line(&mut self, prompt: &str, out: &mut dyn Write) -> io::Result<Option<String>> {
        echo(self.next(), prompt, out)
    }
}

fn echo(cmd: Option<String>, prompt: &str, out: &mut dyn Write) -> io::Result<Option<String>> {
    if let Some(cmd) = &cmd {
        writeln!(out, "{prompt}{cmd}")?;
    }
    Ok(cmd)
}

/// The process's `SMOL_DEVX_REPL_SCRIPT`, consumed across all the REPL
/// sessions of the process in order (a loop of pauses takes one command
/// after the other). Subactors inherit it through the environment, and
/// each process reads its own copy from the start.
pub(crate) struct EnvScript;

impl EnvScript {
    fn script() -> &'static std::sync::Mutex<Option<Script>> {
        static SCRIPT: std::sync::OnceLock<std::sync::Mutex<Option<Script>>> =
            std::sync::OnceLock::new();
        SCRIPT.get_or_init(|| {
            std::sync::Mutex::new(std::env::var(SCRIPT_ENV).ok().map(|s| Script::new(&s)))
        })
    }

    /// Whether the process runs scripted.
    pub fn active() -> bool {
        lock(Self::script()).is_some()
    }
}

impl LineSource for EnvScript {
    fn read_line(&mut self, prompt: &str, out: &mut dyn Write) -> io::Result<Option<String>> {
        let cmd = lock(Self::script()).as_mut().and_then(Script::next);
        echo(cmd, prompt, out)
    }
}

//! Driving an example through a real pseudo-terminal, as a user would,
//! and matching what the screen shows before each prompt.

use std::process::Command;
use std::time::Duration;

use expectrl::{Eof, Session, WaitStatus};
use smol_devx::debug::repl::PROMPT;

/// An example running on a pseudo-terminal. One at a time per test
/// binary: a REPL session's timing is what these tests look at, and
/// several trees racing for two cores make that timing noise.
pub struct Pty {
    session: Session,
    /// Everything matched so far, for the message of a failed test.
    transcript: String,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Drops terminal escape sequences and carriage returns, so that text
/// matches the way it was printed.
fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

impl Pty {
    /// Starts `example` (built first) with `env` on a new terminal.
    pub fn spawn(example: &str, env: &[(&str, &str)]) -> Pty {
        Self::spawn_with_args(example, &[], env)
    }

    /// Starts `example` with `args` and `env` on a new terminal.
    pub fn spawn_with_args(example: &str, args: &[&str], env: &[(&str, &str)]) -> Pty {
        let mut cmd = Command::new(super::example(example));
        cmd.args(args).envs(env.iter().copied());
        Self::start(cmd)
    }

    /// Starts `example` from the working directory `dir`, without the
    /// `CARGO_MANIFEST_DIR` that `cargo test` sets: as a user who runs
    /// the built program from elsewhere.
    pub fn spawn_in(example: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> Pty {
        let mut cmd = Command::new(super::example(example));
        cmd.current_dir(dir)
            .env_remove("CARGO_MANIFEST_DIR")
            .envs(env.iter().copied());
        Self::start(cmd)
    }

    fn start(cmd: Command) -> Pty {
        // A test that failed while holding it poisons it: still ours.
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let mut session = Session::spawn(cmd).expect("spawn on a pty");
        session.set_expect_timeout(Some(Duration::from_secs(30)));
        Pty {
            session,
            transcript: String::new(),
            _one_at_a_time: turn,
        }
    }

    /// Starts `example` from a shell that stays the terminal's session
    /// leader, as a user's shell is (then the example's death does not
    /// hang the terminal up).
    pub fn spawn_under_shell(example: &str) -> Pty {
        let path = super::example(example);
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("'{}'; sleep 30", path.display()));
        Self::start(cmd)
    }

    /// Waits for the next prompt; returns the text shown before it.
    pub fn expect_prompt(&mut self) -> String {
        let found = self
            .session
            .expect(PROMPT)
            .unwrap_or_else(|e| self.stuck("no prompt", e));
        let before = plain(found.before());
        self.transcript.push_str(&before);
        self.transcript.push_str(PROMPT);
        before
    }

    /// Waits for `text`; returns what was shown before it.
    pub fn expect(&mut self, text: &str) -> String {
        let found = self
            .session
            .expect(text)
            .unwrap_or_else(|e| self.stuck(&format!("no {text:?}"), e));
        let before = plain(found.before());
        self.transcript.push_str(&before);
        self.transcript.push_str(text);
        before
    }

    /// Waits for gdb's prompt; returns the text shown before it.
    pub fn expect_gdb_prompt(&mut self) -> String {
        self.expect("(gdb) ")
    }

    /// Fails a test whose program stopped showing what it should, with
    /// what a reader needs to tell why: the session's processes and
    /// their states, the task-tree dump when dumps are on
    /// (`SMOL_DEVX_STACK_ON_SIG=1` in the test's environment), and what
    /// the screen showed last.
    fn stuck(&mut self, what: &str, e: expectrl::Error) -> ! {
        let sid = self.pid().to_string();
        let processes = |sid: &str| {
            Command::new("ps")
                .args(["-o", "pid,ppid,stat,wchan:20,etime,args", "--sid", sid])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_else(|e| format!("ps: {e}"))
        };
        let before = processes(&sid);
        if std::env::var(smol_devx::stack_on_sig::ENV).as_deref() == Ok("1") {
            let root = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
            let _ = rustix::process::kill_process(root, rustix::process::Signal::USR1);
        }
        self.session
            .set_expect_timeout(Some(Duration::from_secs(4)));
        let shown = match self.session.expect(expectrl::Regex("(?s).+")) {
            Ok(found) => plain(found.as_bytes()),
            Err(e) => format!("<{e}>"),
        };
        let seen = &self.transcript;
        let mut from = seen.len().saturating_sub(4000);
        while !seen.is_char_boundary(from) {
            from += 1;
        }
        let seen = &seen[from..];
        panic!("{what}: {e}\nprocesses:\n{before}\nshown before:\n{seen}\nshown last:\n{shown}")
    }

    /// Types raw bytes (control keys, escape sequences).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.session.send(bytes).expect("type on the pty");
    }

    /// Types a line.
    pub fn send_line(&mut self, line: &str) {
        self.transcript.push_str(line);
        self.transcript.push('\n');
        self.session.send_line(line).expect("type on the pty");
    }

    /// The root's pid (the terminal's session and process-group leader).
    pub fn pid(&self) -> u32 {
        self.session.get_process().pid().as_raw() as u32
    }

    /// The terminal's settings, read through the master side, which
    /// shares them.
    fn termios(&self) -> rustix::termios::Termios {
        let master = self
            .session
            .get_process()
            .get_raw_handle()
            .expect("the pty master");
        rustix::termios::tcgetattr(&master).expect("tcgetattr")
    }

    /// The terminal's mode, like `stty -g`: input, output, control and
    /// local flags in hex, then the control characters.
    pub fn stty_g(&self) -> String {
        let t = self.termios();
        format!(
            "{:x}:{:x}:{:x}:{:x}:{:?}",
            t.input_modes.bits(),
            t.output_modes.bits(),
            t.control_modes.bits(),
            t.local_modes.bits(),
            t.special_codes
        )
    }

    /// Whether the terminal is in cooked mode: line editing and signal
    /// keys on (a line editor's raw mode clears both; echo is left to
    /// the terminal's owner: a pty starts with it off).
    pub fn cooked(&self) -> bool {
        use rustix::termios::LocalModes;
        self.termios()
            .local_modes
            .contains(LocalModes::ICANON | LocalModes::ISIG)
    }

    /// Waits for the program to end; returns what it showed last, its
    /// exit code, and whether it left the terminal cooked.
    pub fn expect_exit_cooked(mut self) -> (String, i32, bool) {
        let rest = self
            .session
            .expect(Eof)
            .unwrap_or_else(|e| self.stuck("no end of output", e));
        let text = plain(rest.as_bytes());
        let cooked = self.cooked();
        match self.session.get_process().wait() {
            Ok(WaitStatus::Exited(_, code)) => (text, code, cooked),
            other => panic!("not a normal exit: {other:?}; output {text}"),
        }
    }

    /// Sends `signal` to the terminal's foreground process group, root
    /// and every actor, as the terminal does for ctrl-c in cooked mode.
    pub fn signal_group(&self, signal: rustix::process::Signal) {
        let pgid = rustix::process::Pid::from_raw(self.pid() as i32).unwrap();
        rustix::process::kill_process_group(pgid, signal).expect("killpg");
    }

    /// Waits for the program to end; returns what it showed last and its
    /// exit code.
    pub fn expect_exit(mut self) -> (String, i32) {
        let rest = self
            .session
            .expect(Eof)
            .unwrap_or_else(|e| self.stuck("no end of output", e));
        let text = plain(rest.as_bytes());
        match self.session.get_process().wait() {
            Ok(WaitStatus::Exited(_, code)) => (text, code),
            other => panic!("not a normal exit: {other:?}; output {text}"),
        }
    }
}

/// Asserts that a `bt` shows no frame of the `crates` (its line of hidden
/// frames aside), also in the `<Type as Trait>` form.
pub fn assert_no_frame_of(bt: &str, crates: &[&str]) {
    for line in bt.lines().filter(|l| !l.contains("hidden")) {
        let frame = line.trim_start().trim_start_matches('<');
        let shown = crates.iter().find(|c| frame.starts_with(**c));
        assert!(shown.is_none(), "{shown:?} frame shown:\n{bt}");
    }
}

/// Whether every part appears in the text before a prompt.
pub fn in_prompt_msg(before: &str, parts: &[&str]) -> bool {
    parts.iter().all(|p| before.contains(p))
}

/// Asserts that every part appears in the text before a prompt.
pub fn assert_before(before: &str, parts: &[&str]) {
    for part in parts {
        assert!(before.contains(part), "{part:?} not in:\n{before}");
    }
}

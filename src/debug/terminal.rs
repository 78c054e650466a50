//! The terminal's mode as state the tree shares.
//!
//! A line editor in raw mode clears `ISIG`: while a REPL reads, ctrl-c
//! raises no SIGINT at all, and a holder that dies in raw mode would leave
//! ctrl-c dead for every process. So the root snapshots the mode at
//! start-up and puts it back ([`restore_terminal`])
//! whenever a holder releases abnormally or dies, and when it exits; a
//! subactor that leaves mid-line cooks the terminal itself
//! ([`leave_terminal`]).

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The terminal mode at start-up (root, stdin a terminal).
static SAVED_MODE: OnceLock<Option<rustix::termios::Termios>> = OnceLock::new();

/// Root: remembers the terminal mode, once, before anything can prompt.
pub(crate) fn snapshot() {
    SAVED_MODE.get_or_init(|| {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        rustix::termios::isatty(fd)
            .then(|| rustix::termios::tcgetattr(fd).ok())
            .flatten()
    });
}

/// Puts the terminal back in the mode the root found it in. Root only;
/// does nothing when stdin is not a terminal.
pub fn restore_terminal() {
    let Some(Some(mode)) = SAVED_MODE.get() else {
        return;
    };
    let stdin = std::io::stdin();
    let restored =
        rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, mode);
    match restored {
        Ok(()) => log::debug!("terminal mode restored"),
        Err(e) => log::warn!("cannot restore the terminal mode: {e}"),
    }
}

/// What a subactor calls on its way out, however it goes: if its REPL
/// is reading a line (the terminal in a line editor's raw mode), puts the
/// terminal back in cooked mode. The root's snapshot is not at hand (the
/// root may be gone): line editing, echo, signal keys, CR to NL on input
/// and output processing are turned back on.
pub fn leave_terminal() {
    if !editing() {
        return;
    }
    use rustix::termios::{InputModes, LocalModes, OptionalActions, OutputModes};
    let stdin = std::io::stdin();
    let Ok(mut mode) = rustix::termios::tcgetattr(stdin.as_fd()) else {
        return;
    };
    mode.local_modes |=
        LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG | LocalModes::IEXTEN;
    mode.input_modes |= InputModes::ICRNL;
    mode.output_modes |= OutputModes::OPOST | OutputModes::ONLCR;
    if let Err(e) = rustix::termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &mode) {
        log::warn!("cannot put the terminal back in cooked mode: {e}");
    }
}

/// How many threads of this process are in the line editor.
static EDITING: AtomicUsize = AtomicUsize::new(0);

/// Whether a REPL of this process is reading a line in the line editor,
/// with the terminal in raw mode.
pub fn editing() -> bool {
    EDITING.load(Ordering::SeqCst) > 0
}

/// Counts a thread in the line editor for as long as it lives.
pub(crate) struct Editing;

impl Editing {
    pub(crate) fn enter() -> Self {
        EDITING.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for Editing {
    fn drop(&mut self) {
        EDITING.fetch_sub(1, Ordering::SeqCst);
    }
}

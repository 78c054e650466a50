//! Helpers for tests that run example binaries as real processes.

#![allow(dead_code)] // each test binary uses a part

pub mod pty;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The built example `name`, building it first if needed. Cargo sets no
/// `CARGO_BIN_EXE_*` for examples: they sit in `target/<profile>/examples`
/// next to this test's `deps` directory.
pub fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join(name);
    if !built.iter().any(|b| b == name) {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--example", name]);
        if !cfg!(feature = "runtime") {
            cmd.arg("--no-default-features");
        }
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building example {name} failed");
        built.push(name.to_owned());
    }
    path
}

/// A fresh temporary directory of this test run's own, `name`d: what a
/// tree started with it as `$TMPDIR` leaves there is that tree's.
pub fn fresh_tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smol-devx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Asserts that the tree left nothing in `dir` (from [`fresh_tmpdir`]),
/// then removes it.
pub fn assert_left_nothing_in(dir: &std::path::Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}");
    std::fs::remove_dir(dir).unwrap();
}

/// Whether gdb is on `PATH`. CI installs it (`.ci/run`), and there its
/// absence fails the test; elsewhere a test that needs it says it was
/// skipped, and why.
pub fn gdb_installed() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("gdb").is_file()));
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "gdb is missing on CI: .ci/run installs it"
        );
        eprintln!("SKIPPED: gdb is not installed (apt-get install gdb); the gdb hand-off is not tested here");
    }
    found
}

/// A running example with its stdout read line by line.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    /// Starts `example` with `args`; `env` is added to the environment.
    pub fn start(example_name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(example(example_name));
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // stdout and stderr (prefixed `err: `) arrive as one stream of lines.
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        forward(stdout, "", tx.clone());
        forward(stderr, "err: ", tx);
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Closes the example's stdin.
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// The root's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line containing `part`; returns it.
    pub fn expect(&mut self, part: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(part) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line with {part:?} within {timeout:?}; saw {:#?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("output ended before {part:?}; saw {:#?}", self.seen)
                }
            }
        }
    }

    /// Waits for one line containing each of `parts`, in any order (lines
    /// from concurrent processes interleave freely); returns them in the
    /// order of `parts`.
    pub fn expect_all(&mut self, parts: &[&str], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut found: Vec<Option<String>> = vec![None; parts.len()];
        for line in &self.seen {
            for (i, part) in parts.iter().enumerate() {
                if found[i].is_none() && line.contains(part) {
                    found[i] = Some(line.clone());
                }
            }
        }
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => panic!(
                    "not all of {parts:?} within {timeout:?}; saw {:#?}",
                    self.seen
                ),
            };
            self.seen.push(line.clone());
            for (i, part) in parts.iter().enumerate() {
                if found[i].is_none() && line.contains(part) {
                    found[i] = Some(line.clone());
                }
            }
        }
        found.into_iter().map(Option::unwrap).collect()
    }

    /// Reads the rest of the output and the exit status.
    pub fn finish(mut self, timeout: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("did not exit within {timeout:?}; saw {:#?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn forward(
    from: impl std::io::Read + Send + 'static,
    prefix: &'static str,
    to: std::sync::mpsc::Sender<String>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if to.send(format!("{prefix}{line}")).is_err() {
                break;
            }
        }
    });
}

/// Process state letter from `/proc/<pid>/stat` (`R`, `S`, `Z`...), or
/// `None` when the process is gone entirely.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether `pid` is running (exists and is not a zombie).
pub fn running(pid: u32) -> bool {
    matches!(proc_state(pid), Some(state) if state != 'Z')
}

/// The pid printed on a line like `name pid 1234 ...`.
pub fn pid_on(line: &str) -> u32 {
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        if word == "pid" {
            return words.next().unwrap().parse().unwrap();
        }
    }
    panic!("no pid on {line:?}")
}

/// `examples/<name>.rs:<line>` of the example's `pause!(` (or
/// `pause_blocking!(`) call: where its REPL must say it stopped.
pub fn pause_site(example: &str) -> String {
    let path = format!("examples/{example}.rs");
    let source = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let n = source
        .lines()
        .position(|l| l.contains("pause!(") || l.contains("pause_blocking!("))
        .unwrap_or_else(|| panic!("no pause in {path}"))
        + 1;
    format!("{path}:{n}")
}

/// The pids of every actor line (`<name> pid <n> ...`) on stdout.
pub fn actor_pids(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter(|l| !l.starts_with("err: ") && l.contains(" pid "))
        .map(|l| pid_on(l))
        .collect()
}

/// The pids on the exact `<name> pid <n>` lines of a screen's text:
/// the actors' own lines, not log lines that mention a pid (on a
/// terminal, a log line may follow typed text on the same line).
pub fn own_pids(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [_, "pid", n] => n.parse().ok(),
            _ => None,
        })
        .collect()
}

/// Whether some line satisfies `pred`.
pub fn has(lines: &[String], pred: impl Fn(&str) -> bool) -> bool {
    lines.iter().any(|l| pred(l))
}

/// SIGKILLs `pid`.
pub fn kill9(pid: u32) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
}

/// Waits until none of `pids` runs; returns those still running.
pub fn wait_not_running(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| running(p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that none of `pids` exists any more, not even as a zombie.
pub fn assert_reaped(pids: &[u32]) {
    let left = wait_gone(pids, Duration::from_secs(5));
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

fn wait_gone(pids: &[u32], timeout: Duration) -> Vec<(u32, char)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<(u32, char)> = pids
            .iter()
            .filter_map(|&p| proc_state(p).map(|s| (p, s)))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

//! `cargo bench --bench handoff`: the time from `c` typed in one actor's
//! REPL to the next actor's prompt on screen, through a real
//! pseudo-terminal, against the terminal's own floor measured in the same
//! run (a line through `cat` on a pty and back).
//!
//! The bench re-executes itself on a pty as an actor tree (a root and two
//! subactors pausing in turns, forever) and plays the user. It also times
//! `q` in a subactor's REPL to the root's crash REPL on that quit.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{header, Stats};
use expectrl::Session;
use smol_devx::actor::debugger::install;
use smol_devx::actor::{Actor, ActorSpec, Nursery, Runtime};
use smol_devx::debug::pause::PauseError;
use smol_devx::debug::repl::{CRASH_MSG, PAUSE_MSG, PROMPT};
use smol_devx::msg::RemoteError;

const TREE_ENV: &str = "SMOL_DEVX_HANDOFF_TREE";
const HANDOFFS: usize = 200;

async fn pause_forever(_actor: Actor, _: ()) -> Result<(), PauseError> {
    loop {
        smol_devx::pause!().await?;
    }
}

/// The program under test: two subactors taking turns at the terminal
/// (one, `ping`, when `children` is 1).
fn tree(children: usize) -> std::process::ExitCode {
    install(Runtime::new().debug_mode(true))
        .entry("pause_forever", pause_forever)
        .run(move |root| async move {
            let mut nursery = Nursery::new(&root);
            for name in ["ping", "pong"].into_iter().take(children) {
                nursery
                    .run_in_actor(ActorSpec::new("pause_forever").name(name), &())
                    .await?;
            }
            nursery.join().await?;
            Ok::<_, RemoteError>(())
        })
}

fn pty(cmd: Command) -> Session {
    let mut session = Session::spawn(cmd).expect("spawn on a pty");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
}

/// The floor: a line typed into `cat` on a pty until it comes back.
fn terminal_floor() -> Stats {
    let mut cat = pty(Command::new("cat"));
    // Only cat's copy of the line comes back, not the terminal's echo.
    cat.get_process_mut().set_echo(false, None).unwrap();
    let mut per_op = Vec::new();
    for i in 0..HANDOFFS {
        let line = format!("line{i}");
        let start = Instant::now();
        cat.send_line(&line).unwrap();
        cat.expect(format!("{line}\r\n").as_str()).unwrap();
        per_op.push(start.elapsed().as_nanos() as f64);
    }
    Stats::from_samples("baseline: a line through cat on a pty", per_op)
}

/// Times `c` to the next prompt, `HANDOFFS` times. Only the times when
/// the terminal went to the other actor count: the actor that continued
/// may pause again and be granted before its peer's request is back in
/// the queue (the peer re-requests after its own release's round trip,
/// which a loaded machine can delay past the whole REPL cycle). That is
/// the lock's FIFO order, not a miss; the bench reports how often.
fn handoffs() -> Stats {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(TREE_ENV, "2");
    let mut tree = pty(cmd);
    tree.expect(PROMPT).unwrap();
    // Both subactors at their pause: one at the prompt, one queued.
    std::thread::sleep(Duration::from_millis(300));
    let mut per_op = Vec::new();
    let mut regrants = 0;
    let mut holder = String::new();
    for _ in 0..HANDOFFS {
        let start = Instant::now();
        tree.send_line("c").unwrap();
        let before = tree.expect(PROMPT).unwrap();
        let took = start.elapsed().as_nanos() as f64;
        let shown = String::from_utf8_lossy(before.before()).into_owned();
        let next = if shown.contains(&format!("{PAUSE_MSG} ('ping'")) {
            "ping"
        } else {
            "pong"
        };
        if next == holder {
            regrants += 1;
        } else {
            per_op.push(took);
        }
        holder = next.to_owned();
    }
    // Quit there, then continue the root's crash REPL on that quit.
    tree.send_line("q").unwrap();
    tree.expect(PROMPT).unwrap();
    tree.send_line("c").unwrap();
    let _ = tree.expect(expectrl::Eof);
    println!(
        "  {} of {HANDOFFS} went to the other actor; {regrants} back to the one that continued",
        per_op.len()
    );
    assert!(
        per_op.len() > HANDOFFS / 2,
        "the terminal went back to the same actor {regrants} times of {HANDOFFS}"
    );
    Stats::from_samples("`c` in one actor to the next actor's prompt", per_op)
}

/// How many trees `quits` runs.
const QUITS: usize = 20;

/// Times `q` in a subactor's REPL to the root's crash REPL on that quit,
/// one tree of one pausing subactor per sample: the root learns that the
/// child is done from its result, with no settle timer.
fn quits() -> Stats {
    let per_op = (0..QUITS)
        .map(|_| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.env(TREE_ENV, "1");
            let mut tree = pty(cmd);
            tree.expect(PROMPT).unwrap();
            let start = Instant::now();
            tree.send_line("q").unwrap();
            tree.expect(CRASH_MSG).unwrap();
            tree.expect(PROMPT).unwrap();
            let took = start.elapsed().as_nanos() as f64;
            tree.send_line("c").unwrap();
            let _ = tree.expect(expectrl::Eof);
            took
        })
        .collect();
    Stats::from_samples("`q` in a subactor to the root's crash prompt", per_op)
}

fn main() -> std::process::ExitCode {
    if let Ok(children) = std::env::var(TREE_ENV) {
        return tree(children.parse().expect("a count of children"));
    }
    header("handoff");
    let floor = terminal_floor();
    floor.report(None);
    let handoff = handoffs();
    handoff.report(Some(&floor));
    quits().report(Some(&floor));
    std::process::ExitCode::SUCCESS
}

//! `cargo bench --bench repl`: the time from a long line typed at a REPL
//! prompt to the next prompt, through a real pseudo-terminal, against a
//! 1 KiB line measured in the same run. The REPL holds the tree lock all
//! the while, so the time must grow linearly with the line: 64 KiB and
//! 256 KiB lines (past the REPL's 4 KiB cap, refused) take about 4x
//! apart, not 16x.
//!
//! The bench re-executes itself on a pty as a root that pauses forever,
//! and types.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{header, Screen, Stats};
use expectrl::Session;
use smol_devx::actor::debugger::install;
use smol_devx::actor::Runtime;
use smol_devx::debug::pause::PauseError;
use smol_devx::debug::repl::PROMPT;

const TREE_ENV: &str = "SMOL_DEVX_REPL_BENCH_TREE";

/// The program under test: a root pausing forever.
fn tree() -> std::process::ExitCode {
    install(Runtime::new().debug_mode(true)).run(|_root| async {
        loop {
            smol_devx::pause!().await?;
        }
        #[allow(unreachable_code)]
        Ok::<_, PauseError>(())
    })
}

/// Types `p` and `bytes` characters, then Enter, and waits for the next
/// prompt; `samples` times.
fn typed(screen: &mut Screen, name: &str, bytes: usize, samples: usize) -> Stats {
    let line = format!("p {}\r", "y".repeat(bytes));
    let per_op = (0..samples)
        .map(|_| {
            let from = screen.len();
            let start = Instant::now();
            screen.keys.write_all(line.as_bytes()).unwrap();
            screen.wait_for(from, PROMPT);
            start.elapsed().as_nanos() as f64
        })
        .collect();
    Stats::from_samples(name, per_op)
}

fn main() -> std::process::ExitCode {
    if std::env::var_os(TREE_ENV).is_some() {
        return tree();
    }
    header("repl");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(TREE_ENV, "1");
    let mut repl = Session::spawn(cmd).expect("spawn on a pty");
    repl.set_expect_timeout(Some(Duration::from_secs(60)));
    repl.expect(PROMPT).unwrap();
    let mut screen = Screen::new(&repl);
    let base = typed(
        &mut screen,
        "baseline: a 1 KiB line to the next prompt",
        1024,
        20,
    );
    base.report(None);
    let at_64k = typed(
        &mut screen,
        "a 64 KiB line (refused) to the next prompt",
        65536,
        5,
    );
    at_64k.report(Some(&base));
    let at_256k = typed(
        &mut screen,
        "a 256 KiB line (refused) to the next prompt",
        262144,
        5,
    );
    at_256k.report(Some(&base));
    println!(
        "  256 KiB / 64 KiB: {:.2}x (linear: 4x, quadratic: 16x)",
        at_256k.median_ns() / at_64k.median_ns()
    );
    let from = screen.len();
    screen.keys.write_all(b"q\r").unwrap();
    screen.wait_for(from, PROMPT);
    screen.keys.write_all(b"c\r").unwrap();
    let _ = repl.get_process_mut().wait();
    std::process::ExitCode::SUCCESS
}

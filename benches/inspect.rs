//! `cargo bench --bench inspect`: the time from `locals` or `p <expr>`
//! typed at a REPL prompt to the next prompt, through a real
//! pseudo-terminal, in a debug build of `examples/locals.rs` (the
//! `inspector` subactor paused in `fn_with_state`). Each answer attaches
//! gdb to the subactor, reads the frame and detaches. The baseline, in
//! the same run, is `bt` (answered without gdb). The target: under 1 s
//! median.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{header, Screen, Stats};
use smol_devx::debug::repl::PROMPT;

/// The debug build of `examples/locals.rs`, built first: the build the
/// target is set for, whatever profile this bench runs in.
fn locals_example() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "locals"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo");
    assert!(status.success(), "building examples/locals.rs failed");
    // This bench runs from <target>/release/deps.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    target.join("debug/examples/locals")
}

/// Types `line` and waits for the next prompt, `samples` times.
fn typed(screen: &mut Screen, name: &str, line: &str, samples: usize) -> Stats {
    let per_op = (0..samples)
        .map(|_| {
            let from = screen.len();
            let start = Instant::now();
            screen
                .keys
                .write_all(format!("{line}\r").as_bytes())
                .unwrap();
            screen.wait_for(from, PROMPT);
            start.elapsed().as_nanos() as f64
        })
        .collect();
    Stats::from_samples(name, per_op)
}

fn main() {
    header("inspect");
    if smol_devx::debug::gdb::native_debugger().is_none() {
        println!("  skipped: gdb is not installed (apt-get install gdb)");
        return;
    }
    let mut repl = expectrl::Session::spawn(Command::new(locals_example())).expect("a pty");
    repl.set_expect_timeout(Some(Duration::from_secs(60)));
    repl.expect(PROMPT).unwrap();
    let mut screen = Screen::new(&repl);
    let base = typed(&mut screen, "baseline: bt (no gdb) to the prompt", "bt", 20);
    base.report(None);
    let locals = typed(
        &mut screen,
        "locals (3 variables) to the prompt",
        "locals",
        15,
    );
    locals.report(Some(&base));
    let p = typed(&mut screen, "p port to the prompt", "p port", 15);
    p.report(Some(&base));
    typed(&mut screen, "up", "up", 1);
    let caller = typed(&mut screen, "locals, the caller's frame", "locals", 10);
    caller.report(Some(&base));
    for stats in [&locals, &p, &caller] {
        let median_s = stats.median_ns() / 1e9;
        let verdict = if median_s < 1.0 { "met" } else { "NOT met" };
        println!(
            "  {}: median {median_s:.3} s, target < 1 s: {verdict}",
            stats.name
        );
    }
    screen.keys.write_all(b"c\r").unwrap();
    let _ = repl.get_process_mut().wait();
}

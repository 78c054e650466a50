//! Crash REPLs through a real pseudo-terminal: scenarios 3, 5, 7-9 and
//! 11-15.

#![cfg(feature = "runtime")]

mod common;

use common::pty::{assert_before, assert_no_frame_of, Pty};
use smol_devx::debug::repl::{CRASH_MSG, PAUSE_MSG};

/// Runtime crates that `bt` must not show.
const RUNTIME: [&str; 4] = ["async_task::", "async_executor::", "smol::", "smol_devx::"];

#[test]
fn scenario_3_root_actor_error() {
    let mut pty = Pty::spawn("root_actor_error", &[]);
    let before = pty.expect_prompt();
    assert_before(
        &before,
        &[
            CRASH_MSG,
            "('root', '",
            "AssertionError",
            "assertion failed: assert 0",
        ],
    );
    pty.send_line("bt");
    let bt = pty.expect_prompt();
    assert!(bt.contains("root_actor_error::main"), "{bt}");
    assert_no_frame_of(&bt, &RUNTIME);
    pty.send_line("q");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(rest.contains("assertion failed: assert 0"), "{rest}");
}

#[test]
fn scenario_5_subactor_error_climbs_to_the_root() {
    let mut pty = Pty::spawn("subactor_error", &[]);
    let first = pty.expect_prompt();
    assert_before(
        &first,
        &[
            CRASH_MSG,
            "('name_error', '",
            "NameError",
            "name 'doggypants' is not defined",
        ],
    );
    assert!(!first.contains("('root', '"), "{first}");
    // A plain error captured nothing where it was raised: said once,
    // with the way to get a site, instead of a backtrace of the boxing.
    assert!(first.contains("return smol_devx::Report"), "{first}");
    after_c_a_crash_repl_of(
        &mut pty,
        "root",
        &["RemoteActorError: ('name_error', '", "raised NameError"],
    );
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(rest.contains("RemoteActorError: ('name_error'"), "{rest}");
}

/// `gdb` in a subactor's crash REPL attaches to that subactor; once gdb
/// detaches and quits, the same crash REPL comes back, and the tree goes
/// on as before.
#[test]
fn gdb_from_a_crash_repl_comes_back_to_it() {
    if !common::gdb_installed() {
        return;
    }
    let mut pty = Pty::spawn("subactor_error", &[]);
    let first = pty.expect_prompt();
    assert_before(&first, &[CRASH_MSG, "('name_error', '"]);
    pty.send_line("gdb");
    pty.expect_gdb_prompt();
    pty.send_line("detach");
    pty.expect_gdb_prompt();
    pty.send_line("quit");
    let again = pty.expect_prompt();
    assert_before(&again, &[CRASH_MSG, "('name_error', '", "NameError"]);
    assert!(!again.contains("('root', '"), "{again}");
    pty.send_line("c");
    let root = pty.expect_prompt();
    assert_before(&root, &[CRASH_MSG, "('root', '", "raised NameError"]);
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
}

/// A panic while another actor's REPL owns the terminal: std's message
/// is not printed over that REPL; the panicking actor's own crash REPL
/// shows it, with its line.
#[test]
fn a_panic_prints_nothing_over_another_actor_s_repl() {
    let mut pty = Pty::spawn("panic_beside_a_pause", &[]);
    let first = pty.expect_prompt();
    assert_before(&first, &[PAUSE_MSG, "('pauser', '"]);
    // `panicker` panics once `pauser` holds the lock, then queues.
    let mut waiting = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !waiting.contains("panicker") {
        assert!(std::time::Instant::now() < deadline, "{waiting}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        pty.send_line("lock");
        waiting.push_str(&pty.expect_prompt());
    }
    pty.send_line("c");
    let crash = pty.expect_prompt();
    let line = line_in("panic_beside_a_pause", "empty[index]");
    for seen in [&waiting, &crash] {
        assert!(
            !seen.contains("panicked at"),
            "std's message shown:\n{seen}"
        );
    }
    assert_before(
        &crash,
        &[
            CRASH_MSG,
            "('panicker', '",
            "raised panic: index out of bounds",
            &format!("(at examples/panic_beside_a_pause.rs:{line}:"),
            &format!("> examples/panic_beside_a_pause.rs:{line}"),
        ],
    );
    pty.send_line("l");
    let listing = pty.expect_prompt();
    assert!(listing.contains(&format!("{line:>5} -> ")), "{listing}");
    pty.send_line("c");
    let root = pty.expect_prompt();
    assert_before(&root, &[CRASH_MSG, "('root', '", "raised panic"]);
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(!rest.contains("panicked at"), "{rest}");
}

/// Leaves the REPL with `c`; the next prompt must be `actor`'s crash REPL
/// showing `parts`.
fn after_c_a_crash_repl_of(pty: &mut Pty, actor: &str, parts: &[&str]) -> String {
    pty.send_line("c");
    let shown = pty.expect_prompt();
    let header = format!("{CRASH_MSG} ('{actor}', '");
    assert_before(&shown, &[&header]);
    assert_before(&shown, parts);
    shown
}

/// The line of `examples/<example>.rs` holding `needle`.
fn line_in(example: &str, needle: &str) -> usize {
    let path = format!("{}/examples/{example}.rs", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(path).unwrap();
    source.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// The line of `examples/sync_crash_handler.rs` holding `needle`.
fn line_of(needle: &str) -> usize {
    line_in("sync_crash_handler", needle)
}

/// A failure returned through `?` as a `smol_devx::Report`: both crash
/// REPLs, the failing actor's and the root's, open on the `?`'s line,
/// with `bt` starting in the function that failed and `l` showing the
/// line, read from another working directory than the package's.
#[test]
fn a_report_s_site_shows_in_every_crash_repl_up_the_tree() {
    let site = format!(
        "crash_site.rs:{}",
        line_in("crash_site", "text.trim().parse::<u16>()?")
    );
    // Its own temporary directory, which must be empty again at the end.
    let tmp = common::fresh_tmpdir("crash-site");
    let tmp_var = tmp.to_str().unwrap();
    let mut pty = Pty::spawn_in("crash_site", &tmp, &[("TMPDIR", tmp_var)]);
    let first = pty.expect_prompt();
    assert_before(&first, &[CRASH_MSG, "('loader', '", "ParseIntError", &site]);
    pty.send_line("bt");
    let bt = pty.expect_prompt();
    let at = |f: &str| bt.find(f).unwrap_or_else(|| panic!("{f} not in:\n{bt}"));
    assert!(
        at("crash_site::parse_port") < at("crash_site::load_config"),
        "{bt}"
    );
    assert_no_frame_of(&bt, &RUNTIME);
    pty.send_line("l");
    let listing = pty.expect_prompt();
    assert!(
        listing.contains("->     let port = text.trim().parse::<u16>()?;"),
        "{listing}"
    );
    // `up` selects the caller; `l` follows it.
    pty.send_line("up");
    let up = pty.expect_prompt();
    assert!(up.contains("#1 crash_site::load_config"), "{up}");
    pty.send_line("l");
    let caller = pty.expect_prompt();
    assert!(
        caller.contains("->     let port = parse_port(\"eighty\")?;"),
        "{caller}"
    );
    after_c_a_crash_repl_of(
        &mut pty,
        "root",
        &[
            "RemoteActorError: ('loader', '",
            "raised ParseIntError",
            &site,
            "(remote backtrace, from ('loader', '",
        ],
    );
    let root = pty.pid();
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    common::assert_reaped(&[root]);
    common::assert_left_nothing_in(&tmp);
}

#[test]
fn scenario_15_crash_handler_on_a_panic_then_the_same_panic() {
    let mut pty = Pty::spawn_with_args("sync_crash_handler", &["panic"], &[]);
    let before = pty.expect_prompt();
    let at = format!(
        "(at examples/sync_crash_handler.rs:{}:",
        line_of("empty[3]")
    );
    assert_before(
        &before,
        &[
            CRASH_MSG,
            "('sync_crash_handler', '",
            "raised panic: index out of bounds",
            &at,
        ],
    );
    // `l` shows the panic's line.
    pty.send_line("l");
    let listing = pty.expect_prompt();
    let marked = format!("{:>5} -> ", line_of("empty[3]"));
    assert!(listing.contains(&marked), "{marked:?} not in:\n{listing}");
    pty.send_line("q");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 101, "the original panic: {rest}");
}

#[test]
fn scenario_15_crash_handler_on_an_error_then_the_same_error() {
    let mut pty = Pty::spawn_with_args("sync_crash_handler", &["error"], &[]);
    let before = pty.expect_prompt();
    assert_before(
        &before,
        &[
            CRASH_MSG,
            "raised ParseError: cannot parse \"forty-two\" as a number",
        ],
    );
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 1, "{rest}");
    assert!(rest.contains("ParseError(\"forty-two\")"), "{rest}");
}

#[test]
fn scenario_12_only_the_debugged_actor_opens_a_repl() {
    let mut pty = Pty::spawn("per_actor_debug", &[]);
    let before = pty.expect_prompt();
    assert_before(
        &before,
        &[CRASH_MSG, "('debugged_boi', '", "debugged_boi gave up"],
    );
    // crash_boi fails meanwhile; the root waits for the REPL to end.
    std::thread::sleep(std::time::Duration::from_millis(600));
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(!rest.contains(CRASH_MSG), "a second crash REPL:\n{rest}");
    assert!(rest.contains("RemoteActorError: ('crash_boi', '"), "{rest}");
    assert!(rest.contains("crash_boi gave up"), "{rest}");
}

#[test]
fn scenario_13_post_mortem_on_demand_and_automatic_in_order() {
    let mut pty = Pty::spawn("pm_in_subactor", &[]);
    let expected: [&[&str]; 4] = [
        // The child's own post_mortem, then its automatic crash REPL.
        &[
            CRASH_MSG,
            "('name_error', '",
            "raised NameError: name 'doggypants'",
        ],
        &[
            CRASH_MSG,
            "('name_error', '",
            "raised NameError: name 'doggypants'",
        ],
        // The root's post_mortem on the boxed error, then its own.
        &[
            CRASH_MSG,
            "('root', '",
            "RemoteActorError: ('name_error', '",
        ],
        &[
            CRASH_MSG,
            "('root', '",
            "RemoteActorError: ('name_error', '",
        ],
    ];
    for parts in expected {
        let before = pty.expect_prompt();
        assert_before(&before, parts);
        pty.send_line("c");
    }
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(!rest.contains(CRASH_MSG), "a fifth REPL:\n{rest}");
}

#[test]
fn scenario_9_a_crash_header_at_every_level_innermost_first() {
    let mut pty = Pty::spawn("multi_nested_subactors_error_up_through_nurseries", &[]);
    let levels = [
        "name_error",
        "spawn_until_0",
        "spawn_until_1",
        "spawner0",
        "root",
    ];
    for (i, level) in levels.iter().enumerate() {
        let before = pty.expect_prompt();
        assert_before(
            &before,
            &[CRASH_MSG, &format!("('{level}', '"), "raised NameError"],
        );
        if i > 0 {
            // Boxed on the way up, it still names where it started, and
            // every hop it came through.
            assert_before(&before, &["RemoteActorError: ('name_error', '"]);
            for hop in &levels[1..i] {
                assert_before(&before, &[&format!("('{hop}', '")]);
            }
        }
        pty.send_line("c");
    }
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(!rest.contains(CRASH_MSG), "a sixth REPL:\n{rest}");
}

#[test]
fn scenario_11_a_fast_error_in_the_root_waits_for_no_one() {
    let mut pty = Pty::spawn("fast_error_in_root_after_spawn", &[]);
    let before = pty.expect_prompt();
    assert_before(&before, &[CRASH_MSG, "('root', '", "raised AssertionError"]);
    let child: u32 = before
        .lines()
        .find_map(|l| l.strip_prefix("sleep_forever pid "))
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no child pid in:\n{before}"));
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    common::assert_reaped(&[child]);
}

#[test]
fn scenario_8_the_root_waits_for_its_children_s_repls_before_teardown() {
    let mut pty = Pty::spawn("multi_subactor_root_errors", &[]);
    let mut seen = Vec::new();
    loop {
        let before = pty.expect_prompt();
        let actor = ["name_error_1", "name_error", "spawn_error", "root"]
            .into_iter()
            .find(|a| before.contains(&format!("{CRASH_MSG} ('{a}', '")))
            .unwrap_or_else(|| panic!("no crash header in:\n{before}"));
        seen.push(actor);
        pty.send_line("c");
        if actor == "root" {
            assert_before(&before, &["raised AssertionError: assert 0"]);
            break;
        }
        assert!(seen.len() < 10, "{seen:?}");
    }
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    // Every child's crash REPL came before the root's, none was cut.
    let root = seen.iter().position(|a| *a == "root").unwrap();
    for child in ["name_error", "name_error_1", "spawn_error"] {
        let at = seen
            .iter()
            .position(|a| a == &child)
            .unwrap_or_else(|| panic!("{child}: {seen:?}"));
        assert!(at < root, "{seen:?}");
    }
}

#[test]
fn scenario_7_a_daemon_pausing_in_a_stream_and_a_crashing_sibling() {
    let mut pty = Pty::spawn("multi_daemon_subactors", &[]);
    let mut seen = Vec::new();
    // The daemon pauses again a few ms after each `c`, while the
    // sibling's crash (a backtrace resolved in a debug build: hundreds of
    // ms of CPU on a loaded machine) takes its turn when it comes: a
    // deadline, not a number of rounds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no crash REPL of the root within 60 s: {} prompts, last {:?}",
            seen.len(),
            &seen[seen.len().saturating_sub(5)..]
        );
        let before = pty.expect_prompt();
        let (actor, crash) = if before.contains(&format!("{PAUSE_MSG} ('bp_forever', '")) {
            ("bp_forever", false)
        } else if before.contains(&format!("{CRASH_MSG} ('name_error', '")) {
            ("name_error", true)
        } else if before.contains(&format!("{CRASH_MSG} ('root', '")) {
            ("root", true)
        } else {
            panic!("unexpected prompt:\n{before}")
        };
        seen.push(actor);
        if actor == "root" {
            assert_before(
                &before,
                &["RemoteActorError: ('name_error', '", "raised NameError"],
            );
            pty.send_line("c");
            break;
        }
        assert_eq!(crash, actor != "bp_forever");
        let crash_shown = seen.contains(&"name_error");
        pty.send_line(if actor == "bp_forever" && crash_shown {
            "q"
        } else {
            "c"
        });
    }
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(
        seen.contains(&"bp_forever") && seen.contains(&"name_error"),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&"root"), "{seen:?}");
    // The daemon was torn down by its cancel, not by signals.
    assert!(!rest.contains("still running"), "{rest}");
}

/// Scenario 14: a pause inside the teardown of an actor being cancelled,
/// by the root or (`nested`) by a subactor between them. The REPL opens
/// after the cancel, outlives several of the nursery's grace periods (its
/// signal escalation waits for the debugger), and works; after `c` the
/// teardown ends, then the cancel completes.
fn scenario_14(args: &[&str], canceller: &str) {
    let mut pty = Pty::spawn_with_args("shielded_pause", args, &[]);
    let before = pty.expect_prompt();
    assert_before(
        &before,
        &[
            &format!("{canceller}: cancelling the worker"),
            "INSIDE CANCELLED TEARDOWN",
            PAUSE_MSG,
            "('cancelled_worker', '",
        ],
    );
    assert!(
        before.find("INSIDE CANCELLED TEARDOWN") < before.find(PAUSE_MSG),
        "{before}"
    );
    let pids = common::own_pids(&before);
    assert_eq!(pids.len(), 1 + args.len() + 1, "{before}");
    // The example's grace is 500 ms: three of them pass with the REPL up.
    std::thread::sleep(std::time::Duration::from_millis(1600));
    pty.send_line("p step");
    assert_before(&pty.expect_prompt(), &["step = \"teardown\""]);
    pty.send_line("c");
    let after = pty.expect(&format!("{canceller}: the worker is gone"));
    assert!(after.contains("teardown done"), "{after}");
    assert!(
        !after.contains("SIGTERM") && !after.contains("KILL"),
        "{after}"
    );
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 0, "{rest}");
    common::assert_reaped(&pids);
}

#[test]
fn scenario_14_a_pause_inside_a_cancelled_actor_s_teardown() {
    scenario_14(&[], "root");
}

#[test]
fn scenario_14_the_same_when_the_canceller_is_a_subactor() {
    scenario_14(&["nested"], "middle");
}

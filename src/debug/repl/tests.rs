//! The REPL's tests: commands, frames, limits, on scripted input.

use super::*;

fn session() -> Session {
    Session {
        kind: Kind::Pause,
        actor: ActorUid::new("breakpoint_forever", "b1"),
        location: Some(Location {
            file: file!().into(),
            line: line!(),
        }),
        values: vec![("x", "42".into()), ("name", "\"bob\"".into())],
        error: vec![],
        backtrace: "   0: std::backtrace::Backtrace::force_capture\n             at /rustc/x/library/std/src/backtrace.rs:312:9\n   1: smol_devx::debug::pause::pause\n   2: my_app::handler\n             at examples/app.rs:12:5\n   3: async_task::raw::RawTask::run\n".into(),
        waiting: vec![ActorUid::new("name_error", "n"), ActorUid::new("spawn_error", "s")],
        lock_state: std::sync::Arc::new(|| "tree lock held by ('breakpoint_forever', 'b1')".into()),
        task: None,
        native: Some(std::sync::Arc::new(|frame, query| {
            let LiveFrame { file, line, nth, .. } = frame;
            Ok(format!("<gdb: {query:?} at {file}:{line} #{nth}>"))
        })),
    }
}

fn drive(script: &str) -> (Outcome, String) {
    let mut out = Vec::new();
    let outcome = run(&session(), &mut Script::new(script), &mut out).unwrap();
    (outcome, String::from_utf8(out).unwrap())
}

#[test]
fn banner_then_commands_then_continue() {
    let (outcome, out) = drive("p x; p nope; bt; lock; c; p x");
    assert_eq!(outcome, Outcome::Continue);
    let header = format!("{PAUSE_MSG} ('breakpoint_forever', 'b1')");
    assert!(out.starts_with(&header), "{out}");
    assert!(
        out.contains("2 actors waiting for the terminal: name_error, spawn_error"),
        "{out}"
    );
    assert!(out.contains("(devx) p x\nx = 42"), "{out}");
    // What pause! did not capture, gdb evaluates in the pause's frame.
    assert!(
        out.contains("nope = <gdb: Print(\"nope\") at examples/app.rs:12 #0>"),
        "{out}"
    );
    // The selected frame (the innermost of the program's) is marked.
    assert!(
        out.contains("->my_app::handler\n      at examples/app.rs:12:5"),
        "{out}"
    );
    assert!(
        !out.contains("async_task::raw"),
        "runtime frame shown: {out}"
    );
    assert!(out.contains("(3 runtime frames hidden"), "{out}");
    assert!(out.contains("tree lock held by"), "{out}");
    // Nothing after `c` runs.
    assert_eq!(out.matches("x = 42").count(), 1, "{out}");
}

#[test]
fn bt_full_shows_everything_and_q_quits() {
    let (outcome, out) = drive("bt full; q");
    assert_eq!(outcome, Outcome::Quit);
    assert!(out.contains("async_task::raw::RawTask::run"), "{out}");
    assert!(!out.contains("hidden"), "{out}");
}

#[test]
fn list_shows_the_pause_line_and_eof_continues() {
    let (outcome, out) = drive("l");
    assert_eq!(outcome, Outcome::Continue);
    // The marked line is the one `session()` recorded as its location.
    let marked: Vec<&str> = out.lines().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(marked.len(), 1, "{out}");
    assert!(marked[0].contains("line: line!(),"), "{out}");
}

#[test]
fn plain_lines_from_a_pipe() {
    let mut out = Vec::new();
    let input = Plain(&b"h\nfrobnicate\ncontinue\n"[..]);
    let outcome = run(&session(), &mut { input }, &mut out).unwrap();
    assert_eq!(outcome, Outcome::Continue);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("commands:"), "{out}");
    assert!(out.contains("*** unknown command \"frobnicate\""), "{out}");
    assert_eq!(out.matches(PROMPT).count(), 3, "{out}");
}

#[test]
fn a_line_at_the_cap_is_refused_and_the_repl_goes_on() {
    let mut input = format!("p {}\n", "x".repeat(MAX_LINE)).into_bytes();
    input.extend_from_slice(b"p x\nc\n");
    let mut out = Vec::new();
    let outcome = run(&session(), &mut Plain(&input[..]), &mut out).unwrap();
    assert_eq!(outcome, Outcome::Continue);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(TOO_LONG), "{out}");
    assert!(!out.contains("<gdb"), "{out}");
    assert!(out.contains("x = 42"), "{out}");
}

#[test]
fn any_bytes_from_a_pipe_are_lines_never_a_read_error() {
    let mut out = Vec::new();
    let input = Plain(&b"p \xe9\xff\x80\np x\n\xc3\nc\n"[..]);
    let outcome = run(&session(), &mut { input }, &mut out).unwrap();
    assert_eq!(outcome, Outcome::Continue);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("\u{fffd}\u{fffd}\u{fffd} = <gdb: Print(\"\u{fffd}\u{fffd}\u{fffd}\")"),
        "{out}"
    );
    assert!(out.contains("x = 42"), "{out}");
    assert!(out.contains("*** unknown command \"\u{fffd}\""), "{out}");
}

#[test]
fn runtime_and_adapter_frames_are_hidden_the_program_s_are_not() {
    for runtime in [
        "smol_devx::debug::pause::pause",
        "<&mut F as core::future::future::Future>::poll",
        "<core::pin::Pin<P> as core::future::future::Future>::poll",
        "<usize as core::slice::index::SliceIndex<[T]>>::index",
        "<F as futures_lite::future::FutureExt>::or",
        "async_std::task::builder::Builder::blocking",
        "async_global_executor::reactor::block_on",
        "std::rt::lang_start_internal",
        "main",
    ] {
        assert!(is_runtime_frame(runtime), "{runtime} shown");
    }
    for program in [
        "crash_site::parse_port",
        "<my_app::Port as core::str::traits::FromStr>::from_str",
        "<embed_async_std::AsyncStd as embed_async_std::embed::Rt>::block_on",
        "crash_site::loader::{{closure}}",
    ] {
        assert!(!is_runtime_frame(program), "{program} hidden");
    }
}

#[test]
fn a_failure_that_captured_nothing_says_so_once() {
    let mut s = session();
    s.kind = Kind::Crash;
    s.location = None;
    s.backtrace = String::new();
    assert_eq!(s.render_backtrace(false), NOTHING_CAPTURED.trim_end());
    assert!(s.listing().ends_with(NOTHING_CAPTURED), "{}", s.listing());
}

#[test]
fn up_down_and_frame_move_between_the_program_s_frames_and_l_follows() {
    let here = line!();
    let mut s = session();
    s.backtrace = format!(
        "   0: smol_devx::debug::pause::pause\n   1: my_app::inner\n             at {f}:{a}:9\n   2: core::ops::function::FnOnce::call_once\n   3: my_app::outer\n             at {f}:{b}:5\n",
        f = file!(),
        a = here,
        b = here + 1,
    );
    let mut out = Vec::new();
    let script = "up; bt; l; up; down; frame 0; frame 7; down";
    run(&s, &mut Script::new(script), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("(devx) up\n#1 my_app::outer\n"), "{out}");
    assert!(out.contains("  my_app::inner\n"), "{out}");
    assert!(out.contains("->my_app::outer\n"), "{out}");
    // `l` in frame 1 marks that frame's line.
    let marked = format!("{:>5} -> ", here + 1);
    assert!(out.contains(&marked), "{marked:?} not in {out}");
    assert!(
        out.contains("(devx) up\n*** no such frame: 0 to 1"),
        "{out}"
    );
    assert!(out.contains("(devx) down\n#0 my_app::inner\n"), "{out}");
    assert!(out.contains("(devx) frame 0\n#0 my_app::inner"), "{out}");
    assert!(
        out.contains("(devx) frame 7\n*** no such frame: 0 to 1"),
        "{out}"
    );
    // `up` past the outermost, `frame 7`, `down` past the innermost.
    assert_eq!(
        out.matches("*** no such frame: 0 to 1 (see bt)").count(),
        3,
        "{out}"
    );
}

#[test]
fn up_with_nothing_captured_says_so() {
    let mut s = session();
    s.backtrace = String::new();
    let mut out = Vec::new();
    run(&s, &mut Script::new("up"), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("(devx) up\n(nothing was captured"), "{out}");
}

#[test]
fn a_crash_shows_each_cause_once() {
    let mut err =
        crate::msg::RemoteError::new("ConfigError", "cannot load", ActorUid::new("l", "1"));
    err.causes.push(crate::msg::ErrorCause {
        type_name: String::new(),
        message: "disk on fire".into(),
    });
    let banner = Session::crash(&ActorUid::new("l", "1"), &err).banner();
    assert_eq!(banner.matches("disk on fire").count(), 1, "{banner}");
}

#[test]
fn locals_and_p_ask_about_the_selected_frame_captured_values_first() {
    let mut session = session();
    session.backtrace = "   0: my_app::walk\n             at src/tree.rs:30:9\n   1: my_app::walk\n             at src/tree.rs:30:9\n   2: async_task::raw::RawTask::run\n   3: my_app::main\n             at src/main.rs:4:5\n".into();
    let mut out = Vec::new();
    let script = "locals; p x; p config.port + 1; up; locals; p x; up; p *self; up; locals; c";
    run(&session, &mut Script::new(script), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let answers: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("<gdb") || l.starts_with("x ="))
        .collect();
    assert_eq!(
        answers,
        [
            "<gdb: Locals at src/tree.rs:30 #0>",
            "x = 42",
            "config.port + 1 = <gdb: Print(\"config.port + 1\") at src/tree.rs:30 #0>",
            // The same line one call out: the second frame there.
            "<gdb: Locals at src/tree.rs:30 #1>",
            // A captured value belongs to the pause's frame; elsewhere
            // the name is the selected frame's.
            "x = <gdb: Print(\"x\") at src/tree.rs:30 #1>",
            "*self = <gdb: Print(\"*self\") at src/main.rs:4 #0>",
            // `up` past the outermost frame keeps it selected.
            "<gdb: Locals at src/main.rs:4 #0>",
        ],
        "{out}"
    );
    assert!(out.contains("*** no such frame: 0 to 2"), "{out}");
}

#[test]
fn without_a_native_debugger_beside_it_the_repl_says_so_and_goes_on() {
    let mut session = session();
    session.native = None;
    let mut out = Vec::new();
    run(
        &session,
        &mut Script::new("locals; p nope; p x; c"),
        &mut out,
    )
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out.matches("*** this REPL cannot ask gdb").count(),
        2,
        "{out}"
    );
    assert!(out.contains("x = 42"), "{out}");
}

//! `cargo bench --bench report`: what a `smol_devx::Report` costs where
//! an error is raised, against boxing the same error as
//! `Box<dyn Error>`: with backtraces off (a release build without
//! `RUST_LIB_BACKTRACE`/`RUST_BACKTRACE`), with the capture a debug build
//! always makes, and the resolution to text that boxing a failure for the
//! trip up the tree does once.

mod common;

use std::backtrace::Backtrace;
use std::error::Error;
use std::hint::black_box;

use common::{header, measure};
use smol_devx::Report;

fn parse(text: &str) -> std::num::ParseIntError {
    text.parse::<u16>().unwrap_err()
}

fn main() {
    header("report");
    let boxed = measure("baseline: the error as Box<dyn Error>", 10_000, 200, || {
        let err: Box<dyn Error + Send + Sync> = parse(black_box("eighty")).into();
        black_box(err);
    });
    boxed.report(None);
    let enabled = std::env::var_os("RUST_LIB_BACKTRACE")
        .or_else(|| std::env::var_os("RUST_BACKTRACE"))
        .is_some_and(|v| v != "0");
    let report = measure(
        &format!(
            "Report::from, backtraces {}",
            if enabled {
                "on (environment)"
            } else {
                "off (release default)"
            }
        ),
        10_000,
        200,
        || {
            black_box(Report::from(parse(black_box("eighty"))));
        },
    );
    report.report(Some(&boxed));
    let capture = measure(
        "Backtrace::force_capture (a debug build's Report)",
        100,
        100,
        || {
            let _ = black_box(Backtrace::force_capture());
        },
    );
    capture.report(Some(&boxed));
    let resolve = measure(
        "a captured backtrace to text (boxing, once per failure)",
        1,
        50,
        || {
            black_box(Backtrace::force_capture().to_string());
        },
    );
    resolve.report(Some(&boxed));
}

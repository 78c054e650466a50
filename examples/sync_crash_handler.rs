//! Scenario 15: plain synchronous code, no actor runtime. `crash_handler`
//! opens a crash REPL on a panic or an `Err`, then hands the failure back,
//! so the exit code stays honest (101 for the panic, 1 for the error).
//!
//! `cargo run --example sync_crash_handler -- panic` (or `-- error`),
//! then `q`.

use std::fmt;

use smol_devx::debug::crash::crash_handler;

#[derive(Debug)]
struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot parse {:?} as a number", self.0)
    }
}

impl std::error::Error for ParseError {}

fn main() -> Result<(), ParseError> {
    let what = std::env::args().nth(1).unwrap_or_else(|| "panic".into());
    crash_handler(|| {
        if what == "panic" {
            let empty: Vec<u32> = Vec::new();
            println!("{}", empty[3]);
        }
        "forty-two"
            .parse::<u32>()
            .map_err(|_| ParseError("forty-two".into()))?;
        Ok(())
    })
}

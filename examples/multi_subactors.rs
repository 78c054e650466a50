//! The main demo (scenario 6 of `SCENARIOS.md`): a root with three
//! subactors that pause and crash, sharing one terminal.
//!
//! It needs the REPL and the tree-wide TTY lock, which are not built yet;
//! until they are, it says so instead of pretending.

fn main() {
    println!(
        "smol-devx {}: the multi_subactors demo is not built yet: it needs the\n\
         tree-wide TTY lock and the REPL.\n\
         What exists today: the wire layer (messages, bounded CBOR frames, the\n\
         per-task payload spec) and the actor tree. See the tree at work with\n\
         `cargo run --example actor_tree -- nested_error`.",
        env!("CARGO_PKG_VERSION")
    );
}

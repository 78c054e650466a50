//! The main demo (scenario 6 of `SCENARIOS.md`): a root with three
//! subactors that pause and crash, sharing one terminal.
//!
//! It needs the actor tree and the REPL, which are not built yet; until
//! they are, it says so instead of pretending.

fn main() {
    println!(
        "smol-devx {}: the multi_subactors demo is not built yet.\n\
         What exists today is the wire layer: message types, the bounded CBOR\n\
         frame codec and the per-task payload spec. Run `cargo test` to see it\n\
         checked, and `cargo bench --bench codec` to see its speed.",
        env!("CARGO_PKG_VERSION")
    );
}

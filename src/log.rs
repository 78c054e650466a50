//! Logging set-up for programs built on the crate: `log` records go to
//! stderr through env_logger, filtered by `RUST_LOG` (default: `warn`),
//! each line naming the process that wrote it, since a whole tree of
//! actors shares one terminal.

/// Installs the logger once; later calls do nothing.
pub fn init() {
    let pid = std::process::id();
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(move |out, record| {
            use std::io::Write;
            writeln!(
                out,
                "[{} pid {pid} {}] {}",
                record.level(),
                record.target(),
                record.args()
            )
        })
        .try_init();
}

//! Logging set-up for programs built on the crate: `log` records go to
//! stderr through env_logger, filtered by `RUST_LOG` (default: `warn`),
//! each line naming the process that wrote it, since a whole tree of
//! actors shares one terminal.
//!
//! Lines reach stderr from a thread of their own: a terminal that no one
//! reads (a stopped pager, a pty whose reader went away) blocks that
//! thread, never an actor's event loop. Lines that find its queue full
//! are counted, and the count is written once stderr takes lines again.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How many log lines may wait for stderr.
const QUEUE: usize = 1024;

/// How long [`flush`] waits for stderr at most.
const FLUSH_AT_MOST: Duration = Duration::from_millis(500);

/// Lines queued and not yet written, and a wake-up when that changes.
static PENDING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Waits until the queued log lines are written to stderr, for at most
/// half a second (a terminal no one reads keeps them). A process calls
/// it before it exits: `std::process::exit` ends the writing thread with
/// the process.
pub fn flush() {
    let (pending, written) = &PENDING;
    let pending = crate::task::lock(pending);
    let _ = written.wait_timeout_while(pending, FLUSH_AT_MOST, |n| *n > 0);
}

/// Installs the logger once; later calls do nothing.
pub fn init() {
    let pid = std::process::id();
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(move |out, record| {
            writeln!(
                out,
                "[{} pid {pid} {}] {}",
                record.level(),
                record.target(),
                record.args()
            )
        })
        .target(env_logger::Target::Pipe(Box::new(Background::start())))
        .try_init();
}

/// The logger's end of the queue to the stderr thread.
struct Background {
    lines: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl Background {
    fn start() -> Self {
        let (lines, queued) = sync_channel::<Vec<u8>>(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        let spawned = std::thread::Builder::new()
            .name("smol-devx log".into())
            .spawn(move || {
                for line in queued {
                    let mut stderr = io::stderr().lock();
                    let n = lost.swap(0, Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            stderr,
                            "[smol-devx: {n} log lines dropped: stderr was not read]"
                        );
                    }
                    let _ = stderr.write_all(&line);
                    drop(stderr);
                    *crate::task::lock(&PENDING.0) -= 1;
                    PENDING.1.notify_all();
                }
            });
        if let Err(e) = spawned {
            eprintln!("smol-devx: no log thread ({e}): log lines are dropped");
        }
        Self { lines, dropped }
    }
}

impl Write for Background {
    /// One call per record: env_logger formats a record whole, then
    /// writes it once (and flushes, which must not wait: see [`flush`]).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        *crate::task::lock(&PENDING.0) += 1;
        match self.lines.try_send(buf.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                *crate::task::lock(&PENDING.0) -= 1;
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => *crate::task::lock(&PENDING.0) -= 1,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

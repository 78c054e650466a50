//! A small timing harness shared by the benches: no criterion, so that a
//! bench builds in seconds on two cores.
//!
//! Each bench takes `samples` samples of `batch` calls; a sample's time
//! divided by `batch` is one per-op figure. It prints the median and p99
//! of those figures, and ratios against a baseline measured in the same
//! run.

#![allow(dead_code)] // each bench uses a part

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use smol_devx::codec::{encode_pld, Codec};
use smol_devx::msg::{ActorUid, LockMsg, LockStatus, Msg};

/// Per-op timings of one measured operation, sorted.
pub struct Stats {
    pub name: String,
    per_op: Vec<f64>,
}

impl Stats {
    /// Stats from raw per-op samples in nanoseconds.
    pub fn from_samples(name: &str, mut per_op: Vec<f64>) -> Self {
        per_op.sort_by(f64::total_cmp);
        Stats {
            name: name.to_owned(),
            per_op,
        }
    }

    /// The same samples times `factor`: a derived baseline ("two raw
    /// ping-pongs").
    pub fn scaled(&self, name: &str, factor: f64) -> Self {
        Self::from_samples(name, self.per_op.iter().map(|x| x * factor).collect())
    }

    /// Median per-op time, in nanoseconds.
    pub fn median_ns(&self) -> f64 {
        self.quantile(0.5)
    }

    /// The slowest op, in nanoseconds.
    pub fn max_ns(&self) -> f64 {
        self.quantile(1.0)
    }

    /// 99th-percentile per-op time, in nanoseconds.
    pub fn p99_ns(&self) -> f64 {
        self.quantile(0.99)
    }

    fn quantile(&self, q: f64) -> f64 {
        let i = ((self.per_op.len() - 1) as f64 * q).round() as usize;
        self.per_op[i]
    }

    /// Prints one line: median, p99, rate, and the ratio to `baseline`.
    pub fn report(&self, baseline: Option<&Stats>) {
        let mut line = format!(
            "{:<44} median {:>10} p99 {:>10}  {:>12}",
            self.name,
            fmt_ns(self.median_ns()),
            fmt_ns(self.p99_ns()),
            format!("{:.2} M/s", 1e3 / self.median_ns()),
        );
        if let Some(base) = baseline {
            line += &format!(
                "  {:.2}x {}",
                self.median_ns() / base.median_ns(),
                base.name
            );
        }
        println!("{line}");
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Times `op`: a warm-up, then `samples` samples of `batch` calls.
pub fn measure(name: &str, batch: u32, samples: usize, mut op: impl FnMut()) -> Stats {
    let warm_until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < warm_until {
        op();
    }
    let per_op: Vec<f64> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            start.elapsed().as_nanos() as f64 / f64::from(batch)
        })
        .collect();
    Stats::from_samples(name, per_op)
}

/// CPU time this process has used so far, user and system, in ns (all
/// threads): what a phase costs besides its wall time.
#[allow(unsafe_code)]
pub fn cpu_ns() -> (f64, f64) {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the pointer it is given,
    // which points to enough zeroed memory for one.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: filled by the successful call above (and zeroed before).
    let usage = unsafe { usage.assume_init() };
    let ns = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    (ns(usage.ru_utime), ns(usage.ru_stime))
}

/// Cores of this machine, for the report header.
pub fn header(bench: &str) {
    println!("bench {bench}: {} cores, per-op median and p99", cores());
}

/// CPUs this process may run on (affinity and cgroup quota), 0 if
/// unknown.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The lock dialog's `started` frame: the size every lock hop carries.
pub fn lock_frame() -> Vec<u8> {
    let status = LockMsg::LockStatus(LockStatus {
        subactor_uid: ActorUid::new("breakpoint_forever", "5b1c6a7e-2f0d-4d43-9a55-0c1f3e6b8d21"),
        cid: 17,
        locked: true,
    });
    Codec::default()
        .encode(&Msg::Started {
            cid: 17,
            pld: encode_pld(&status).unwrap(),
        })
        .unwrap()
}

/// Echoes `len`-byte frames until the peer closes.
fn echo(mut b: UnixStream, len: usize) {
    let mut buf = vec![0u8; len];
    while read_frame(&mut b, &mut buf).is_ok() {
        if b.write_all(&buf).is_err() {
            break;
        }
    }
}

/// `read_exact`, spinning while a non-blocking socket has nothing yet.
fn read_frame(s: &mut UnixStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A lock-sized frame bounced off an echo at the other end of a Unix
/// socket, with blocking std I/O: the
/// floor under every dialog hop.
pub struct RawPingPong {
    a: UnixStream,
    frame: Vec<u8>,
    back: Vec<u8>,
    echo: Option<std::thread::JoinHandle<()>>,
}

impl RawPingPong {
    fn over(a: UnixStream, echo: Option<std::thread::JoinHandle<()>>) -> Self {
        let frame = lock_frame();
        let back = vec![0u8; frame.len()];
        Self {
            a,
            frame,
            back,
            echo,
        }
    }

    /// With the echo on a thread of this process, over a socketpair.
    pub fn with_echo_thread() -> Self {
        let (a, b) = UnixStream::pair().unwrap();
        let len = lock_frame().len();
        Self::over(a, Some(std::thread::spawn(move || echo(b, len))))
    }

    /// One round trip.
    pub fn once(&mut self) {
        self.a.write_all(&self.frame).unwrap();
        read_frame(&mut self.a, &mut self.back).unwrap();
    }

    /// `n` round trips; ns per round trip.
    pub fn batch(&mut self, n: u32) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            self.once();
        }
        start.elapsed().as_nanos() as f64 / f64::from(n)
    }

    fn measure(mut self, name: &str) -> Stats {
        measure(name, 200, 200, || self.once())
    }
}

impl Drop for RawPingPong {
    fn drop(&mut self) {
        let _ = self.a.shutdown(std::net::Shutdown::Both);
        if let Some(echo) = self.echo.take() {
            let _ = echo.join();
        }
    }
}

/// The floor under every dialog: a lock-sized frame to another thread
/// and back over a Unix socketpair, blocking std sockets.
pub fn raw_ping_pong() -> Stats {
    RawPingPong::with_echo_thread().measure("raw UDS ping-pong, lock-sized frame")
}

/// Set in the echo process of [`raw_ping_pong_between_processes`]: the
/// socket path to connect to.
const ECHO_AT: &str = "SMOL_DEVX_BENCH_ECHO_AT";

/// Call first in a bench's `main`: in the echo process of
/// [`raw_ping_pong_between_processes`], echoes and exits.
pub fn serve_echo_if_asked() {
    if let Ok(path) = std::env::var(ECHO_AT) {
        echo(UnixStream::connect(path).unwrap(), lock_frame().len());
        std::process::exit(0);
    }
}

/// The same ping-pong with the echo in another process (this bench
/// re-executed), as every lock dialog is: what crossing processes adds
/// to the floor on this machine.
pub fn raw_ping_pong_between_processes() -> Stats {
    let path = std::env::temp_dir().join(format!("smol-devx-bench-echo-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(ECHO_AT, &path)
        .spawn()
        .unwrap();
    let (a, _) = listener.accept().unwrap();
    let _ = std::fs::remove_file(&path);
    let stats = RawPingPong::over(a, None).measure("raw UDS ping-pong to another process");
    child.wait().unwrap();
    stats
}

/// The terminal, read by a thread of its own so that typing never waits
/// on an echo no one reads.
pub struct Screen {
    shown: Arc<(Mutex<Vec<u8>>, Condvar)>,
    /// The keyboard.
    pub keys: std::fs::File,
}

impl Screen {
    pub fn new(repl: &expectrl::Session) -> Self {
        let mut master = repl.get_process().get_raw_handle().expect("the pty master");
        let keys = master.try_clone().expect("the pty master, to type on");
        let shown = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let seen = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n @ 1..) = master.read(&mut buf) {
                seen.0.lock().unwrap().extend_from_slice(&buf[..n]);
                seen.1.notify_all();
            }
        });
        Self { shown, keys }
    }

    /// How much was shown so far.
    pub fn len(&self) -> usize {
        self.shown.0.lock().unwrap().len()
    }

    /// Waits until `text` is shown after the first `from` bytes.
    pub fn wait_for(&self, from: usize, text: &str) {
        let (shown, grew) = &*self.shown;
        let mut shown = shown.lock().unwrap();
        while !shown[from..]
            .windows(text.len())
            .any(|w| w == text.as_bytes())
        {
            shown = grew.wait(shown).unwrap();
        }
    }
}

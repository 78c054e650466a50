//! A small timing harness shared by the benches: no criterion, so that a
//! bench builds in seconds on two cores.
//!
//! Each bench takes `samples` samples of `batch` calls; a sample's time
//! divided by `batch` is one per-op figure. It prints the median and p99
//! of those figures, and ratios against a baseline measured in the same
//! run.

#![allow(dead_code)] // each bench uses a part

use std::time::{Duration, Instant};

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

/// Cores of this machine, for the report header.
pub fn header(bench: &str) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("bench {bench}: {cores} cores, per-op median and p99");
}

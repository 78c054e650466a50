//! Whether the home thread polls for a while before it sleeps: a
//! predictor of short idle gaps.
//!
//! Why spin at all: a dialog's reply comes back within tens of
//! microseconds, and sleeping through that gap costs more than the gap.
//! The peer's send must then wake an idle CPU (an inter-processor
//! interrupt, which a virtual machine turns into an exit to its host),
//! and this thread comes back on a cold CPU. On the 2-core VM this crate
//! is measured on, that was about 10 us per hop of a lock dialog, more
//! than the hop itself on a busy CPU: `perf record -e cpu-clock -a` of
//! `cargo bench --bench lock` put 36% of the subactor's CPU time in the
//! wake-up paths (`_raw_spin_unlock_irqrestore`, `finish_task_switch`).
//!
//! Why adaptive: a process that waits long (for a grant behind 15 other
//! requesters, for a terminal, for nothing at all) must not burn a core
//! that the lock's holder needs. So it spins only after two short gaps
//! in a row, and a long gap (a spin that came back empty is one) starts
//! the count again: at most one wasted spin per two short gaps.

use std::sync::OnceLock;
use std::time::Duration;

/// The longest spin, and the longest gap that counts as short.
pub(super) const SPIN_FOR: Duration = Duration::from_micros(50);

/// How many short gaps came in a row (counting stops at two).
#[derive(Debug)]
pub(super) struct Spin {
    short: u8,
    /// Off with one CPU: the peer whose reply this thread waits for
    /// would need the CPU it spins on. Pinned to one CPU, a 50 us spin
    /// made `cargo bench --bench lock` 2.3x slower
    /// (`taskset -c 0 target/release/deps/lock-* --bench`).
    enabled: bool,
}

impl Spin {
    const SPIN_FROM: u8 = 2;

    /// A predictor for a thread that may run on `cpus` CPUs.
    pub(super) fn new(cpus: usize) -> Self {
        Self {
            short: 0,
            enabled: cpus > 1,
        }
    }

    /// A predictor for this process, from the CPUs it may use (its
    /// affinity and its cgroup's quota) when it first asked.
    pub(super) fn for_this_process() -> Self {
        static CPUS: OnceLock<usize> = OnceLock::new();
        Self::new(*CPUS.get_or_init(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }))
    }

    /// How long to poll before sleeping in the next wait.
    pub(super) fn budget(&self) -> Duration {
        if self.enabled && self.short >= Self::SPIN_FROM {
            SPIN_FOR
        } else {
            Duration::ZERO
        }
    }

    /// Records the gap from the start of a wait to its first event.
    pub(super) fn record(&mut self, gap: Duration) {
        self.short = if gap <= SPIN_FOR {
            (self.short + 1).min(Self::SPIN_FROM)
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_micros(20);
    const LONG: Duration = Duration::from_millis(2);

    fn spins_after(gaps: &[Duration]) -> Vec<bool> {
        spins_with(2, gaps)
    }

    fn spins_with(cpus: usize, gaps: &[Duration]) -> Vec<bool> {
        let mut spin = Spin::new(cpus);
        gaps.iter()
            .map(|&gap| {
                spin.record(gap);
                spin.budget() > Duration::ZERO
            })
            .collect()
    }

    #[test]
    fn a_ping_pong_spins_from_its_second_short_gap() {
        assert_eq!(spins_after(&[SHORT; 4]), [false, true, true, true]);
    }

    #[test]
    fn a_waiter_whose_gaps_alternate_never_spins() {
        // A contender: a long wait for its grant, a quick release.
        let gaps: Vec<_> = [LONG, SHORT].repeat(8);
        assert!(spins_after(&gaps).iter().all(|&spun| !spun));
    }

    #[test]
    fn one_long_gap_stops_a_spinning_thread_until_two_short_ones() {
        assert_eq!(
            spins_after(&[SHORT, SHORT, SHORT, LONG, SHORT, SHORT]),
            [false, true, true, false, false, true]
        );
    }

    #[test]
    fn one_cpu_never_spins() {
        assert!(spins_with(1, &[SHORT; 4]).iter().all(|&spun| !spun));
        assert_eq!(spins_with(4, &[SHORT; 2]), [false, true]);
    }

    #[test]
    fn a_gap_of_exactly_the_spin_counts_as_short() {
        assert_eq!(spins_after(&[SPIN_FOR, SPIN_FOR]), [false, true]);
        let just_over = SPIN_FOR + Duration::from_nanos(1);
        assert_eq!(
            spins_after(&[SHORT, SHORT, just_over]),
            [false, true, false]
        );
    }
}

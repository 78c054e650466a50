//! The registry of tracked tasks: who spawned what, from where, and what
//! each task is doing now.
//!
//! A task is tracked by wrapping its future with [`track`] (or spawning it
//! with [`spawn`] / [`spawn_on`]); the wrapper registers the task when it
//! is created and removes it when it finishes or is dropped.
//!
//! The hot path takes no global lock: the registry is split in shards,
//! each thread registers into its own shard, and the per-task figures are
//! atomics that only the polling thread writes. Which tasks are polling
//! right now each thread shows in a slot of its own, and the spawning
//! thread writes only its own table: a task that ends in its first poll
//! (most spawned tasks) writes nothing shared, and one run on another
//! core than its spawner's moves none of the spawner's cache lines. A
//! task's await spans (see [`Instrument`](super::Instrument)) live in a
//! thread-local while the task is polled and go back to the task's node
//! when the poll ends, so entering a span is a thread-local push, not a
//! lock.
//!
//! ```
//! use smol_devx::task::{self, Instrument};
//!
//! smol::block_on(async {
//!     let child = task::spawn("worker", async {
//!         smol::future::yield_now().instrument("warming up").await;
//!         7
//!     });
//!     assert_eq!(child.await, 7);
//! });
//! ```

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::num::NonZeroU32;
use std::panic::Location;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use super::lock;

/// One live await span of a task: what it waits on and the span it was
/// entered under (0: the task itself).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SpanRec {
    pub(crate) id: u32,
    pub(crate) parent: u32,
    pub(crate) what: &'static str,
}

/// A task as the thread that spawned it records it, in its shard's
/// table: written once, at the spawn, under the shard's lock. A free
/// entry (`id` 0) keeps its [`Node`] for the next task.
struct Entry {
    id: u64,
    name: Cow<'static, str>,
    parent: Option<u64>,
    site: &'static Location<'static>,
    /// [`now_ns`] at the spawn.
    born: u64,
    /// `None` only in a free entry past the [`SPARES`].
    node: Option<Arc<Node>>,
}

/// What a task's polls record of it. Written only by the thread polling
/// the task (one at a time), so plain loads and stores suffice; readers
/// see a consistent-enough picture for a dump. A task writes here only
/// once it stays pending: whether it is polling now is in its thread's
/// [`Polling`], so a task that finishes in its first poll writes nothing
/// of the registry's but its thread's own lines, and the spawning thread
/// writes only its table.
pub(crate) struct Node {
    /// The task these figures are of. A node reused for a new task shows
    /// its previous task's figures until the new one claims it, at its
    /// first pending poll: until then readers take the task as idle since
    /// its birth.
    pub(super) of: AtomicU64,
    pub(super) polls: AtomicU64,
    pub(super) busy_ns: AtomicU64,
    /// [`now_ns`] when the last poll ended.
    pub(super) since_ns: AtomicU64,
    /// Whether the task has open spans: when not, `spans` is stale and
    /// readers skip it.
    pub(super) has_spans: AtomicBool,
    /// The spans as of the end of the last poll that changed them; the
    /// task's working copy lives in its [`Tracked`] future.
    pub(super) spans: Mutex<Published>,
}

/// Spans kept in the task's node itself when there are few: a dump
/// reads them without one more cache miss per task.
pub(crate) const INLINE_SPANS: usize = 4;

#[derive(Default)]
pub(super) struct Published {
    inline: [SpanRec; INLINE_SPANS],
    len: usize,
    /// All of them, when they do not fit inline.
    spilled: Vec<SpanRec>,
}

impl Published {
    pub(super) fn set(&mut self, spans: &[SpanRec]) {
        self.len = spans.len();
        if spans.len() <= INLINE_SPANS {
            self.inline[..spans.len()].copy_from_slice(spans);
        } else {
            self.spilled.clear();
            self.spilled.extend_from_slice(spans);
        }
    }

    fn get(&self) -> &[SpanRec] {
        if self.len <= INLINE_SPANS {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

/// One task's state as [`snapshot`] reads it, its published spans
/// borrowed from the node (under its lock).
pub(crate) struct NodeView<'a> {
    pub(crate) id: u64,
    pub(crate) name: &'a Cow<'static, str>,
    pub(crate) parent: Option<u64>,
    pub(crate) site: &'static Location<'static>,
    pub(crate) polls: u64,
    pub(crate) busy: Duration,
    pub(crate) polling: bool,
    /// How long the task has been polling (or idle).
    pub(crate) for_: Duration,
    /// Empty when the task has no open span.
    pub(crate) spans: &'a [SpanRec],
}

/// Shards of the registry. A task registers in the shard of the thread
/// that spawns it: one thread's tasks then sit side by side in one
/// shard's table, in spawn order until slots are reused, and a dump
/// reads them nearly front to back (by id, a dump's reads jumped across
/// 64 tables and took twice as long with the caches cold).
const SHARDS: usize = 64;

/// Bits of a [`Slot`] that hold the index in its shard.
const INDEX_BITS: u32 = 26;

static NEXT_SHARD: AtomicU32 = AtomicU32::new(0);

#[derive(Default)]
struct Shard {
    slots: Vec<Entry>,
    free: Vec<u32>,
    /// Free entries that keep their node for the next tasks: a spawn then
    /// allocates nothing here, and a node is seldom freed by a thread
    /// other than the one that made it, which glibc's malloc makes slow.
    spares: usize,
    /// The list [`Returned`] slots were last taken back in.
    back: Vec<u32>,
}

/// Spare nodes kept per shard: a thread's burst of this many live tasks
/// reuses nodes, at most ~192 KiB of them per spawning thread.
/// (With 64 spares, a burst of 1,000 spawns on one thread allocated and
/// freed ~940 records, +60 ns per spawn.)
const SPARES: usize = 1024;

/// A shard on cache lines of its own: neighbours locked by other
/// threads do not slow it down.
#[repr(align(128))]
struct Padded {
    shard: Mutex<Shard>,
    returned: Returned,
}

/// Slots of a shard's tasks that other threads finished, for the
/// shard's own thread to free when it next runs out of free slots. A
/// task finished on another core then costs that core a push here, on a
/// line of its own, instead of the shard's lock and tables, which
/// bounced between the cores at every spawn and every finish.
#[repr(align(128))]
struct Returned {
    slots: Mutex<Vec<u32>>,
    /// Whether `slots` may hold any: read without taking its lock.
    any: AtomicBool,
}

static REGISTRY: [Padded; SHARDS] = [const {
    Padded {
        shard: Mutex::new(Shard {
            slots: Vec::new(),
            free: Vec::new(),
            spares: 0,
            back: Vec::new(),
        }),
        returned: Returned {
            slots: Mutex::new(Vec::new()),
            any: AtomicBool::new(false),
        },
    }
}; SHARDS];

pub(super) static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The tasks one thread is polling. Only that thread writes here, and
/// dumps read it: a poll's start then writes a line the thread owns, not
/// the task's entry, which is the spawning thread's, nor its node.
#[repr(align(128))]
pub(super) struct Polling {
    /// The task whose poll is innermost (0: none), and [`now_ns`] when
    /// that poll began.
    pub(super) task: AtomicU64,
    pub(super) since: AtomicU64,
    /// Tasks whose polls a nested one is running inside (a task polled
    /// by a nested `block_on`), outermost first, with their poll starts.
    pub(super) outer: Mutex<Vec<(u64, u64)>>,
}

impl Polling {
    /// A poll starts inside task `outer`'s, which began at `since`.
    #[cold]
    #[inline(never)]
    pub(super) fn nest(&self, outer: u64, since: u64) {
        lock(&self.outer).push((outer, since));
    }

    /// A nested poll ended: the one it ran inside, which began at
    /// `since`, is the innermost again (its task is stored next).
    #[cold]
    #[inline(never)]
    pub(super) fn unnest(&self, since: u64) {
        lock(&self.outer).pop();
        self.since.store(since, Relaxed);
    }
}

/// Every thread's [`Polling`]: made at a thread's first poll, and given
/// back for another thread's when it ends.
struct Threads {
    all: Vec<&'static Polling>,
    free: Vec<&'static Polling>,
}

static THREADS: Mutex<Threads> = Mutex::new(Threads {
    all: Vec::new(),
    free: Vec::new(),
});

thread_local! {
    /// Where this thread is: the tracked task it polls and the span being
    /// polled. Plain cells with no destructor, so reading them is a load
    /// from the thread's block: the whole cost of `instrument` outside a
    /// tracked task, and of re-entering a span.
    pub(super) static HERE: Here = const {
        Here {
            task: Cell::new(0),
            current: Cell::new(0),
            next: Cell::new(0),
            dirty: Cell::new(false),
            since: Cell::new(0),
            shard: Cell::new(u32::MAX),
            polling: Cell::new(None),
        }
    };
    /// Gives this thread's [`Polling`] back when the thread ends. Apart
    /// from [`HERE`], which must stay destructor-free to stay cheap.
    static GIVE_BACK: GiveBack = const { GiveBack(Cell::new(None)) };
    /// The open spans of the task this thread polls.
    pub(super) static STACK: RefCell<Vec<SpanRec>> = const { RefCell::new(Vec::new()) };
}

pub(super) struct Here {
    /// The task being polled (0: none).
    pub(super) task: Cell<u64>,
    /// The span whose future is being polled (0: the task's own body).
    pub(super) current: Cell<u32>,
    /// The id the task's next span gets.
    pub(super) next: Cell<u32>,
    /// Whether a span opened or closed during this poll.
    pub(super) dirty: Cell<bool>,
    /// [`now_ns`] when the poll of `task` began (0: not known): the
    /// birth time of the tasks it spawns, which spares a clock read per
    /// spawn. The clock's grain is a few milliseconds, coarser than most
    /// polls.
    pub(super) since: Cell<u64>,
    /// The shard this thread registers in (`u32::MAX`: not chosen yet).
    pub(super) shard: Cell<u32>,
    /// Where this thread shows what it polls (`None`: not given yet).
    pub(super) polling: Cell<Option<&'static Polling>>,
}

struct GiveBack(Cell<Option<&'static Polling>>);

impl Drop for GiveBack {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            HERE.with(|h| h.polling.set(None));
            slot.task.store(0, Release);
            lock(&slot.outer).clear();
            lock(&THREADS).free.push(slot);
        }
    }
}

/// Gives this thread a [`Polling`].
#[cold]
pub(super) fn take_polling() -> &'static Polling {
    let slot = {
        let mut threads = lock(&THREADS);
        match threads.free.pop() {
            Some(slot) => slot,
            None => {
                let slot: &'static Polling = Box::leak(Box::new(Polling {
                    task: AtomicU64::new(0),
                    since: AtomicU64::new(0),
                    outer: Mutex::new(Vec::new()),
                }));
                threads.all.push(slot);
                slot
            }
        }
    };
    HERE.with(|h| h.polling.set(Some(slot)));
    // A thread already tearing down its thread-locals keeps the slot.
    let _ = GIVE_BACK.try_with(|g| g.0.set(Some(slot)));
    slot
}

/// The tasks being polled now, on any thread, and since when.
fn polling_now() -> Vec<(u64, u64)> {
    let threads = lock(&THREADS);
    let mut out = Vec::new();
    for p in &threads.all {
        let task = p.task.load(Acquire);
        if task != 0 {
            out.push((task, p.since.load(Relaxed)));
            out.extend_from_slice(&lock(&p.outer));
        }
    }
    out
}

/// This thread's shard: threads take shards in turn.
#[inline]
fn my_shard() -> u32 {
    HERE.with(|h| match h.shard.get() {
        u32::MAX => {
            let shard = NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS as u32;
            h.shard.set(shard);
            shard
        }
        shard => shard,
    })
}

/// The registry's clock, in nanoseconds: the kernel's coarse monotonic
/// clock, read from the vDSO in ~8 ns here where `Instant::now` takes
/// ~35 ns. It ticks every few milliseconds, so one poll's busy time reads
/// as 0 or one tick; since a poll starts at a random phase of the tick,
/// the sum over many polls is still an unbiased estimate of busy time.
///
/// Through libc, not rustix: rustix parses the vDSO itself, which crashes
/// programs run under valgrind (rustix issue 1559), and a debugging crate
/// must not break the other debuggers.
#[allow(unsafe_code)]
pub(super) fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call's duration;
    // CLOCK_MONOTONIC_COARSE exists on every Linux this crate supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) };
    if rc != 0 {
        return 0;
    }
    // Never negative: the clock counts from boot.
    let (secs, nanos) = (u64::try_from(t.tv_sec), u64::try_from(t.tv_nsec));
    secs.unwrap_or(0) * 1_000_000_000 + nanos.unwrap_or(0)
}

/// When a task born now was born: the spawning task's poll start, or
/// the clock outside a tracked poll.
#[inline]
pub(super) fn birth_time() -> u64 {
    match HERE.with(|h| h.since.get()) {
        0 => now_ns(),
        since => since,
    }
}

/// The id of the tracked task running on this thread, if any.
#[inline]
pub fn current_id() -> Option<u64> {
    Some(HERE.with(|h| h.task.get())).filter(|&t| t != 0)
}

/// Whether task `id` is being polled right now (`false` when it is not
/// registered).
pub fn is_polling(id: u64) -> bool {
    polling_now().iter().any(|&(task, _)| task == id)
}

/// Where a registered task sits: its shard, and its index there. Small
/// on purpose: it lives in every tracked future, which executors
/// allocate per task, and a smaller task stays in glibc's cheaper
/// small-chunk bins. Stored plus one, so that an `Option<Slot>` takes
/// no more room.
#[derive(Clone, Copy)]
pub(super) struct Slot(NonZeroU32);

impl Slot {
    fn new(shard: u32, index: u32) -> Self {
        // At most `u32::MAX - 1`: `register` keeps the index below the last.
        Slot(NonZeroU32::MIN.saturating_add(shard << INDEX_BITS | index))
    }

    fn raw(self) -> u32 {
        self.0.get() - 1
    }

    fn shard(self) -> u32 {
        self.raw() >> INDEX_BITS
    }

    fn index(self) -> usize {
        (self.raw() & ((1 << INDEX_BITS) - 1)) as usize
    }
}

/// What a new task's entry says.
pub(super) struct Birth {
    pub(super) id: u64,
    pub(super) name: Cow<'static, str>,
    pub(super) parent: Option<u64>,
    pub(super) site: &'static Location<'static>,
    pub(super) now: u64,
}

impl Node {
    fn new() -> Self {
        Node {
            of: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            since_ns: AtomicU64::new(0),
            has_spans: AtomicBool::new(false),
            spans: Mutex::new(Published::default()),
        }
    }

    /// Makes the figures task `id`'s, if they are not yet. The published
    /// spans stay as they are (`has_spans` hides them).
    fn claim(&self, id: u64) {
        if self.of.load(Relaxed) != id {
            self.polls.store(0, Relaxed);
            self.busy_ns.store(0, Relaxed);
            self.has_spans.store(false, Relaxed);
            // Last: a reader that sees `id` here sees the figures reset.
            self.of.store(id, Release);
        }
    }
}

/// Registers a task in this thread's shard: writes its entry there, and
/// nothing else. The task's future asks for its node (see
/// [`Task::node`]) only when it first stays pending.
pub(super) fn register(b: Birth) -> Slot {
    let shard = my_shard();
    let home = &REGISTRY[shard as usize];
    let mut s = lock(&home.shard);
    if s.free.is_empty() && home.returned.any.load(Relaxed) {
        s.take_back(&home.returned);
    }
    let index = match s.free.pop() {
        Some(index) => index,
        None => {
            let index = s.slots.len();
            assert!(
                index < (1 << INDEX_BITS) - 1,
                "fewer than 2^26 - 1 tasks per shard"
            );
            s.slots.push(Entry {
                id: 0,
                name: Cow::Borrowed(""),
                parent: None,
                site: b.site,
                born: 0,
                node: None,
            });
            index as u32
        }
    };
    let s = &mut *s;
    let e = &mut s.slots[index as usize];
    (e.id, e.name, e.parent, e.site, e.born) = (b.id, b.name, b.parent, b.site, b.now);
    if e.node.is_some() {
        s.spares -= 1;
    } else {
        e.node = Some(Arc::new(Node::new()));
    }
    Slot::new(shard, index)
}

/// The node of task `id` in `slot`, claimed for it.
#[cold]
pub(super) fn fetch(id: u64, slot: Option<Slot>) -> Arc<Node> {
    let slot = slot.expect("only a registered task asks for its node");
    let home = &REGISTRY[slot.shard() as usize];
    let node = lock(&home.shard).slots[slot.index()].node.clone();
    let node = node.expect("a registered task's entry holds its node");
    node.claim(id);
    node
}

/// Takes a task out of the registry. A task another thread finishes is
/// freed by its shard's thread later; readers take the finished ones
/// back before they read (see [`snapshot`]).
pub(super) fn deregister(slot: Slot) {
    let home = &REGISTRY[slot.shard() as usize];
    if slot.shard() == my_shard() {
        lock(&home.shard).free(slot.index() as u32);
    } else {
        lock(&home.returned.slots).push(slot.index() as u32);
        home.returned.any.store(true, Relaxed);
    }
}

impl Shard {
    fn free(&mut self, index: u32) {
        // The rest of a spare entry stays until the next task overwrites
        // it; past the spares, what the entry holds on the heap goes now
        // (a burst of a million tasks must not keep their names).
        let e = &mut self.slots[index as usize];
        e.id = 0;
        if self.spares < SPARES {
            self.spares += 1;
        } else {
            (e.node, e.name) = (None, Cow::Borrowed(""));
        }
        self.free.push(index);
    }

    /// Frees the slots that other threads returned. The two lists trade
    /// places, so neither thread allocates once they have grown.
    #[cold]
    fn take_back(&mut self, returned: &Returned) {
        let mut back = std::mem::take(&mut self.back);
        {
            let mut slots = lock(&returned.slots);
            returned.any.store(false, Relaxed);
            std::mem::swap(&mut back, &mut *slots);
        }
        for &index in &back {
            self.free(index);
        }
        back.clear();
        self.back = back;
    }
}

/// How many tasks are registered now.
pub(crate) fn live() -> usize {
    REGISTRY
        .iter()
        .map(|s| {
            let returned = lock(&s.returned.slots).len();
            let shard = lock(&s.shard);
            shard.slots.len() - shard.free.len() - returned
        })
        .sum()
}

/// Turns every live task's state into a `T` with `make`, in no
/// particular order. Shards are locked one at a time; `make` runs under
/// its task's shard lock (and span lock), so it should only copy.
/// `live`: [`live`] as the caller already counted it (sizes the result).
pub(crate) fn snapshot<T>(live: usize, mut make: impl FnMut(NodeView<'_>) -> T) -> Vec<T> {
    let now = now_ns();
    let polling = polling_now();
    // Sized up front: growing a vector of 10k entries copies it ~14 times.
    let mut out = Vec::with_capacity(live + live / 8);
    for shard in &REGISTRY {
        // Reading the entries and nodes under the shard's lock spares a
        // reference count round trip per task.
        let returned = &shard.returned;
        let mut shard = lock(&shard.shard);
        // Finished tasks out first: what is left was live when the lock
        // was taken. (A thread that spawned and ended may also never come
        // back for its tasks' slots.)
        if returned.any.load(Relaxed) {
            shard.take_back(returned);
        }
        for e in shard.slots.iter().filter(|e| e.id != 0) {
            let polling = polling.iter().find(|p| p.0 == e.id).map(|p| p.1);
            let node = e.node.as_deref().filter(|n| n.of.load(Acquire) == e.id);
            let published;
            // A task not pending yet has no figures: idle since its birth.
            let (polls, busy_ns, idle_since, spans) = match node {
                None => (0, 0, e.born, &[][..]),
                Some(n) => {
                    let spans = if n.has_spans.load(Relaxed) {
                        published = lock(&n.spans);
                        published.get()
                    } else {
                        &[]
                    };
                    let (polls, busy) = (n.polls.load(Relaxed), n.busy_ns.load(Relaxed));
                    (polls, busy, n.since_ns.load(Relaxed), spans)
                }
            };
            out.push(make(NodeView {
                id: e.id,
                name: &e.name,
                parent: e.parent,
                site: e.site,
                polls,
                busy: Duration::from_nanos(busy_ns),
                polling: polling.is_some(),
                for_: Duration::from_nanos(now.saturating_sub(polling.unwrap_or(idle_since))),
                spans,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests;

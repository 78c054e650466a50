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
use std::future::Future;
use std::num::NonZeroU32;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
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

/// A task's spans, with the id the next one gets.
#[derive(Default)]
struct SpanStack {
    spans: Vec<SpanRec>,
    next: u32,
    /// What was last published to the node: a task that awaits the
    /// same instrumented call in a loop publishes the same shape each
    /// time (only the ids differ), and skips the lock then.
    published: Vec<SpanRec>,
    /// Whether the node shows `published` now (its `has_spans`): a
    /// poll that leaves the same shape shown then writes nothing.
    shown: bool,
}

/// Whether two span lists render the same: same labels, same nesting.
#[inline]
fn same_shape(a: &[SpanRec], b: &[SpanRec]) -> bool {
    // One span, the usual case of a loop awaiting one labelled call: no
    // nesting to compare.
    if let ([x], [y]) = (a, b) {
        return std::ptr::eq(x.what, y.what);
    }
    let parent_at = |spans: &[SpanRec], i: usize| {
        let parent = spans[i].parent;
        spans[..i].iter().position(|s| s.id == parent)
    };
    a.len() == b.len()
        && (0..a.len())
            .all(|i| std::ptr::eq(a[i].what, b[i].what) && parent_at(a, i) == parent_at(b, i))
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
    of: AtomicU64,
    polls: AtomicU64,
    busy_ns: AtomicU64,
    /// [`now_ns`] when the last poll ended.
    since_ns: AtomicU64,
    /// Whether the task has open spans: when not, `spans` is stale and
    /// readers skip it.
    has_spans: AtomicBool,
    /// The spans as of the end of the last poll that changed them; the
    /// task's working copy lives in its [`Tracked`] future.
    spans: Mutex<Published>,
}

/// Spans kept in the task's node itself when there are few: a dump
/// reads them without one more cache miss per task.
pub(crate) const INLINE_SPANS: usize = 4;

#[derive(Default)]
struct Published {
    inline: [SpanRec; INLINE_SPANS],
    len: usize,
    /// All of them, when they do not fit inline.
    spilled: Vec<SpanRec>,
}

impl Published {
    fn set(&mut self, spans: &[SpanRec]) {
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

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The tasks one thread is polling. Only that thread writes here, and
/// dumps read it: a poll's start then writes a line the thread owns, not
/// the task's entry, which is the spawning thread's, nor its node.
#[repr(align(128))]
struct Polling {
    /// The task whose poll is innermost (0: none), and [`now_ns`] when
    /// that poll began.
    task: AtomicU64,
    since: AtomicU64,
    /// Tasks whose polls a nested one is running inside (a task polled
    /// by a nested `block_on`), outermost first, with their poll starts.
    outer: Mutex<Vec<(u64, u64)>>,
}

impl Polling {
    /// A poll starts inside task `outer`'s, which began at `since`.
    #[cold]
    #[inline(never)]
    fn nest(&self, outer: u64, since: u64) {
        lock(&self.outer).push((outer, since));
    }

    /// A nested poll ended: the one it ran inside, which began at
    /// `since`, is the innermost again (its task is stored next).
    #[cold]
    #[inline(never)]
    fn unnest(&self, since: u64) {
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
    static HERE: Here = const {
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
    static STACK: RefCell<Vec<SpanRec>> = const { RefCell::new(Vec::new()) };
}

struct Here {
    /// The task being polled (0: none).
    task: Cell<u64>,
    /// The span whose future is being polled (0: the task's own body).
    current: Cell<u32>,
    /// The id the task's next span gets.
    next: Cell<u32>,
    /// Whether a span opened or closed during this poll.
    dirty: Cell<bool>,
    /// [`now_ns`] when the poll of `task` began (0: not known): the
    /// birth time of the tasks it spawns, which spares a clock read per
    /// spawn. The clock's grain is a few milliseconds, coarser than most
    /// polls.
    since: Cell<u64>,
    /// The shard this thread registers in (`u32::MAX`: not chosen yet).
    shard: Cell<u32>,
    /// Where this thread shows what it polls (`None`: not given yet).
    polling: Cell<Option<&'static Polling>>,
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
fn take_polling() -> &'static Polling {
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
fn now_ns() -> u64 {
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
fn birth_time() -> u64 {
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
struct Slot(NonZeroU32);

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
struct Birth {
    id: u64,
    name: Cow<'static, str>,
    parent: Option<u64>,
    site: &'static Location<'static>,
    now: u64,
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
fn register(b: Birth) -> Slot {
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
fn fetch(id: u64, slot: Option<Slot>) -> Arc<Node> {
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
fn deregister(slot: Slot) {
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

/// Wraps `fut` so it is registered as a task named `name`, a child of the
/// tracked task running here (if any), spawned from the caller's
/// location. Spawn the result on any executor; [`spawn`] and [`spawn_on`]
/// do it for smol.
///
/// ```
/// use smol_devx::task;
///
/// // async-std, or any executor: wrap, then spawn as usual.
/// let answer = async_std::task::block_on(task::track("answer", async { 42 }));
/// assert_eq!(answer, 42);
/// ```
#[track_caller]
pub fn track<F: Future>(name: impl Into<Cow<'static, str>>, fut: F) -> Tracked<F> {
    let id = NEXT_ID.fetch_add(1, Relaxed);
    let slot = register(Birth {
        id,
        name: name.into(),
        parent: current_id(),
        site: Location::caller(),
        now: birth_time(),
    });
    Tracked {
        task: Task {
            id,
            node: None,
            slot: Some(slot),
            stack: None,
        },
        fut: Some(fut),
    }
}

/// Spawns a tracked task: on this thread's local executor inside
/// [`block_on`](super::block_on) (where every actor runs), else on smol's
/// global executor.
///
/// ```
/// let t = smol_devx::task::spawn("add", async { 1 + 1 });
/// assert_eq!(smol::block_on(t), 2);
/// ```
#[track_caller]
pub fn spawn<T: Send + 'static>(
    name: impl Into<Cow<'static, str>>,
    fut: impl Future<Output = T> + Send + 'static,
) -> smol::Task<T> {
    super::executor::spawn(track(name, fut))
}

/// Spawns a tracked task on the executor `ex`.
///
/// ```
/// let ex = smol::Executor::new();
/// let t = smol_devx::task::spawn_on(&ex, "add", async { 1 + 1 });
/// assert_eq!(smol::block_on(ex.run(t)), 2);
/// ```
#[track_caller]
pub fn spawn_on<'a, T: Send + 'a>(
    ex: &smol::Executor<'a>,
    name: impl Into<Cow<'static, str>>,
    fut: impl Future<Output = T> + Send + 'a,
) -> smol::Task<T> {
    ex.spawn(track(name, fut))
}

pin_project_lite::pin_project! {
    /// A future registered as a task; see [`track`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Tracked<F> {
        task: Task,
        #[pin]
        fut: Option<F>,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.fut.is_some() {
                // Destructors of a task dropped mid-flight run as that
                // task, so spans they close are found.
                let _frame = Entered::enter(this.task, 0);
                this.fut.set(None);
            }
            if let Some(slot) = this.task.slot.take() {
                deregister(slot);
            }
        }
    }
}

/// What a [`Tracked`] knows of its task, apart from its future.
struct Task {
    id: u64,
    /// The task's node, once it stayed pending (see [`register`]).
    node: Option<Arc<Node>>,
    /// `None` once the task left the registry.
    slot: Option<Slot>,
    /// Made at the first span the task opens: most tasks open none, and
    /// a smaller future is a cheaper task allocation.
    stack: Option<Box<SpanStack>>,
}

impl Task {
    /// The task's node, taken from its shard and claimed the first time.
    #[inline]
    fn node(&mut self) -> &Node {
        let (id, slot) = (self.id, self.slot);
        self.node.get_or_insert_with(|| fetch(id, slot))
    }
}

/// This thread's current task and frame swapped to a task's for as long
/// as it lives; the previous ones come back on drop, also when the poll
/// panics (a task polled inside another's poll, by a nested `block_on`,
/// nests the same way). On the way out, spans changed by the poll are
/// published to the task's node: one short lock per poll that changed
/// them, none when the task has no spans left.
struct Entered<'a> {
    task: &'a mut Task,
    saved: (u64, u32, u32, bool, u64),
    saved_spans: Vec<SpanRec>,
}

impl<'a> Entered<'a> {
    /// `since`: when this poll began (0 for a destructor's run, which is
    /// not shown as a poll).
    #[inline(always)]
    fn enter(task: &'a mut Task, since: u64) -> Self {
        let (spans, next) = match &mut task.stack {
            Some(stack) => (std::mem::take(&mut stack.spans), stack.next),
            None => (Vec::new(), 0),
        };
        let (saved, polling) = HERE.with(|h| {
            (
                (
                    h.task.replace(task.id),
                    h.current.replace(0),
                    h.next.replace(next),
                    h.dirty.replace(false),
                    h.since.replace(since),
                ),
                h.polling.get(),
            )
        });
        // A destructor's run (`since` 0) is not shown as a poll.
        if since != 0 {
            let polling = polling.unwrap_or_else(take_polling);
            let (outer, outer_since) = (saved.0, saved.4);
            if outer != 0 && outer_since != 0 {
                polling.nest(outer, outer_since);
            }
            polling.since.store(since, Relaxed);
            polling.task.store(task.id, Release);
        }
        let saved_spans = STACK.with(|s| s.replace(spans));
        Self {
            task,
            saved,
            saved_spans,
        }
    }
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        let (task, current, next, dirty, since) = self.saved;
        let (next, dirty, shown) = HERE.with(|h| {
            h.task.set(task);
            h.current.set(current);
            // Shown when it began at a time (see `enter`).
            let shown = h.since.replace(since) != 0;
            (
                h.next.replace(next),
                h.dirty.replace(dirty),
                h.polling.get().filter(|_| shown),
            )
        });
        if let Some(polling) = shown {
            if task != 0 && since != 0 {
                polling.unnest(since);
            }
            let shown = if since != 0 { task } else { 0 };
            polling.task.store(shown, Release);
        }
        let spans = STACK.with(|s| s.replace(std::mem::take(&mut self.saved_spans)));
        let t = &mut *self.task;
        if t.stack.is_none() && spans.capacity() == 0 {
            // No span ever opened: nothing to keep or publish.
            return;
        }
        let stack = &mut **t.stack.get_or_insert_with(Box::default);
        (stack.spans, stack.next) = (spans, next);
        if !dirty {
            return;
        }
        if stack.spans.is_empty() {
            if std::mem::take(&mut stack.shown) {
                if let Some(node) = t.node.as_deref() {
                    node.has_spans.store(false, Relaxed);
                }
            }
        } else if !(stack.shown && same_shape(&stack.spans, &stack.published)) {
            // Taken out to borrow the node beside it.
            let mut stack = t.stack.take().unwrap_or_default();
            let node = t.node();
            if !same_shape(&stack.spans, &stack.published) {
                lock(&node.spans).set(&stack.spans);
                stack.published.clear();
                stack.published.extend_from_slice(&stack.spans);
            }
            node.has_spans.store(true, Relaxed);
            stack.shown = true;
            t.stack = Some(stack);
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        let start = now_ns();
        let out = {
            let _frame = Entered::enter(this.task, start);
            let fut = this
                .fut
                .as_mut()
                .as_pin_mut()
                .expect("`Tracked` polled after completion");
            let out = fut.poll(cx);
            if out.is_ready() {
                this.fut.set(None);
            }
            out
        };
        if out.is_ready() {
            // Finished tasks leave now, not when the executor drops them;
            // their figures are never read again, so the clock is not
            // read for them either.
            if let Some(slot) = this.task.slot.take() {
                deregister(slot);
            }
            return out;
        }
        let end = now_ns();
        let node = this.task.node();
        node.busy_ns.store(
            node.busy_ns.load(Relaxed) + end.saturating_sub(start),
            Relaxed,
        );
        node.polls.store(node.polls.load(Relaxed) + 1, Relaxed);
        node.since_ns.store(end, Relaxed);
        out
    }
}

/// Opens span `what` in the task polled on this thread, under the span
/// being polled, and makes it the one being polled. `None` outside a
/// tracked task; else the task, the span, and the span to restore with
/// [`leave_span`].
#[inline]
pub(crate) fn open_span(what: &'static str) -> Option<(u64, u32, u32)> {
    let (task, id, parent) = HERE.with(|h| {
        let task = h.task.get();
        if task == 0 {
            return None;
        }
        let id = h.next.get().wrapping_add(1).max(1);
        h.next.set(id);
        h.dirty.set(true);
        Some((task, id, h.current.replace(id)))
    })?;
    STACK.with(|s| {
        s.try_borrow_mut()
            .ok()
            .map(|mut s| s.push(SpanRec { id, parent, what }))
    })?;
    Some((task, id, parent))
}

/// Makes `span` of `task` the one being polled; returns the previous one
/// for [`leave_span`]. `None` when `task` is not the one polled here.
#[inline]
pub(crate) fn enter_span(task: u64, span: u32) -> Option<u32> {
    HERE.with(|h| (h.task.get() == task).then(|| h.current.replace(span)))
}

/// Restores the span being polled to `prev` and, when `close` is set,
/// closes `span`; called right after the span's own poll, so by the task
/// that entered it.
#[inline]
pub(crate) fn leave_span(span: u32, prev: u32, close: bool) {
    HERE.with(|h| {
        h.current.set(prev);
        if close {
            h.dirty.set(true);
        }
    });
    if close {
        remove(span);
    }
}

/// Closes `span` of `task`, when that task is the one polled here (a
/// span's future dropped elsewhere leaves with its task). Only a future
/// dropped mid-flight gets here: out of line, so the check before it
/// inlines wherever an instrumented future is dropped.
#[cold]
#[inline(never)]
pub(crate) fn close_span(task: u64, span: u32) {
    let here = HERE.with(|h| {
        let here = h.task.get() == task;
        if here {
            h.dirty.set(true);
        }
        here
    });
    if here {
        remove(span);
    }
}

#[inline(always)]
fn remove(span: u32) {
    STACK.with(|s| {
        let Ok(mut spans) = s.try_borrow_mut() else {
            return;
        };
        // Nearly always the last one: spans close innermost first.
        if spans.last().is_some_and(|s| s.id == span) {
            spans.pop();
        } else {
            remove_inner(&mut spans, span);
        }
    })
}

/// A span closed before one opened after it (a future of a `join`).
#[cold]
#[inline(never)]
fn remove_inner(spans: &mut Vec<SpanRec>, span: u32) {
    if let Some(i) = spans.iter().rposition(|s| s.id == span) {
        spans.remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the tests look at of one task.
    struct Seen {
        id: u64,
        name: Cow<'static, str>,
        parent: Option<u64>,
        polls: u64,
        polling: bool,
        site: &'static Location<'static>,
        spans: Vec<SpanRec>,
    }

    fn seen_all() -> Vec<Seen> {
        snapshot(live(), |v| Seen {
            id: v.id,
            name: v.name.clone(),
            parent: v.parent,
            polls: v.polls,
            polling: v.polling,
            site: v.site,
            spans: v.spans.to_vec(),
        })
    }

    fn find(id: u64) -> Option<Seen> {
        seen_all().into_iter().find(|n| n.id == id)
    }

    #[test]
    fn a_task_is_registered_until_it_ends() {
        let fut = track("short", async { current_id() });
        let id = fut.task.id;
        let view = find(id).expect("registered at creation");
        assert_eq!(view.name, "short");
        assert_eq!(view.polls, 0);
        assert!(view.site.file().ends_with("registry.rs"));
        let seen = smol::block_on(fut);
        assert_eq!(seen, Some(id), "the task sees itself as current");
        assert!(find(id).is_none(), "finished tasks leave");
        assert_eq!(current_id(), None);
    }

    #[test]
    fn a_task_polled_inside_another_s_poll_shows_both_polling() {
        let outer = track("outer-poll", async {
            let outer = current_id().unwrap();
            let inner = track("inner-poll", async move {
                let inner = current_id().unwrap();
                (
                    is_polling(outer),
                    is_polling(inner),
                    find(outer).map(|v| v.polling),
                )
            });
            // A nested `block_on`, as sync code called from a task does.
            let seen = smol::block_on(inner);
            (seen, is_polling(outer), find(outer).map(|v| v.polling))
        });
        let ((outer_seen, inner_seen, outer_view), after, view_after) = smol::block_on(outer);
        assert!(
            outer_seen && inner_seen,
            "both poll: the outer one waits in its poll"
        );
        assert_eq!(outer_view, Some(true));
        assert!(after, "still in its own poll once the inner one ended");
        assert_eq!(view_after, Some(true));
    }

    #[test]
    fn a_thread_s_polling_slot_is_reused_once_it_ends() {
        let made = || lock(&THREADS).all.len();
        let run = || {
            std::thread::spawn(|| smol::block_on(track("on-a-thread", async { current_id() })))
                .join()
                .unwrap()
        };
        run();
        let before = made();
        // Other tests' threads may take slots meanwhile, but 20 threads
        // one after the other need at most one more each of those.
        for _ in 0..20 {
            assert!(run().is_some());
        }
        assert!(made() < before + 20, "{before} -> {}", made());
    }

    #[test]
    fn a_task_is_polling_only_during_its_polls() {
        let mut fut = Box::pin(track("polling-test", async {
            let me = current_id().unwrap();
            let during = is_polling(me);
            smol::future::yield_now().await;
            (me, during)
        }));
        let id = fut.task.id;
        assert!(!is_polling(id), "not polled yet");
        assert!(smol::block_on(smol::future::poll_once(&mut fut)).is_none());
        assert!(!is_polling(id), "between polls");
        let (me, during) = smol::block_on(fut);
        assert_eq!(me, id);
        assert!(during);
        assert!(!is_polling(id), "finished");
    }

    #[test]
    fn children_name_their_spawner_as_parent() {
        let (parent, child_parent) = smol::block_on(track("parent", async {
            let me = current_id();
            let child = spawn("child", async {
                smol::future::yield_now().await;
                current_id().and_then(find).and_then(|v| v.parent)
            });
            (me, child.await)
        }));
        assert!(parent.is_some());
        assert_eq!(child_parent, parent);
    }

    #[test]
    fn span_lists_compare_by_labels_and_nesting_not_ids() {
        let rec = |id, parent, what| SpanRec { id, parent, what };
        let a = [rec(1, 0, "outer"), rec(2, 1, "inner")];
        let b = [rec(7, 0, "outer"), rec(9, 7, "inner")];
        let flat = [rec(7, 0, "outer"), rec(9, 0, "inner")];
        let other = [rec(1, 0, "outer"), rec(2, 1, "other")];
        assert!(same_shape(&a, &b));
        assert!(!same_shape(&a, &flat));
        assert!(!same_shape(&a, &other));
        assert!(!same_shape(&a, &a[..1]));
    }

    #[test]
    fn a_span_awaited_in_a_loop_shows_each_time() {
        use crate::task::Instrument;
        let (tx, rx) = async_channel::bounded::<()>(1);
        let task = spawn("looping-span-test", async move {
            for _ in 0..3 {
                if rx.recv().instrument("next item").await.is_err() {
                    break;
                }
            }
        });
        let id = loop {
            let found = seen_all()
                .into_iter()
                .find(|v| v.name == "looping-span-test");
            if let Some(v) = found {
                break v.id;
            }
            std::thread::yield_now();
        };
        for _ in 0..3 {
            // Idle in the span (published, maybe by the skip path).
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let spans = find(id).map(|v| v.spans).unwrap_or_default();
                if spans.len() == 1 && spans[0].what == "next item" {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{spans:?}");
                std::thread::yield_now();
            }
            smol::block_on(tx.send(())).unwrap();
        }
        smol::block_on(task);
    }

    #[test]
    fn tasks_finished_on_another_thread_leave_and_give_their_slots_back() {
        // On a thread of its own, so that it has a shard of its own.
        std::thread::spawn(|| {
            let shard = my_shard() as usize;
            let mut ids = Vec::new();
            for _ in 0..10 {
                let tasks: Vec<_> = (0..100)
                    .map(|i| track("finished-elsewhere", async move { i }))
                    .collect();
                ids = tasks.iter().map(|t| t.task.id).collect();
                std::thread::spawn(move || {
                    for t in tasks {
                        smol::block_on(t);
                    }
                })
                .join()
                .unwrap();
            }
            // Spawns here took them back: without, the shard would hold
            // 1,000 slots.
            let slots = lock(&REGISTRY[shard].shard).slots.len();
            assert!(slots <= 200, "{slots} slots");
            let seen = seen_all();
            assert!(ids.iter().all(|id| seen.iter().all(|v| v.id != *id)));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_dropped_task_leaves_the_registry() {
        let mut fut = Box::pin(track("forever", smol::future::pending::<()>()));
        let id = fut.task.id;
        assert!(smol::block_on(smol::future::poll_once(&mut fut)).is_none());
        let view = find(id).unwrap();
        assert_eq!(view.polls, 1);
        assert!(!view.polling);
        drop(fut);
        assert!(find(id).is_none());
    }
}

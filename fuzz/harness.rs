//! The fuzz targets' bodies, shared by the cargo-fuzz binaries in
//! `fuzz_targets/` and by `tests/fuzz_seeds.rs`, which replays the
//! committed seeds on stable with a plain `cargo test`.
//!
//! Each function panics when an invariant breaks; anything else it does
//! with hostile input must end in a typed error.

#![allow(dead_code)] // each including binary uses a part

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use smol::future;
use smol_devx::codec::{encode_pld, Codec, CodecError, PldSpec};
use smol_devx::msg::{ActorUid, LockMsg, LockRelease, LockRequest, LockStatus, Msg, TaskUid};
use smol_devx::task::{current_pld_spec, with_pld_spec};

/// Largest frame the `decode_frame` target accepts: small, so that the
/// fuzzer reaches the oversize path with short inputs.
pub const FUZZ_MAX_FRAME: usize = 64 * 1024;

thread_local! {
    static LARGEST_ALLOC: Cell<usize> = const { Cell::new(0) };
}

/// A global allocator that records, per thread, the largest single
/// allocation: the `decode_frame` invariant "never allocates beyond the
/// frame bound" is checked against it.
pub struct PeakAlloc;

// SAFETY: every call forwards to `System` unchanged; the bookkeeping only
// touches a const-initialised thread-local `Cell` (no allocation, no
// destructor), through `try_with` so it is skipped during thread teardown.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

fn note_alloc(size: usize) {
    let _ = LARGEST_ALLOC.try_with(|l| l.set(l.get().max(size)));
}

/// Runs `f` and returns the largest single allocation it made on this
/// thread (0 when `PeakAlloc` is not the global allocator).
pub fn largest_alloc_during(f: impl FnOnce()) -> usize {
    LARGEST_ALLOC.with(|l| l.set(0));
    f();
    LARGEST_ALLOC.with(|l| l.get())
}

/// How much memory one received byte may turn into, at most, in one
/// allocation: a one-byte CBOR item can become a `ciborium::Value`, a map
/// entry is two of them from two bytes, and a growing `Vec` doubles.
pub fn alloc_bound(input_len: usize) -> usize {
    4 * std::mem::size_of::<ciborium::Value>() * input_len + 64 * 1024
}

/// Arbitrary bytes through the frame decoder, the stream reader and the
/// payload decoder under every spec.
///
/// Invariants: no panic; failures are typed; the slice decoder and the
/// stream reader agree; whatever decodes re-encodes to the same message,
/// in ciborium's bytes; a payload accepted under the lock spec decodes
/// identically without it; memory follows the bytes that arrived, never
/// the lengths they claim (see [`alloc_bound`]).
pub fn decode_frame(data: &[u8]) {
    let codec = Codec::default().with_max_frame(FUZZ_MAX_FRAME);
    let largest = largest_alloc_during(|| check_decode(&codec, data));
    assert!(
        largest <= alloc_bound(data.len()),
        "an allocation of {largest} bytes for a {}-byte input",
        data.len()
    );
}

fn check_decode(codec: &Codec, data: &[u8]) {
    agrees_with_ciborium(codec, data);
    let sliced = codec.decode_frame(data);
    let mut reader = data;
    let mut buf = Vec::new();
    let streamed = future::block_on(codec.read_msg(&mut reader, &mut buf));
    match (&sliced, &streamed) {
        (Ok((a, used)), Ok(Some(b))) => {
            assert_eq!(a, b, "slice and stream decoders disagree");
            assert_eq!(data.len() - reader.len(), *used);
        }
        (Err(_), Err(_)) => {}
        (Err(CodecError::Truncated { .. }), Ok(None)) if data.is_empty() => {}
        _ => panic!("slice decoder said {sliced:?}, stream reader said {streamed:?}"),
    }
    // The channel's read loop reads from a buffer: the same frames, the
    // same bytes used, the same outcome.
    let mut buffered_reader = data;
    let buffered = future::block_on(codec.read_msg_buffered(&mut buffered_reader, &mut buf));
    match (&streamed, &buffered) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "buffered and stream readers disagree");
            assert_eq!(buffered_reader.len(), reader.len());
        }
        (Err(_), Err(_)) => {}
        _ => panic!("stream reader said {streamed:?}, buffered reader said {buffered:?}"),
    }
    let Ok((msg, used)) = sliced else { return };
    // The codec decodes most frames without ciborium; whatever it
    // accepts, ciborium must read the same.
    assert_eq!(ciborium_reads::<Msg>(&data[4..used]), msg);

    let again = codec.encode(&msg).expect("a decoded message re-encodes");
    // The codec writes the common envelopes by hand: as ciborium does.
    let mut theirs = Vec::new();
    ciborium::ser::into_writer(&msg, &mut theirs).unwrap();
    assert_eq!(
        again[4..],
        theirs,
        "the codec wrote other bytes than ciborium"
    );
    assert_eq!(
        codec
            .decode_frame(&again)
            .expect("re-encoded frame decodes")
            .0,
        msg
    );

    let pld = match &msg {
        Msg::Start { pld, .. }
        | Msg::Started { pld, .. }
        | Msg::Yield { pld, .. }
        | Msg::Return { pld, .. } => pld,
        _ => return,
    };
    let locked = future::block_on(with_pld_spec(&PldSpec::LOCK, async {
        codec.decode_pld::<LockMsg>(current_pld_spec(), pld)
    }));
    let open = codec.decode_pld::<LockMsg>(current_pld_spec(), pld);
    // The codec's path (pre-scan, then ciborium with a small scratch)
    // against ciborium alone, which is only given well-formed values (it
    // allocates what a string's head claims).
    let well_formed = codec
        .decode_pld::<ciborium::Value>(current_pld_spec(), pld)
        .is_ok();
    let direct: Option<LockMsg> = if well_formed {
        ciborium::de::from_reader(pld.as_bytes()).ok()
    } else {
        None
    };
    if let Ok(lock_msg) = locked {
        assert!(well_formed, "the codec read a LockMsg from malformed CBOR");
        assert_eq!(
            direct,
            Some(lock_msg.clone()),
            "the codec read a LockMsg that ciborium alone does not"
        );
        assert_eq!(
            open.expect("allowed under LOCK, refused under ANY"),
            lock_msg
        );
    }
    let _ = codec.decode_pld::<ciborium::Value>(current_pld_spec(), pld);
}

/// What ciborium makes of bytes the codec accepted (it must accept them).
fn ciborium_reads<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    ciborium::de::from_reader_with_buffer(bytes, &mut [0; 256])
        .expect("the codec accepted what ciborium refuses")
}

/// The codec's own structural pass must neither refuse what ciborium
/// (with a recursion limit well inside ours) decodes, nor accept what
/// ciborium (at its widest) refuses; values must come out the same.
fn agrees_with_ciborium(codec: &Codec, data: &[u8]) {
    use smol_devx::msg::Pld;
    let ours =
        codec.decode_pld::<ciborium::Value>(current_pld_spec(), &Pld::from_raw(data.to_vec()));
    let mut rest = data;
    let theirs: Result<ciborium::Value, _> =
        ciborium::de::from_reader_with_recursion_limit(&mut rest, codec.max_depth() / 2);
    let bytes = |v: &ciborium::Value| {
        let mut out = Vec::new();
        ciborium::ser::into_writer(v, &mut out).unwrap();
        out
    };
    match (&ours, theirs) {
        (Ok(a), Ok(b)) => assert_eq!(bytes(a), bytes(&b), "values differ"),
        (Err(CodecError::TrailingBytes { extra }), Ok(_)) => assert_eq!(*extra, rest.len()),
        // RFC 8949 3.2.3: the chunks of an indefinite-length string are
        // definite strings of its own type. ciborium lets nested
        // indefinite chunks through; the codec holds to the RFC.
        (Err(CodecError::Malformed { reason, .. }), Ok(_)) if reason.contains("chunk") => {}
        (Err(e), Ok(_)) => panic!("codec refused what ciborium decodes: {e}"),
        (Ok(_), Err(_)) => {
            let mut again = data;
            let wide: Result<ciborium::Value, _> =
                ciborium::de::from_reader_with_recursion_limit(&mut again, Codec::MAX_DEPTH_CAP);
            assert!(wide.is_ok(), "codec accepted what ciborium refuses");
        }
        (Err(_), Err(_)) => {}
    }
}

/// A byte cursor that reads zeros once the input is used up.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

static ONLY_STATUS: PldSpec = PldSpec::new("OnlyStatus", &["LockStatus"]);
static APP: PldSpec = PldSpec::new("App", &["Ping"]);
static SPECS: [&PldSpec; 4] = [&PldSpec::ANY, &PldSpec::LOCK, &ONLY_STATUS, &APP];

/// An application payload type, outside the lock spec.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
enum AppMsg {
    Ping(u32),
}

/// The payloads tasks send each other: every lock message, a tagged app
/// message and an untagged value.
fn payload(kind: u8, n: u8) -> ciborium::Value {
    let uid = ActorUid::new(format!("a{n}"), "u");
    let value = match kind % 5 {
        0 => ciborium::Value::serialized(&LockMsg::LockRequest(LockRequest {
            subactor_uid: uid,
            task_uid: TaskUid::new("t", n.into()),
        })),
        1 => ciborium::Value::serialized(&LockMsg::LockStatus(LockStatus {
            subactor_uid: uid,
            cid: n.into(),
            locked: n % 2 == 0,
        })),
        2 => ciborium::Value::serialized(&LockMsg::LockRelease(LockRelease {
            subactor_uid: uid,
            cid: n.into(),
        })),
        3 => ciborium::Value::serialized(&AppMsg::Ping(n.into())),
        _ => Ok(ciborium::Value::Integer(n.into())),
    };
    value.expect("payloads serialize")
}

type Mailboxes = Rc<RefCell<Vec<VecDeque<Vec<u8>>>>>;

/// Checks, when dropped, that the spec in force is still `expected`: a
/// task dropped mid-scope must run its destructors inside its own scope.
struct SpecGuard(&'static PldSpec);

impl Drop for SpecGuard {
    fn drop(&mut self) {
        assert!(
            current_pld_spec() == self.0,
            "destructor saw spec {} instead of {}",
            current_pld_spec().name(),
            self.0.name()
        );
    }
}

/// One step of a task's script.
#[derive(Clone, Copy, Debug)]
enum Op {
    Yield,
    Send { kind: u8, to: u8 },
    Recv,
}

fn op(b: u8) -> Op {
    match b % 4 {
        0 | 1 => Op::Send {
            kind: b / 4,
            to: b / 20,
        },
        2 => Op::Recv,
        _ => Op::Yield,
    }
}

/// Runs `ops`, checking before and after every await that the spec in
/// force is `spec`, and that every received payload was judged by it.
async fn run_ops(me: usize, spec: &'static PldSpec, ops: Vec<Op>, boxes: Mailboxes) {
    let _guard = SpecGuard(spec);
    let codec = Codec::default();
    for (i, op) in ops.into_iter().enumerate() {
        assert!(current_pld_spec() == spec, "task {me} lost its spec");
        match op {
            Op::Yield => future::yield_now().await,
            Op::Send { kind, to } => {
                let pld = encode_pld(&payload(kind, i as u8)).unwrap();
                let frame = codec
                    .encode(&Msg::Yield {
                        cid: me as u64,
                        pld,
                    })
                    .unwrap();
                let mut boxes = boxes.borrow_mut();
                let n = boxes.len();
                boxes[usize::from(to) % n].push_back(frame);
            }
            Op::Recv => {
                let frame = boxes.borrow_mut()[me].pop_front();
                let Some(frame) = frame else {
                    future::yield_now().await;
                    continue;
                };
                // Decoding waits a turn, so that other tasks' scopes come
                // and go between receipt and decode.
                future::yield_now().await;
                let (msg, _) = codec.decode_frame(&frame).expect("own frames decode");
                let Msg::Yield { pld, .. } = msg else {
                    panic!("sent only Yield")
                };
                let decoded = codec.decode_pld::<ciborium::Value>(current_pld_spec(), &pld);
                let original: ciborium::Value = ciborium::de::from_reader(pld.as_bytes()).unwrap();
                let allowed = match tag_of(&original) {
                    Some(tag) => spec.allows(tag),
                    None => *spec == PldSpec::ANY,
                };
                match decoded {
                    Ok(v) => {
                        assert!(allowed, "spec {} let {original:?} through", spec.name());
                        assert_eq!(v, original);
                    }
                    Err(CodecError::MsgType(e)) => {
                        assert!(!allowed, "spec {} refused {original:?}: {e}", spec.name());
                        assert_eq!(e.spec, spec.name(), "judged by another task's spec");
                    }
                    Err(e) => panic!("unexpected decode error {e}"),
                }
            }
        }
    }
    assert!(current_pld_spec() == spec, "task {me} lost its spec");
}

/// The tag of an externally tagged value, as the spec check sees it.
fn tag_of(v: &ciborium::Value) -> Option<&str> {
    match v {
        ciborium::Value::Map(entries) if entries.len() == 1 => entries[0].0.as_text(),
        ciborium::Value::Text(t) => Some(t),
        _ => None,
    }
}

/// Several tasks on one deterministic executor enter and leave pld-spec
/// scopes (nested too), await, send each other frames and decode them,
/// and are dropped at arbitrary points, all in the order the input says.
///
/// Invariants: every decode is judged by exactly its own task's innermost
/// spec, destructors of a dropped task run inside its scope, and no scope
/// leaks into the executor between polls.
pub fn codec_race(data: &[u8]) {
    const MAX_TASKS: usize = 6;
    let mut input = Input(data);
    let boxes: Mailboxes = Rc::new(RefCell::new(vec![VecDeque::new(); MAX_TASKS]));
    let mut tasks: Vec<Option<Pin<Box<dyn Future<Output = ()>>>>> =
        (0..MAX_TASKS).map(|_| None).collect();
    while !input.is_empty() {
        let action = input.byte();
        let slot = usize::from(action >> 2) % MAX_TASKS;
        match action & 3 {
            // Spawn into the slot (dropping what was there).
            0 => {
                let shape = input.byte();
                // Odd shapes run with no outer scope at all: they must see ANY.
                let scoped = shape & 1 == 0;
                let outer = SPECS[usize::from(input.byte()) % SPECS.len()];
                let outer = if scoped { outer } else { &PldSpec::ANY };
                let inner = SPECS[usize::from(input.byte()) % SPECS.len()];
                let ops: Vec<Op> = (0..shape % 8).map(|_| op(input.byte())).collect();
                let nested: Vec<Op> = (0..shape / 32).map(|_| op(input.byte())).collect();
                let boxes = boxes.clone();
                let body = async move {
                    let (head, tail) = ops.split_at(ops.len() / 2);
                    run_ops(slot, outer, head.to_vec(), boxes.clone()).await;
                    with_pld_spec(inner, run_ops(slot, inner, nested, boxes.clone())).await;
                    run_ops(slot, outer, tail.to_vec(), boxes).await;
                };
                tasks[slot] = Some(if scoped {
                    Box::pin(with_pld_spec(outer, body))
                } else {
                    Box::pin(body)
                });
            }
            // Poll the slot's task once.
            1 | 2 => {
                if let Some(task) = &mut tasks[slot] {
                    if future::block_on(future::poll_once(task.as_mut())).is_some() {
                        tasks[slot] = None;
                    }
                }
            }
            // Drop (cancel) the slot's task wherever it is.
            _ => tasks[slot] = None,
        }
        assert!(
            *current_pld_spec() == PldSpec::ANY,
            "a scope leaked into the executor: {} after action {action}",
            current_pld_spec().name()
        );
    }
}

/// The REPL's reading of typed lines, any bytes: it never fails on its
/// input (a pipe of bytes cannot fail to read), writes only UTF-8, shows
/// at most one prompt per line (and one for the end of input), and
/// refuses as too long only lines that are.
pub fn repl_input(data: &[u8]) {
    use smol_devx::debug::repl::{self, Location, Plain, Session, MAX_LINE, PROMPT, TOO_LONG};
    static SESSION: std::sync::OnceLock<Session> = std::sync::OnceLock::new();
    let session = SESSION.get_or_init(|| {
        let here = Location {
            file: file!().into(),
            line: line!(),
        };
        let uid = ActorUid::new("fuzz", "1");
        let mut session = Session::pause(&uid, here, vec![("x", "42".into())]);
        session.lock_state = std::sync::Arc::new(|| "tree lock free".into());
        session
    });
    let mut out = Vec::new();
    repl::run(session, &mut Plain(data), &mut out).expect("bytes always read");
    let out = String::from_utf8(out).expect("the REPL writes UTF-8");
    let lines: Vec<String> = data
        .split(|&b| b == b'\n')
        .map(|l| String::from_utf8_lossy(l).trim_end_matches('\r').to_owned())
        .collect();
    let prompts = out.matches(PROMPT).count();
    assert!(
        prompts <= lines.len() + 1,
        "{prompts} prompts for {} lines",
        lines.len()
    );
    let long = lines.iter().filter(|l| l.len() >= MAX_LINE).count();
    let refused = out.matches(TOO_LONG).count();
    assert!(
        refused <= long,
        "{refused} lines refused as too long, {long} are"
    );
}

//! The tree-wide TTY lock across real processes: mutual exclusion and
//! FIFO order under contention, and recovery from every fault.

#![cfg(feature = "runtime")]

mod common;

use std::time::Duration;

use common::{actor_pids, assert_reaped, has, kill9, pid_on, Running};

const T: Duration = Duration::from_secs(30);

/// Waits for `root` to end, and checks what every scenario must end
/// with: success, the lock free, every actor reaped. Returns the output.
fn ends_cleanly(root: Running, timeout: Duration) -> Vec<String> {
    let (status, lines) = root.finish(timeout);
    assert!(status.success(), "{lines:#?}");
    assert!(
        has(&lines, |l| l == "lock in use at exit: false"),
        "{lines:#?}"
    );
    assert_reaped(&actor_pids(&lines));
    lines
}

/// 8 subactors x 50 rounds: no two critical sections overlap, and the
/// root granted in request order.
#[test]
fn eight_subactors_never_overlap_and_are_served_in_order() {
    let file = std::env::temp_dir().join(format!("smol-devx-contend-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let root = Running::start(
        "debug_lock",
        &["contend", "8", "50", file.to_str().unwrap()],
        &[],
    );
    let lines = ends_cleanly(root, Duration::from_secs(120));
    let markers = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let markers: Vec<&str> = markers.lines().collect();
    assert_eq!(markers.len(), 8 * 50 * 2);
    for pair in markers.chunks(2) {
        let (b, e) = (pair[0], pair[1]);
        assert!(
            b.starts_with("B ") && e.starts_with("E "),
            "overlap: {b:?} then {e:?}"
        );
        assert_eq!(b[2..], e[2..], "overlap: {b:?} closed by {e:?}");
    }
    assert!(
        lines.iter().any(|l| l == "grants 400 out_of_order 0"),
        "{lines:#?}"
    );
}

#[test]
fn a_killed_holder_does_not_keep_the_lock() {
    let mut root = Running::start("debug_lock", &["holder_killed"], &[]);
    let seen = root.expect_all(&["holder pid", "waiter queued"], T);
    let holder = pid_on(&seen[0]);
    kill9(holder);
    // stdout and stderr arrive through separate pipes: check each line,
    // not their interleaving.
    let lines = ends_cleanly(root, T);
    let forced = lines
        .iter()
        .find(|l| l.contains("force-releasing the tree lock held by ('holder'"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(forced.contains("the peer is gone"), "{forced}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("waiter pid") && l.ends_with("locked")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l == "holder ended: ActorFailed"),
        "{lines:#?}"
    );
}

#[test]
fn a_waiter_killed_in_the_queue_leaves_it_and_the_next_is_served() {
    let mut root = Running::start("debug_lock", &["waiter_killed"], &[]);
    root.expect("queued w1 w2", T);
    let w1 = root
        .seen
        .iter()
        .find(|l| l.starts_with("w1 pid") && l.ends_with("requesting"))
        .map(|l| pid_on(l))
        .unwrap();
    kill9(w1);
    // The holder releases only once the queue is exactly [w2].
    root.expect("sees queue [\"w2\"]", T);
    let lines = ends_cleanly(root, T);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("w2 pid") && l.ends_with("locked")),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("w1 pid") && l.ends_with("locked")),
        "{lines:#?}"
    );
}

#[test]
fn the_same_task_asking_twice_is_refused_not_deadlocked() {
    let root = Running::start("debug_lock", &["double"], &[]);
    let lines = ends_cleanly(root, T);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("refused: double lock request")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.ends_with(" released")), "{lines:#?}");
}

#[test]
fn one_task_awaiting_two_pauses_gets_one_repl_and_one_refusal() {
    let root = Running::start(
        "debug_lock",
        &["double_pause"],
        &[("SMOL_DEVX_REPL_SCRIPT", "c")],
    );
    let lines = ends_cleanly(root, T);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("second pause refused: double lock request")),
        "{lines:#?}"
    );
}

#[test]
fn requests_abandoned_at_every_await_point_leave_the_lock_free() {
    let root = Running::start("debug_lock", &["cancel_at_each_poll"], &[]);
    let lines = ends_cleanly(root, T);
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("survived 30 abandoned requests")),
        "{lines:#?}"
    );
}

mod peers {
    //! Raw peers speaking the lock dialog to a serving root, frame by
    //! frame, to break its protocol on purpose.

    use super::*;
    use smol_devx::codec::{encode_pld, Codec};
    use smol_devx::debug::lock_dialog::LOCK_HANDLER;
    use smol_devx::ipc::auth::client_handshake;
    use smol_devx::ipc::transport::{connect, Addr};
    use smol_devx::ipc::Stream;
    use smol_devx::msg::{ActorUid, LockMsg, LockRelease, LockRequest, LockStatus, Msg, TaskUid};
    use smol_devx::task::decode_pld;

    const TOKEN: &str = "feedfacefeedfacefeedfacefeedface";

    pub fn serving_root() -> (Running, Addr) {
        let mut root = Running::start("debug_lock", &["serve"], &[("SMOL_DEVX_TOKEN", TOKEN)]);
        let line = root.expect("listening", T);
        (root, line.rsplit(' ').next().unwrap().parse().unwrap())
    }

    pub struct Peer {
        pub uid: ActorUid,
        stream: Stream,
        codec: Codec,
        buf: Vec<u8>,
    }

    impl Peer {
        pub async fn join(addr: &Addr, name: &str) -> Peer {
            let uid = ActorUid::new(name, "p");
            let mut stream = connect(addr).await.unwrap();
            client_handshake(&mut stream, &uid, TOKEN, &Codec::default())
                .await
                .unwrap();
            Peer {
                uid,
                stream,
                codec: Codec::default(),
                buf: Vec::new(),
            }
        }

        pub async fn send(&mut self, msg: Msg) {
            self.codec
                .write_msg(&mut self.stream, &msg, &mut self.buf)
                .await
                .unwrap();
        }

        pub async fn next(&mut self) -> Option<Msg> {
            self.codec
                .read_msg(&mut self.stream, &mut self.buf)
                .await
                .unwrap()
        }

        /// Opens lock dialog `cid`; returns once granted.
        pub async fn lock(&mut self, cid: u64) {
            self.request(cid).await;
            self.granted(cid).await;
        }

        pub async fn request(&mut self, cid: u64) {
            let req = LockMsg::LockRequest(LockRequest {
                subactor_uid: self.uid.clone(),
                task_uid: TaskUid::new("main", 1),
            });
            let pld = encode_pld(&req).unwrap();
            self.send(Msg::Start {
                cid,
                handler: LOCK_HANDLER.into(),
                pld,
            })
            .await;
        }

        pub async fn granted(&mut self, cid: u64) {
            let msg = self.next().await.unwrap();
            let Msg::Started { cid: got, pld } = msg else {
                panic!("{msg:?}")
            };
            assert_eq!(got, cid);
            let status: LockMsg = decode_pld(&pld).unwrap();
            assert_eq!(
                status,
                LockMsg::LockStatus(LockStatus {
                    subactor_uid: self.uid.clone(),
                    cid,
                    locked: true
                })
            );
        }

        /// Releases its own lock on dialog `cid` and checks the root's
        /// final `LockStatus { locked: false }`.
        pub async fn release_own(&mut self, cid: u64) {
            let uid = self.uid.clone();
            self.release(cid, &uid, cid).await;
            let msg = self.next().await;
            let Some(Msg::Return { cid: got, pld }) = msg else {
                panic!("{msg:?}")
            };
            assert_eq!(got, cid);
            let status: LockMsg = decode_pld(&pld).unwrap();
            assert!(matches!(status, LockMsg::LockStatus(s) if !s.locked && s.subactor_uid == uid));
        }

        pub async fn release(&mut self, cid: u64, holder: &ActorUid, holder_cid: u64) {
            let release = LockMsg::LockRelease(LockRelease {
                subactor_uid: holder.clone(),
                cid: holder_cid,
            });
            self.send(Msg::Yield {
                cid,
                pld: encode_pld(&release).unwrap(),
            })
            .await;
        }
    }

    pub fn stop(mut root: Running) -> Vec<String> {
        root.close_stdin();
        super::ends_cleanly(root, T)
    }
}

use peers::{serving_root, stop, Peer};
use smol_devx::msg::Msg;

/// The holder sends a string where only lock messages may go: the root
/// tells it why, hangs up on it and frees the lock for the next waiter.
#[test]
fn a_payload_outside_the_lock_spec_frees_the_lock() {
    let (root, addr) = serving_root();
    smol::block_on(async {
        let mut rogue = Peer::join(&addr, "rogue").await;
        rogue.lock(1).await;
        let mut next = Peer::join(&addr, "next").await;
        next.request(1).await;
        let stray = smol_devx::codec::encode_pld(&"hello").unwrap();
        rogue.send(Msg::Yield { cid: 1, pld: stray }).await;
        let Some(Msg::Error { cid: 1, error }) = rogue.next().await else {
            panic!()
        };
        assert_eq!(error.type_name, "MsgTypeError");
        assert!(
            error.message.contains("pld spec `LockMsg`"),
            "{}",
            error.message
        );
        assert!(rogue.next().await.is_none(), "the root hangs up");
        next.granted(1).await;
        next.release_own(1).await;
    });
    let lines = stop(root);
    assert!(
        lines.iter().any(
            |l| l.contains("force-releasing the tree lock held by ('rogue', 'p')")
                && l.contains("payload spec")
        ),
        "{lines:#?}"
    );
}

/// A waiter sends a release naming the holder: the holder keeps the lock
/// until it releases itself; then the waiter, granted, is caught out by
/// its stale release and dropped; the lock ends free.
#[test]
fn a_release_from_an_actor_that_is_not_the_holder_releases_nothing() {
    let (root, addr) = serving_root();
    smol::block_on(async {
        let mut holder = Peer::join(&addr, "holder").await;
        holder.lock(1).await;
        let mut forger = Peer::join(&addr, "forger").await;
        forger.request(1).await;
        let holder_uid = holder.uid.clone();
        forger.release(1, &holder_uid, 1).await;
        // A third peer queues behind the forger and sees who holds.
        let mut third = Peer::join(&addr, "third").await;
        third.request(1).await;
        smol::Timer::after(Duration::from_millis(100)).await;
        // The holder still holds: its own release is answered normally.
        holder.release_own(1).await;
        // The forger is granted, then refused for its stale release.
        forger.granted(1).await;
        let Some(Msg::Error { cid: 1, error }) = forger.next().await else {
            panic!()
        };
        assert!(
            error.message.contains("release for ('holder', 'p')"),
            "{}",
            error.message
        );
        // And the lock moves on.
        third.granted(1).await;
        third.release_own(1).await;
    });
    let lines = stop(root);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("held by ('forger', 'p')") && l.contains("another holder")),
        "{lines:#?}"
    );
}

/// A holder whose connection drops (no process dies) loses the lock.
#[test]
fn a_dropped_connection_frees_the_lock() {
    let (root, addr) = serving_root();
    smol::block_on(async {
        let mut gone = Peer::join(&addr, "gone").await;
        gone.lock(1).await;
        let mut next = Peer::join(&addr, "next").await;
        next.request(1).await;
        drop(gone);
        next.granted(1).await;
        next.release_own(1).await;
    });
    let lines = stop(root);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("held by ('gone', 'p')") && l.contains("the peer is gone")),
        "{lines:#?}"
    );
}

#[test]
fn the_request_side_runs_under_async_std_too() {
    let root = Running::start("debug_lock", &["async_std"], &[]);
    let lines = ends_cleanly(root, Duration::from_secs(60));
    assert!(
        lines.iter().any(|l| l.ends_with("locked under async-std")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("released under async-std")),
        "{lines:#?}"
    );
}

#[test]
fn debug_status_records_the_holder_and_resets_on_release() {
    let root = Running::start("debug_lock", &["status"], &[]);
    let lines = ends_cleanly(root, T);
    assert!(
        lines.iter().any(|l| l.ends_with("holding Some(\"main\")")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with("second enter refused")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("after release Snapshot { requesting: [], holding: None }")),
        "{lines:#?}"
    );
}

/// The root waits for the debugger only while someone is in it.
#[test]
fn the_root_waits_for_the_debugger_only_when_someone_is_in_it() {
    let root = Running::start("debug_lock", &["wait_for_debugger"], &[]);
    let lines = ends_cleanly(root, T);
    assert!(has(&lines, |l| l == "idle wait false"), "{lines:#?}");
    let releasing = lines.iter().position(|l| l.ends_with("releasing"));
    let waited = lines
        .iter()
        .position(|l| l == "waited true, in use after: false");
    assert!(
        matches!((releasing, waited), (Some(r), Some(w)) if r < w),
        "{lines:#?}"
    );
}

/// A subactor asking who holds the lock (as one waiting out its
/// children's REPLs does, its own crash REPL maybe next) keeps the root
/// from tearing down though the lock is free; once it stopped asking,
/// the root does not wait.
#[test]
fn the_root_waits_while_a_subactor_asks_about_the_lock() {
    let root = Running::start("debug_lock", &["asked"], &[]);
    let lines = ends_cleanly(root, T);
    assert!(
        has(&lines, |l| l == "waited while asked true"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, |l| l == "after the questions false"),
        "{lines:#?}"
    );
}

/// A subactor that asks without end holds the root's teardown back only
/// for a bounded time: the root then stops it.
#[test]
fn a_subactor_asking_without_end_does_not_keep_the_root_up() {
    let root = Running::start("debug_lock", &["asked_forever"], &[]);
    let lines = ends_cleanly(root, T);
    assert!(
        has(&lines, |l| l == "waited while asked true"),
        "{lines:#?}"
    );
    assert!(has(&lines, |l| l == "waited again false"), "{lines:#?}");
    assert!(has(&lines, |l| l == "asker stopped"), "{lines:#?}");
}

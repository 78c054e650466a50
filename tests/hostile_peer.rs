//! Peers that do not belong to the tree, or break its protocol, are
//! refused with a logged reason, and the root keeps serving its real
//! children all the while.

#![cfg(feature = "runtime")]

mod common;

use std::time::Duration;

use common::{actor_pids, assert_reaped, Running};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol_devx::codec::{encode_pld, Codec};
use smol_devx::ipc::auth::client_handshake;
use smol_devx::ipc::transport::{connect, Addr};
use smol_devx::msg::{ActorUid, LockMsg, LockRelease, Msg};

const T: Duration = Duration::from_secs(20);
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

#[derive(serde::Serialize)]
enum PingMsg {
    Ping(u32),
}

/// Starts the serving root and returns it with its address.
fn serving_root() -> (Running, Addr) {
    serving_root_on("unix")
}

/// [`serving_root`] on the transport `SMOL_DEVX_TRANSPORT` names.
fn serving_root_on(transport: &str) -> (Running, Addr) {
    let mut root = Running::start(
        "actor_tree",
        &["serve"],
        &[
            ("SMOL_DEVX_TOKEN", TOKEN),
            ("RUST_LOG", "warn"),
            ("SMOL_DEVX_TRANSPORT", transport),
        ],
    );
    let line = root.expect("listening", T);
    let addr = line.rsplit(' ').next().unwrap().parse().unwrap();
    root.expect("echo ok", T);
    (root, addr)
}

/// Reads until the peer closes; returns what arrived.
async fn drain(stream: &mut smol_devx::ipc::Stream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got).await;
    got
}

/// Sends one frame and reads the answer.
async fn ask(stream: &mut smol_devx::ipc::Stream, msg: &Msg) -> Option<Msg> {
    let (codec, mut buf) = (Codec::default(), Vec::new());
    codec.write_msg(stream, msg, &mut buf).await.unwrap();
    codec.read_msg(stream, &mut buf).await.unwrap()
}

/// The root is still serving: a fresh echo arrives after `mark`.
fn still_serving(root: &mut Running) {
    let before = root.seen.len();
    root.expect("echo ok", T);
    root.expect("echo ok", T);
    assert!(root.seen.len() > before);
}

fn stop(mut root: Running) {
    root.close_stdin();
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "served"), "{lines:#?}");
    let pids = actor_pids(&lines);
    assert_eq!(pids.len(), 2, "{lines:#?}");
    assert_reaped(&pids);
}

#[test]
fn wrong_token_garbage_and_oversize_prefix_are_refused() {
    let (mut root, addr) = serving_root();
    smol::block_on(async {
        // A stranger with the wrong token hears nothing back.
        let mut stream = connect(&addr).await.unwrap();
        let me = ActorUid::new("stranger", "x");
        let err = client_handshake(&mut stream, &me, "not-the-token", &Codec::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");

        // Garbage instead of a hello.
        let mut stream = connect(&addr).await.unwrap();
        stream
            .write_all(&[0x00, 0x00, 0x00, 0x03, 0xff, 0xfe, 0x1c])
            .await
            .unwrap();
        assert!(drain(&mut stream).await.is_empty());

        // A length prefix claiming 2 GiB.
        let mut stream = connect(&addr).await.unwrap();
        stream
            .write_all(&[0x7f, 0xff, 0xff, 0xff, 0x00])
            .await
            .unwrap();
        assert!(drain(&mut stream).await.is_empty());
    });
    // The first refusal of a burst is told at once, the rest in one line
    // once the burst is over, with the last reason.
    root.expect(
        "refused a connection: wrong tree token from ('stranger', 'x')",
        T,
    );
    root.expect(
        "refused a connection 2 more times since the last line; the last: \
         bad handshake frame: frame of 2147483647 bytes exceeds",
        T,
    );
    still_serving(&mut root);
    stop(root);
}

#[test]
fn a_payload_outside_the_dialogs_spec_is_refused_and_the_peer_dropped() {
    let (mut root, addr) = serving_root();
    smol::block_on(async {
        let codec = Codec::default();
        let mut stream = connect(&addr).await.unwrap();
        let me = ActorUid::new("insider", "y");
        client_handshake(&mut stream, &me, TOKEN, &codec)
            .await
            .unwrap();

        // Within the spec: answered.
        let ping = encode_pld(&PingMsg::Ping(41)).unwrap();
        let start = Msg::Start {
            cid: 1,
            handler: "ping".into(),
            pld: ping,
        };
        let reply = ask(&mut stream, &start).await.unwrap();
        let Msg::Return { cid: 1, pld } = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(smol_devx::task::decode_pld::<u32>(&pld).unwrap(), 42);

        // A lock message where only `Ping` is allowed.
        let release = LockMsg::LockRelease(LockRelease {
            subactor_uid: me.clone(),
            cid: 3,
        });
        let start = Msg::Start {
            cid: 3,
            handler: "ping".into(),
            pld: encode_pld(&release).unwrap(),
        };
        let reply = ask(&mut stream, &start).await.unwrap();
        let Msg::Error { cid: 3, error } = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(error.type_name, "MsgTypeError");
        assert!(
            error.message.contains("pld spec `PingOnly`"),
            "{}",
            error.message
        );
        assert!(error.message.contains("`LockRelease`"), "{}", error.message);
        // ... and then the root hangs up.
        assert!(drain(&mut stream).await.is_empty());
    });
    root.expect(
        "refusing payload, closing the connection: dialog 3 (ping) from ('insider', 'y')",
        T,
    );
    still_serving(&mut root);
    stop(root);
}

#[test]
fn an_unknown_handler_is_an_error_not_a_hang() {
    let (root, addr) = serving_root();
    smol::block_on(async {
        let codec = Codec::default();
        let mut stream = connect(&addr).await.unwrap();
        client_handshake(&mut stream, &ActorUid::new("insider", "z"), TOKEN, &codec)
            .await
            .unwrap();
        let start = Msg::Start {
            cid: 5,
            handler: "no_such".into(),
            pld: encode_pld(&()).unwrap(),
        };
        let reply = ask(&mut stream, &start).await.unwrap();
        let Msg::Error { cid: 5, error } = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(error.type_name, "UnknownHandler");
    });
    stop(root);
}

/// A process's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A thousand strangers that each announce a 1 MiB frame (the most an
/// authenticated peer may send) and send nothing more: before the
/// handshake a frame may weigh a few KiB, and buffers grow with the
/// bytes that arrive, so the root stays small and keeps serving.
fn claimed_lengths_commit_no_memory(transport: &str) {
    let (mut root, addr) = serving_root_on(transport);
    let before = rss_kib(root.pid());
    let claim = u32::try_from(Codec::DEFAULT_MAX_FRAME)
        .unwrap()
        .to_be_bytes();
    let streams = smol::block_on(async {
        let mut streams = Vec::new();
        for _ in 0..1000 {
            let Ok(mut stream) = connect(&addr).await else {
                continue;
            };
            if stream.write_all(&claim).await.is_ok() {
                streams.push(stream);
            }
        }
        streams
    });
    assert!(streams.len() > 900, "only {} connected", streams.len());
    // Every stranger was answered (refused) before memory is read.
    still_serving(&mut root);
    let grown = rss_kib(root.pid()).saturating_sub(before);
    assert!(
        grown < 20 * 1024,
        "the root grew by {grown} KiB for {} strangers",
        streams.len()
    );
    drop(streams);
    still_serving(&mut root);
    stop(root);
}

#[test]
fn claimed_lengths_commit_no_memory_over_unix_sockets() {
    claimed_lengths_commit_no_memory("unix");
}

#[test]
fn claimed_lengths_commit_no_memory_over_tcp() {
    claimed_lengths_commit_no_memory("tcp");
}

/// A flood of refused peers is told in a few lines, not one each, and
/// the count adds up; the root keeps serving.
#[test]
fn a_flood_of_refused_peers_is_summed_up() {
    let (mut root, addr) = serving_root();
    const PEERS: u64 = 2000;
    smol::block_on(async {
        for _ in 0..PEERS {
            let mut stream = connect(&addr).await.unwrap();
            // A malformed hello: refused at once.
            stream
                .write_all(&[0x00, 0x00, 0x00, 0x03, 0xff, 0xfe, 0x1c])
                .await
                .unwrap();
            drain(&mut stream).await;
        }
    });
    still_serving(&mut root);
    // Wait for the summary of the burst's end.
    let deadline = std::time::Instant::now() + T;
    let told = |seen: &[String]| -> u64 {
        seen.iter()
            .filter(|l| l.contains("refused a connection"))
            .map(|l| match l.split_once("refused a connection ") {
                Some((_, more)) => more.split_whitespace().next().unwrap().parse().unwrap(),
                None => 1,
            })
            .sum()
    };
    while told(&root.seen) < PEERS && std::time::Instant::now() < deadline {
        root.expect("echo ok", T);
    }
    let lines = root
        .seen
        .iter()
        .filter(|l| l.contains("refused a connection"))
        .count();
    assert_eq!(told(&root.seen), PEERS, "{:#?}", root.seen);
    assert!(lines <= 10, "{lines} lines for {PEERS} refusals");
    stop(root);
}

/// A terminal (here a pipe) that no one reads fills up with log lines:
/// logging waits on it in a thread of its own, never in the root's event
/// loop, which keeps serving.
#[test]
fn an_unread_stderr_never_blocks_the_root() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(common::example("actor_tree"))
        .arg("serve")
        .envs([("SMOL_DEVX_TOKEN", TOKEN), ("RUST_LOG", "debug")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Held, never read: once its 64 KiB are full, every write to it waits.
    let unread = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = |what: &str| loop {
        let line = lines
            .recv_timeout(T)
            .unwrap_or_else(|_| panic!("no {what}"));
        if line.contains(what) {
            return line;
        }
    };
    let addr: Addr = next("listening")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Each peer's arrival and departure is two debug lines on stderr:
    // well past the pipe's 64 KiB and the log queue.
    smol::block_on(async {
        for i in 0..1500 {
            let mut stream = connect(&addr).await.unwrap();
            let me = ActorUid::new("talker", i.to_string());
            client_handshake(&mut stream, &me, TOKEN, &Codec::default())
                .await
                .unwrap();
        }
    });
    // Still echoing: its loop was never stuck on stderr.
    for _ in 0..3 {
        next("echo ok");
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    drop(unread);
}

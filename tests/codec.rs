//! The wire layer from the outside: every message round-trips, every
//! crafted bad input gets its own typed error, and the payload spec stays
//! with its task.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use smol::future;
use smol::io::AsyncWriteExt;
use smol_devx::codec::{encode_pld, Codec, CodecError, PldSpec};
use smol_devx::msg::{
    ActorUid, Hello, LockMsg, LockRelease, LockRequest, LockStatus, Msg, Pld, RemoteError, TaskUid,
    PROTOCOL_VERSION,
};
use smol_devx::task::{current_pld_spec, decode_pld, with_pld_spec};

fn uid() -> ActorUid {
    ActorUid::new("breakpoint_forever", "1f78e2c0")
}

fn lock_msgs() -> Vec<LockMsg> {
    vec![
        LockMsg::LockRequest(LockRequest {
            subactor_uid: uid(),
            task_uid: TaskUid::new("main", 7),
        }),
        LockMsg::LockStatus(LockStatus {
            subactor_uid: uid(),
            cid: 3,
            locked: true,
        }),
        LockMsg::LockRelease(LockRelease {
            subactor_uid: uid(),
            cid: 3,
        }),
    ]
}

fn every_msg() -> Vec<Msg> {
    let pld = |m: &LockMsg| encode_pld(m).unwrap();
    let [req, status, release] = &lock_msgs()[..] else {
        unreachable!()
    };
    vec![
        Msg::Hello(Hello {
            uid: uid(),
            token: "9f2c".into(),
            version: PROTOCOL_VERSION,
        }),
        Msg::Start {
            cid: 3,
            handler: "lock_stdio_for_peer".into(),
            pld: pld(req),
        },
        Msg::Started {
            cid: 3,
            pld: pld(status),
        },
        Msg::Yield {
            cid: 3,
            pld: pld(release),
        },
        Msg::Stop { cid: 3 },
        Msg::Return {
            cid: 3,
            pld: encode_pld(&"done").unwrap(),
        },
        Msg::Error {
            cid: 4,
            error: RemoteError::new("NameError", "name 'doggypants' is not defined", uid())
                .with_backtrace("0: name_error::main\n   at examples/subactor_error.rs:12")
                .relayed_by(ActorUid::new("root", "00")),
        },
        Msg::Cancel { cid: u64::MAX },
    ]
}

/// A frame with a valid prefix around `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[test]
fn every_message_round_trips() {
    let codec = Codec::default();
    for msg in every_msg() {
        let bytes = codec.encode(&msg).unwrap();
        let (back, used) = codec.decode_frame(&bytes).unwrap();
        assert_eq!(back, msg);
        assert_eq!(used, bytes.len());
    }
    for lock in lock_msgs() {
        let pld = encode_pld(&lock).unwrap();
        let back: LockMsg =
            future::block_on(with_pld_spec(&PldSpec::LOCK, async { decode_pld(&pld) })).unwrap();
        assert_eq!(back, lock);
    }
}

#[test]
fn frames_decode_back_to_back_from_one_buffer() {
    let codec = Codec::default();
    let msgs = every_msg();
    let mut buf = Vec::new();
    for msg in &msgs {
        codec.encode_into(msg, &mut buf).unwrap();
    }
    let mut rest = &buf[..];
    for msg in &msgs {
        let (back, used) = codec.decode_frame(rest).unwrap();
        assert_eq!(&back, msg);
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
}

#[test]
fn prefix_claiming_4_gib_is_oversize() {
    let err = Codec::default()
        .decode_frame(&[0xff, 0xff, 0xff, 0xff, 0xa0])
        .unwrap_err();
    assert!(
        matches!(err, CodecError::Oversize { len: 0xffff_ffff, max } if max == Codec::DEFAULT_MAX_FRAME),
        "{err}"
    );
}

#[test]
fn configured_max_frame_applies_both_ways() {
    let codec = Codec::default().with_max_frame(16);
    let big = Msg::Hello(Hello {
        uid: uid(),
        token: "x".repeat(64),
        version: PROTOCOL_VERSION,
    });
    assert!(matches!(
        codec.encode(&big),
        Err(CodecError::Oversize { max: 16, .. })
    ));
    let bytes = Codec::default().encode(&big).unwrap();
    assert!(matches!(
        codec.decode_frame(&bytes),
        Err(CodecError::Oversize { .. })
    ));
}

#[test]
fn deep_nesting_is_too_deep_not_a_stack_overflow() {
    // {"Hello": {"x": [[[[ ... 100k ... ]]]]}}: an unknown field, which
    // serde skips by recursing.
    let mut body = vec![0xa1, 0x65];
    body.extend_from_slice(b"Hello");
    body.extend_from_slice(&[0xa1, 0x61, b'x']);
    body.extend(std::iter::repeat_n(0x81u8, 100_000));
    body.push(0x00);
    let err = Codec::default().decode_frame(&frame(&body)).unwrap_err();
    assert!(matches!(err, CodecError::TooDeep { limit: 128 }), "{err}");

    // The same depth inside a payload.
    let mut raw = vec![0x81u8; 100_000];
    raw.push(0x00);
    let err = decode_pld::<ciborium::Value>(&Pld::from_raw(raw)).unwrap_err();
    assert!(matches!(err, CodecError::TooDeep { .. }), "{err}");
}

#[test]
fn truncated_frames_say_how_much_was_missing() {
    let codec = Codec::default();
    let bytes = codec.encode(&every_msg()[1]).unwrap();
    let err = codec.decode_frame(&bytes[..bytes.len() - 3]).unwrap_err();
    assert!(
        matches!(err, CodecError::Truncated { needed, got } if needed == bytes.len() && got == bytes.len() - 3),
        "{err}"
    );
    let err = codec.decode_frame(&bytes[..2]).unwrap_err();
    assert!(
        matches!(err, CodecError::Truncated { needed: 4, got: 2 }),
        "{err}"
    );
    // A prefix that undercounts: the value itself is cut short.
    let body = &bytes[4..bytes.len() - 1];
    let err = codec.decode_frame(&frame(body)).unwrap_err();
    assert!(matches!(err, CodecError::Truncated { .. }), "{err}");
}

#[test]
fn trailing_bytes_are_refused() {
    let codec = Codec::default();
    let bytes = codec.encode(&Msg::Stop { cid: 1 }).unwrap();
    let mut body = bytes[4..].to_vec();
    body.extend_from_slice(&[0xf6, 0xf6]);
    let err = codec.decode_frame(&frame(&body)).unwrap_err();
    assert!(
        matches!(err, CodecError::TrailingBytes { extra: 2 }),
        "{err}"
    );

    let mut raw = encode_pld(&5u8).unwrap().as_bytes().to_vec();
    raw.push(0x01);
    let err = decode_pld::<u8>(&Pld::from_raw(raw)).unwrap_err();
    assert!(
        matches!(err, CodecError::TrailingBytes { extra: 1 }),
        "{err}"
    );
}

#[test]
fn malformed_input_is_malformed() {
    let codec = Codec::default();
    // 0x1c: a reserved additional-info value, not CBOR.
    let err = codec.decode_frame(&frame(&[0x1c])).unwrap_err();
    assert!(matches!(err, CodecError::Malformed { .. }), "{err}");
    // Valid CBOR, not an envelope.
    let err = codec.decode_frame(&frame(&[0x18, 0x2a])).unwrap_err();
    assert!(
        matches!(&err, CodecError::Malformed { reason, .. } if reason.contains("not a dialog message")),
        "{err}"
    );
    let err = codec.decode_frame(&[0, 0, 0, 0]).unwrap_err();
    assert!(matches!(err, CodecError::Malformed { .. }), "{err}");
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
enum AppMsg {
    Ping(u32),
}

#[test]
fn a_payload_outside_the_lock_spec_is_a_msg_type_error() {
    let ping = encode_pld(&AppMsg::Ping(1)).unwrap();
    let err = future::block_on(with_pld_spec(&PldSpec::LOCK, async {
        decode_pld::<LockMsg>(&ping)
    }))
    .unwrap_err();
    let CodecError::MsgType(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(e.spec, "LockMsg");
    assert_eq!(e.got, "`Ping`");
    assert!(e.expected.contains("LockRelease"), "{}", e.expected);
    assert!(err.to_string().contains("pld spec `LockMsg`"), "{err}");

    // An untagged value names its kind.
    let int = encode_pld(&7u32).unwrap();
    let err = future::block_on(with_pld_spec(&PldSpec::LOCK, async {
        decode_pld::<LockMsg>(&int)
    }))
    .unwrap_err();
    assert!(
        matches!(&err, CodecError::MsgType(e) if e.got == "integer"),
        "{err}"
    );

    // Allowed by the spec, but not the type the receiver asked for.
    let release = encode_pld(&lock_msgs()[2]).unwrap();
    let err = decode_pld::<AppMsg>(&release).unwrap_err();
    assert!(
        matches!(&err, CodecError::MsgType(e) if e.spec == "Any" && e.expected == "AppMsg" && e.got == "`LockRelease`"),
        "{err}"
    );

    // The same payload is fine outside the scope.
    assert_eq!(decode_pld::<AppMsg>(&ping).unwrap(), AppMsg::Ping(1));
}

/// Two tasks of one actor on a multi-threaded executor: one runs under
/// the lock spec, one streams app messages under the default, and each
/// keeps its own across many awaits while both migrate between threads.
#[test]
fn two_tasks_keep_their_own_spec_on_a_multi_threaded_executor() {
    let ex = smol::Executor::new();
    let (_stop, stopped) = smol::channel::bounded::<()>(1);
    let ping = encode_pld(&AppMsg::Ping(9)).unwrap();
    let status = encode_pld(&lock_msgs()[1]).unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (ex, stopped) = (&ex, stopped.clone());
            s.spawn(move || future::block_on(ex.run(stopped.recv())));
        }
        let lock_task = ex.spawn({
            let (ping, status) = (ping.clone(), status.clone());
            with_pld_spec(&PldSpec::LOCK, async move {
                for _ in 0..2_000 {
                    future::yield_now().await;
                    assert_eq!(*current_pld_spec(), PldSpec::LOCK);
                    assert!(decode_pld::<LockMsg>(&status).is_ok());
                    assert!(matches!(
                        decode_pld::<AppMsg>(&ping),
                        Err(CodecError::MsgType(_))
                    ));
                }
            })
        });
        let app_task = ex.spawn({
            let ping = ping.clone();
            async move {
                for _ in 0..2_000 {
                    future::yield_now().await;
                    assert_eq!(*current_pld_spec(), PldSpec::ANY);
                    assert_eq!(decode_pld::<AppMsg>(&ping).unwrap(), AppMsg::Ping(9));
                }
            }
        });
        future::block_on(async {
            lock_task.await;
            app_task.await;
        });
        drop(_stop);
    });
}

/// The same scoped future polled on one thread, then another: each poll
/// sees the spec, and neither thread keeps it afterwards.
#[test]
fn a_scoped_future_polled_from_alternating_threads() {
    let mut task = Box::pin(with_pld_spec(&PldSpec::LOCK, async {
        for _ in 0..6 {
            assert_eq!(*current_pld_spec(), PldSpec::LOCK);
            future::yield_now().await;
        }
        std::thread::current().id()
    }));
    let mut finished_on = None;
    while finished_on.is_none() {
        let (done, leaked) = std::thread::scope(|s| {
            s.spawn(|| {
                let done = future::block_on(future::poll_once(task.as_mut()));
                (done, *current_pld_spec() != PldSpec::ANY)
            })
            .join()
            .unwrap()
        });
        assert!(!leaked, "the polling thread kept the spec");
        finished_on = done;
    }
    assert_ne!(finished_on, Some(std::thread::current().id()));
    assert_eq!(*current_pld_spec(), PldSpec::ANY);
}

#[test]
fn a_scope_dropped_mid_await_leaves_no_trace() {
    let reached = Arc::new(AtomicUsize::new(0));
    let mut task = Box::pin(with_pld_spec(&PldSpec::LOCK, {
        let reached = reached.clone();
        async move {
            reached.store(1, Ordering::SeqCst);
            future::pending::<()>().await;
        }
    }));
    assert!(future::block_on(future::poll_once(task.as_mut())).is_none());
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    assert_eq!(*current_pld_spec(), PldSpec::ANY);
    drop(task);
    assert_eq!(*current_pld_spec(), PldSpec::ANY);
    // And a fresh task on the same thread sees the default.
    future::block_on(async { assert_eq!(*current_pld_spec(), PldSpec::ANY) });
}

#[test]
fn frames_cross_a_real_socket_and_a_cut_frame_is_truncated() {
    future::block_on(async {
        let codec = Codec::default();
        let (mut a, mut b) = smol::net::unix::UnixStream::pair().unwrap();
        let mut wbuf = Vec::new();
        for msg in every_msg() {
            codec.write_msg(&mut a, &msg, &mut wbuf).await.unwrap();
        }
        let partial = codec.encode(&Msg::Cancel { cid: 5 }).unwrap();
        a.write_all(&partial[..partial.len() - 1]).await.unwrap();
        drop(a);

        let mut rbuf = Vec::new();
        for msg in every_msg() {
            assert_eq!(codec.read_msg(&mut b, &mut rbuf).await.unwrap(), Some(msg));
        }
        let err = codec.read_msg(&mut b, &mut rbuf).await.unwrap_err();
        assert!(matches!(err, CodecError::Truncated { .. }), "{err}");
        assert!(codec.read_msg(&mut b, &mut rbuf).await.unwrap().is_none());
    });
}

#[test]
fn buffered_reads_give_the_same_frames_wherever_the_buffer_cuts_them() {
    let codec = Codec::default();
    let mut bytes = Vec::new();
    for msg in every_msg() {
        bytes.extend(codec.encode(&msg).unwrap());
    }
    let partial = codec.encode(&Msg::Cancel { cid: 5 }).unwrap();
    bytes.extend(&partial[..partial.len() - 1]);
    // Buffers from one byte to more than the whole stream: each frame is
    // read whole from the buffer, or cut by it at each of its bytes.
    for capacity in (1..=80).chain([4096]) {
        future::block_on(async {
            let mut reader = smol::io::BufReader::with_capacity(capacity, &bytes[..]);
            let mut rbuf = Vec::new();
            for msg in every_msg() {
                let got = codec.read_msg_buffered(&mut reader, &mut rbuf).await;
                assert_eq!(got.unwrap(), Some(msg), "capacity {capacity}");
            }
            let err = codec
                .read_msg_buffered(&mut reader, &mut rbuf)
                .await
                .unwrap_err();
            assert!(matches!(err, CodecError::Truncated { .. }), "{err}");
            let end = codec.read_msg_buffered(&mut reader, &mut rbuf).await;
            assert!(end.unwrap().is_none());
        });
    }
}

#[test]
fn oversize_prefix_on_a_stream_allocates_nothing_and_is_refused() {
    future::block_on(async {
        let mut input = &[0x7f, 0xff, 0xff, 0xff, 0x00][..];
        let mut buf = Vec::new();
        let err = Codec::default()
            .read_msg(&mut input, &mut buf)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::Oversize {
                    len: 0x7fff_ffff,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(buf.capacity(), 0);
    });
}

/// A frame's claimed length commits no memory: the reader's buffer grows
/// with the bytes that arrive, a chunk ahead at most.
#[test]
fn a_claimed_length_is_not_allocated_before_its_bytes_arrive() {
    smol::block_on(async {
        let codec = Codec::default();
        let mut claim = u32::try_from(Codec::DEFAULT_MAX_FRAME)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        claim.extend_from_slice(&[0xa0; 10]);
        let mut buf = Vec::new();
        let err = codec.read_msg(&mut &claim[..], &mut buf).await.unwrap_err();
        assert!(
            matches!(err, CodecError::Truncated { got: 14, .. }),
            "{err:?}"
        );
        assert!(buf.capacity() <= 128 * 1024, "{}", buf.capacity());
    });
}

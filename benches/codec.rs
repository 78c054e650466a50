//! `cargo bench --bench codec`: encode and decode rates of a lock message,
//! and a frame round trip through an in-memory buffer and a socketpair,
//! each against a baseline that does the same I/O with no codec.

mod common;

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use common::{header, measure};
use smol::future;
use smol_devx::codec::{encode_pld, Codec, PldSpec};
use smol_devx::msg::{ActorUid, LockMsg, LockStatus, Msg};
use smol_devx::task::with_pld_spec;

fn main() {
    header("codec");
    let codec = Codec::default();
    let status = LockMsg::LockStatus(LockStatus {
        subactor_uid: ActorUid::new("breakpoint_forever", "5b1c6a7e-2f0d-4d43-9a55-0c1f3e6b8d21"),
        cid: 17,
        locked: true,
    });
    let msg = Msg::Started {
        cid: 17,
        pld: encode_pld(&status).unwrap(),
    };
    let frame = codec.encode(&msg).unwrap();
    println!(
        "lock message: Started(LockStatus) frame of {} bytes",
        frame.len()
    );

    let copy = measure("baseline: memcpy of the frame", 10_000, 200, || {
        black_box(black_box(&frame[..]).to_vec());
    });
    copy.report(None);

    let mut out = Vec::with_capacity(256);
    measure("encode lock message (payload + frame)", 5_000, 200, || {
        out.clear();
        let msg = Msg::Started {
            cid: 17,
            pld: encode_pld(black_box(&status)).unwrap(),
        };
        codec.encode_into(&msg, &mut out).unwrap();
    })
    .report(Some(&copy));

    let decode = future::block_on(with_pld_spec(&PldSpec::LOCK, async {
        measure(
            "decode lock message (frame + LOCK payload)",
            5_000,
            200,
            || {
                let (msg, _) = codec.decode_frame(black_box(&frame)).unwrap();
                let Msg::Started { pld, .. } = msg else {
                    unreachable!()
                };
                black_box(codec.decode_pld::<LockMsg>(&PldSpec::LOCK, &pld).unwrap());
            },
        )
    }));
    decode.report(Some(&copy));

    // The two halves of that decode.
    measure("  of which: envelope (frame only)", 5_000, 200, || {
        black_box(codec.decode_frame(black_box(&frame)).unwrap());
    })
    .report(Some(&copy));
    let pld = encode_pld(&status).unwrap();
    future::block_on(with_pld_spec(&PldSpec::LOCK, async {
        measure("  of which: LOCK payload", 5_000, 200, || {
            black_box(
                codec
                    .decode_pld::<LockMsg>(&PldSpec::LOCK, black_box(&pld))
                    .unwrap(),
            );
        })
    }))
    .report(Some(&copy));

    let mut pipe: Vec<u8> = Vec::with_capacity(256);
    let mut wbuf = Vec::new();
    let mut rbuf = Vec::new();
    future::block_on(async {
        let raw = measure("baseline: raw bytes through memory", 10_000, 200, || {
            pipe.clear();
            pipe.extend_from_slice(black_box(&frame));
            black_box(pipe.to_vec());
        });
        raw.report(None);
        measure("frame round trip through memory", 5_000, 200, || {
            pipe.clear();
            future::block_on(codec.write_msg(&mut pipe, &msg, &mut wbuf)).unwrap();
            let mut reader = &pipe[..];
            black_box(future::block_on(codec.read_msg(&mut reader, &mut rbuf)).unwrap());
        })
        .report(Some(&raw));
    });

    // Over a real socketpair: write on one end, read on the other, the
    // floor below which no IPC dialog can go.
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let mut sink = vec![0u8; frame.len()];
    let raw = measure(
        "baseline: raw frame bytes over socketpair",
        2_000,
        200,
        || {
            a.write_all(&frame).unwrap();
            b.read_exact(&mut sink).unwrap();
        },
    );
    raw.report(None);
    let (a, b) = (smol::Async::new(a).unwrap(), smol::Async::new(b).unwrap());
    let (mut a, mut b) = (a, b);
    future::block_on(async {
        measure(
            "frame round trip over socketpair (smol)",
            2_000,
            200,
            || {
                future::block_on(async {
                    codec.write_msg(&mut a, &msg, &mut wbuf).await.unwrap();
                    black_box(codec.read_msg(&mut b, &mut rbuf).await.unwrap());
                })
            },
        )
        .report(Some(&raw));
    });
}

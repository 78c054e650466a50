//! Channels and dialogs in one process, over a real socketpair.

#![cfg(feature = "runtime")]

use smol::future;
use smol_devx::codec::{Codec, PldSpec};
use smol_devx::ipc::{Channel, DialogError, IncomingDialogs, Side, Stream};
use smol_devx::msg::{ActorUid, LockMsg, LockRelease};

fn pair() -> (Channel, IncomingDialogs, Channel, IncomingDialogs) {
    let (a, b) = smol::net::unix::UnixStream::pair().unwrap();
    let (ua, ub) = (ActorUid::new("a", "1"), ActorUid::new("b", "2"));
    let codec = Codec::default();
    let (ca, ia) = Channel::start(Stream::Unix(a), ua.clone(), ub.clone(), Side::Client, codec);
    let (cb, ib) = Channel::start(Stream::Unix(b), ub, ua, Side::Server, codec);
    (ca, ia, cb, ib)
}

#[test]
fn a_dialog_streams_both_ways_and_returns() {
    let (client, _, server, incoming) = pair();
    future::block_on(async {
        let serve = smol::spawn(async move {
            let dialog = incoming.recv().await.unwrap();
            assert_eq!(dialog.handler, "sum");
            let mut ctx = server.accept(dialog, &PldSpec::ANY);
            ctx.send_started(&"ready").await.unwrap();
            let mut sum = 0u32;
            while let Some(n) = ctx.recv::<u32>().await.unwrap() {
                sum += n;
                ctx.send(&sum).await.unwrap();
            }
            ctx.send_return(smol_devx::codec::encode_pld(&sum).unwrap())
                .await
                .unwrap();
        });
        let args = smol_devx::codec::encode_pld(&()).unwrap();
        let mut ctx = client.open("sum", args, &PldSpec::ANY).await.unwrap();
        assert_eq!(ctx.started::<String>().await.unwrap(), "ready");
        let mut partials = Vec::new();
        for n in 1..=4u32 {
            ctx.send(&n).await.unwrap();
            partials.push(ctx.recv::<u32>().await.unwrap().unwrap());
        }
        ctx.stop().await.unwrap();
        assert_eq!(partials, [1, 3, 6, 10]);
        assert_eq!(ctx.result::<u32>().await.unwrap(), 10);
        serve.await;
    });
}

#[test]
fn many_dialogs_leave_nothing_behind_on_either_end() {
    let (client, _, server, incoming) = pair();
    let served = server.clone();
    future::block_on(async {
        smol::spawn(async move {
            while let Some(dialog) = incoming.recv().await {
                let ctx = served.accept(dialog, &PldSpec::ANY);
                ctx.send_return(smol_devx::codec::encode_pld(&1u8).unwrap())
                    .await
                    .unwrap();
            }
        })
        .detach();
        for _ in 0..100 {
            let args = smol_devx::codec::encode_pld(&()).unwrap();
            let mut ctx = client.open("one", args, &PldSpec::ANY).await.unwrap();
            assert_eq!(ctx.result::<u8>().await.unwrap(), 1);
        }
        // The last handler may still be unwinding.
        for _ in 0..100 {
            if server.live_dialogs() == 0 {
                break;
            }
            smol::Timer::after(std::time::Duration::from_millis(5)).await;
        }
    });
    assert_eq!(client.live_dialogs(), 0);
    assert_eq!(server.live_dialogs(), 0);
}

#[test]
fn a_cancel_reaches_the_handlers_watch_even_when_it_does_not_read() {
    let (client, _, server, incoming) = pair();
    future::block_on(async {
        let args = smol_devx::codec::encode_pld(&()).unwrap();
        let ctx = client.open("forever", args, &PldSpec::ANY).await.unwrap();
        let mut dialog = incoming.recv().await.unwrap();
        let watch = dialog.take_cancel_watch().unwrap();
        let _handler_ctx = server.accept(dialog, &PldSpec::ANY);
        ctx.cancel().await.unwrap();
        watch.cancelled().await;
    });
}

#[test]
fn a_closed_connection_fails_every_open_dialog() {
    let (client, _, server, incoming) = pair();
    future::block_on(async {
        let mut dialogs = Vec::new();
        for _ in 0..3 {
            let args = smol_devx::codec::encode_pld(&()).unwrap();
            dialogs.push(client.open("x", args, &PldSpec::ANY).await.unwrap());
        }
        for _ in 0..3 {
            incoming.recv().await.unwrap();
        }
        server.close("test hangs up");
        for mut ctx in dialogs {
            let err = ctx.result::<()>().await.unwrap_err();
            assert!(matches!(err, DialogError::Closed(_)), "{err}");
        }
        assert!(!client.is_connected());
        assert_eq!(
            client.close_reason().as_deref(),
            Some("peer closed the connection")
        );
        let args = smol_devx::codec::encode_pld(&()).unwrap();
        assert!(matches!(
            client.open("y", args, &PldSpec::ANY).await,
            Err(DialogError::Closed(_))
        ));
    });
}

#[test]
fn a_payload_outside_the_spec_fails_the_dialog_and_closes_the_connection() {
    let (client, _, server, incoming) = pair();
    future::block_on(async {
        let release = LockMsg::LockRelease(LockRelease {
            subactor_uid: ActorUid::new("a", "1"),
            cid: 1,
        });
        let args = smol_devx::codec::encode_pld(&release).unwrap();
        let mut ctx = client.open("lock", args, &PldSpec::ANY).await.unwrap();
        let dialog = incoming.recv().await.unwrap();
        let args = dialog.args.clone();
        let handler = server.accept(dialog, &PldSpec::LOCK);
        // Allowed: a lock message.
        assert_eq!(handler.decode::<LockMsg>(&args).await.unwrap(), release);
        // Not allowed: a plain string, in the lock dialog.
        let stray = smol_devx::codec::encode_pld(&"hello").unwrap();
        let err = handler.decode::<LockMsg>(&stray).await.unwrap_err();
        assert!(matches!(err, DialogError::Codec(_)), "{err}");
        // The peer hears why, then the connection is gone.
        let err = ctx.result::<()>().await.unwrap_err();
        let DialogError::Remote(remote) = err else {
            panic!("{err}")
        };
        assert_eq!(remote.type_name, "MsgTypeError");
        assert!(remote.message.contains("got `hello`"), "{}", remote.message);
        assert!(!server.is_connected());
    });
}

#[test]
fn the_handler_side_may_cancel_too() {
    let (client, _, server, incoming) = pair();
    future::block_on(async {
        let args = smol_devx::codec::encode_pld(&()).unwrap();
        let mut ctx = client.open("x", args, &PldSpec::ANY).await.unwrap();
        let handler = server.accept(incoming.recv().await.unwrap(), &PldSpec::ANY);
        handler.cancel().await.unwrap();
        let err = ctx.result::<()>().await.unwrap_err();
        assert!(matches!(err, DialogError::Cancelled), "{err}");
    });
}

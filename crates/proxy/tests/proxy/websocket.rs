//! WebSockets through ballast with a real tokio-tungstenite client and server:
//! text, binary, a 1 MiB message, fragments, ping/pong, a connection that outlives
//! a config reload, the upgrade metrics, the idle limit, and a target that
//! declines the upgrade.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ballast_testkit::ws::tokio_tungstenite::connect_async;
use ballast_testkit::ws::tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use ballast_testkit::ws::tokio_tungstenite::tungstenite::protocol::frame::Frame;
use ballast_testkit::ws::tokio_tungstenite::tungstenite::Message;
use ballast_testkit::ws::WsBackend;
use ballast_testkit::{backends, eventually, Ballast, Setup};
use futures_util::{SinkExt, StreamExt};

use crate::SOON;

/// ballast in front of a WebSocket server. The server answers no HTTP health
/// checks, so the group fails open (`minimum_healthy_targets = 1`, none healthy)
/// and routes to it anyway.
async fn start(backend: &WsBackend, setup: impl FnOnce(&mut Setup)) -> Ballast {
    let mut s = Setup::with_targets(&[backend.addr]);
    setup(&mut s);
    Ballast::start(&s).await
}

fn ws_url(ballast: &Ballast, path: &str) -> String {
    format!("ws://{}{path}", ballast.addr)
}

async fn next_data<S>(ws: &mut S) -> Message
where
    S: futures_util::Stream<
            Item = Result<Message, ballast_testkit::ws::tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    loop {
        let msg = tokio::time::timeout(SOON, ws.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("valid message");
        if msg.is_text() || msg.is_binary() || msg.is_pong() || msg.is_close() {
            return msg;
        }
    }
}

#[tokio::test]
async fn messages_of_every_kind_pass_both_ways() {
    let backend = WsBackend::start().await;
    let ballast = start(&backend, |_| {}).await;
    let (mut ws, response) = connect_async(ws_url(&ballast, "/chat"))
        .await
        .expect("upgrade through ballast");
    assert_eq!(response.status(), 101);

    ws.send(Message::text("hello")).await.expect("send");
    assert_eq!(next_data(&mut ws).await, Message::text("hello"));

    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send");
    assert_eq!(
        next_data(&mut ws).await,
        Message::binary(vec![0u8, 1, 2, 255])
    );

    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
    ws.send(Message::binary(big.clone()))
        .await
        .expect("send 1 MiB");
    assert!(
        next_data(&mut ws).await == Message::binary(big),
        "1 MiB echoed intact"
    );

    // One text message in three frames: FIN=0, continuation FIN=0, continuation FIN=1.
    let parts = [
        ("frag", OpCode::Data(Data::Text), false),
        ("ment", OpCode::Data(Data::Continue), false),
        ("ed", OpCode::Data(Data::Continue), true),
    ];
    for (text, opcode, fin) in parts {
        ws.send(Message::Frame(Frame::message(
            text.as_bytes().to_vec(),
            opcode,
            fin,
        )))
        .await
        .expect("send frame");
    }
    assert_eq!(next_data(&mut ws).await, Message::text("fragmented"));

    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .expect("ping");
    assert_eq!(
        next_data(&mut ws).await,
        Message::Pong(b"are you there".to_vec().into())
    );

    ws.close(None).await.expect("close");
    let ended = backend.ended.clone();
    eventually("server saw the close", SOON, || {
        let ended = ended.clone();
        async move { ended.load(Ordering::SeqCst) == 1 }
    })
    .await;
}

#[tokio::test]
async fn connection_survives_a_reload_and_is_counted() {
    let backend = WsBackend::start().await;
    let ballast = start(&backend, |_| {}).await;
    let (mut ws, _) = connect_async(ws_url(&ballast, "/")).await.expect("upgrade");
    ws.send(Message::text("before")).await.expect("send");
    assert_eq!(next_data(&mut ws).await, Message::text("before"));

    let metrics = |b: &Ballast| {
        let snap = b.server.snapshot();
        let m = &snap.listener("public").expect("listener").metrics;
        (
            m.upgraded.load(Ordering::Relaxed),
            m.upgrades_total.load(Ordering::Relaxed),
        )
    };
    assert_eq!(metrics(&ballast), (1, 1));

    // A reload that changes the group (and keeps the listener).
    let mut config = (*ballast.server.snapshot().config).clone();
    config.target_groups[0].response_timeout = Duration::from_secs(30);
    ballast.server.apply(config).await.expect("reload");
    ws.send(Message::text("after"))
        .await
        .expect("send after reload");
    assert_eq!(next_data(&mut ws).await, Message::text("after"));

    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    let server = ballast.server.clone();
    eventually("gauge back to 0", SOON, || {
        let snap = server.snapshot();
        async move {
            let m = &snap.listener("public").expect("listener").metrics;
            m.upgraded.load(Ordering::Relaxed) == 0 && m.upgrades_total.load(Ordering::Relaxed) == 1
        }
    })
    .await;
}

#[tokio::test]
async fn idle_upgraded_connection_is_closed() {
    let backend = WsBackend::start().await;
    let ballast = start(&backend, |s| {
        s.listener_extra
            .push_str("upgrade_idle_timeout = \"300ms\"\n");
    })
    .await;
    let (mut ws, _) = connect_async(ws_url(&ballast, "/")).await.expect("upgrade");
    ws.send(Message::text("x")).await.expect("send");
    assert_eq!(next_data(&mut ws).await, Message::text("x"));
    // Nothing sent: ballast closes the sockets, the client sees the end.
    let end = tokio::time::timeout(SOON, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "idle connection not closed");
}

#[tokio::test]
async fn target_declining_the_upgrade_is_passed_on() {
    // The test backend is plain HTTP: it answers the upgrade request with a 200.
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    ballast.all_healthy().await;
    let err = connect_async(ws_url(&ballast, "/"))
        .await
        .expect_err("no upgrade");
    let text = err.to_string();
    assert!(text.contains("200"), "{text}");
}

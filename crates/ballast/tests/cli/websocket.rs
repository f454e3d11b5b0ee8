//! An upgraded (WebSocket) connection through a real `ballast serve` process:
//! SIGTERM lets it run for the drain time, then closes it, and the process exits.

use std::path::Path;
use std::time::{Duration, Instant};

use ballast_testkit::ws::tokio_tungstenite::connect_async;
use ballast_testkit::ws::tokio_tungstenite::tungstenite::Message;
use ballast_testkit::ws::WsBackend;
use ballast_testkit::{BallastProcess, Setup};
use futures_util::{SinkExt, StreamExt};

use crate::{BIN, SOON};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_upgraded_connections_at_the_drain_limit() {
    let backend = WsBackend::start().await;
    let mut setup = Setup::with_targets(&[backend.addr]);
    setup.drain_timeout = "1s";
    let mut p = BallastProcess::spawn(Path::new(BIN), &setup.toml());
    let (mut ws, _) = connect_async(format!("ws://{}/", p.addr))
        .await
        .expect("upgrade through ballast");
    ws.send(Message::text("before")).await.expect("send");
    let echo = ws.next().await.expect("open").expect("message");
    assert_eq!(echo, Message::text("before"));

    p.signal("TERM");
    let signalled = Instant::now();
    let log = tokio::task::block_in_place(|| p.wait_for_log("draining", SOON));
    assert!(log.contains("draining"));
    // Still relayed while the listener drains.
    ws.send(Message::text("during"))
        .await
        .expect("send while draining");
    let echo = ws.next().await.expect("open").expect("message");
    assert_eq!(echo, Message::text("during"));

    // Closed by ballast once the drain time is up.
    let closed = tokio::time::timeout(SOON, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "upgraded connection not closed at the drain limit"
    );
    assert!(
        signalled.elapsed() >= Duration::from_millis(900),
        "closed before the drain limit: {:?}",
        signalled.elapsed()
    );
    let line = tokio::task::block_in_place(|| p.wait_for_log("upgraded connection closed", SOON));
    assert!(line.contains("drain"), "{line}");
    let status = tokio::task::block_in_place(|| p.wait_exit(SOON));
    assert!(status.success(), "{status:?}");
}

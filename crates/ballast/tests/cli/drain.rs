//! Keep-alive connections through a real `ballast serve` process while it
//! drains: a request in flight when SIGTERM comes is answered with
//! `Connection: close`, and one still in flight when the drain time is up is
//! cut, on ballast's own HTTP/1.1 server.

use std::path::Path;
use std::time::{Duration, Instant};

use ballast_testkit::raw::read_response;
use ballast_testkit::{backends, eventually, BallastProcess, Setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{BIN, SOON};

async fn send(s: &mut TcpStream, path: &str) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_requests_in_flight_at_sigterm_end_their_connections() {
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    setup.drain_timeout = "3s";
    let mut p = BallastProcess::spawn(Path::new(BIN), &setup.toml());
    // Two keep-alive connections, each served once while the listener runs.
    let mut short = TcpStream::connect(p.addr).await.expect("connect");
    let mut long = TcpStream::connect(p.addr).await.expect("connect");
    for s in [&mut short, &mut long] {
        send(s, "/").await;
        let r = read_response(s, &mut Vec::new(), false)
            .await
            .expect("a response");
        assert_eq!(r.status, 200);
        assert!(!r.closes(), "{:?}", r.headers);
    }
    // One request ends within the drain time, the other would not.
    send(&mut short, "/?delay_ms=1000").await;
    send(&mut long, "/?delay_ms=30000").await;
    eventually("both slow requests reach the backend", SOON, || async {
        bs[0].requests() == 4
    })
    .await;
    p.signal("TERM");
    let signalled = Instant::now();
    tokio::task::block_in_place(|| p.wait_for_log("draining", SOON));

    let r = tokio::time::timeout(SOON, read_response(&mut short, &mut Vec::new(), false))
        .await
        .expect("in time")
        .expect("the in-flight request is answered");
    assert_eq!(r.status, 200);
    assert!(r.closes(), "{:?}", r.headers);
    let mut rest = [0u8; 64];
    let end = tokio::time::timeout(SOON, short.read(&mut rest)).await;
    assert!(
        matches!(end, Ok(Ok(0))),
        "closed after its response: {end:?}"
    );

    let cut = tokio::time::timeout(SOON, read_response(&mut long, &mut Vec::new(), false))
        .await
        .expect("cut in time");
    assert!(
        cut.is_none(),
        "no response once the drain time is up: {:?}",
        cut.map(|r| r.status)
    );
    assert!(
        signalled.elapsed() >= Duration::from_millis(2500),
        "cut before the drain limit: {:?}",
        signalled.elapsed()
    );
    let status = tokio::task::block_in_place(|| p.wait_exit(SOON));
    assert!(status.success(), "{status:?}");
}

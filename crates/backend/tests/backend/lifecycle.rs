//! Stopping: graceful shutdown, kill, and dropping the last handle.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{self, eventually, get, PATIENCE};

/// Connects with a blocking `std` socket, so the runtime gets no chance to run (and drop)
/// the backend's aborted tasks first: this checks what was closed synchronously.
fn assert_refused(addr: SocketAddr) {
    match std::net::TcpStream::connect(addr) {
        Err(err) => assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}"),
        Ok(_) => panic!("{addr} still accepts connections"),
    }
}

/// Tasks alive on this (current-thread) test runtime.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test]
async fn kill_refuses_new_connections_at_once() {
    let backend = support::start_named("k").await;
    let addr = backend.addr();
    TcpStream::connect(addr)
        .await
        .expect("listening before kill");
    backend.kill();
    assert_refused(addr);
}

#[tokio::test]
async fn kill_resets_in_flight_requests_and_leaks_no_task() {
    let baseline = alive_tasks();
    let backend = support::start_named("k").await;
    let idle = support::h1(backend.addr()).await.expect("connect");
    let mut busy = support::h1(backend.addr()).await.expect("connect");
    let in_flight = tokio::spawn(async move { busy.send_request(get("/?delay_ms=600000")).await });
    eventually("the request to reach the backend", || {
        backend.requests() == 1
    })
    .await;
    assert_eq!(backend.open_connections(), 2);

    backend.kill();
    let outcome = tokio::time::timeout(PATIENCE, in_flight)
        .await
        .expect("killing ends the in-flight request")
        .expect("client task");
    assert!(outcome.is_err(), "a killed backend answered: {outcome:?}");
    eventually("the idle connection to close too", || idle.is_closed()).await;

    eventually("the backend's tasks to end", || alive_tasks() == baseline).await;
    assert_eq!(backend.open_connections(), 0);
    assert_refused(backend.addr());
}

#[tokio::test]
async fn kill_sends_a_reset_to_a_raw_connection() {
    let backend = support::start_named("k").await;
    let mut stream = TcpStream::connect(backend.addr()).await.expect("connect");
    stream
        .write_all(b"GET /?delay_ms=600000 HTTP/1.1\r\nhost: k\r\n\r\n")
        .await
        .expect("send");
    eventually("the request to reach the backend", || {
        backend.requests() == 1
    })
    .await;

    backend.kill();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
        .await
        .expect("the connection ends");
    match read {
        Err(err) => assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}"),
        Ok(n) => panic!("expected a reset, read {n} bytes"),
    }
    // Stopping a killed backend gracefully returns at once.
    tokio::time::timeout(PATIENCE, backend.shutdown())
        .await
        .expect("shutdown after kill");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let backend = support::start_named("g").await;
    let addr = backend.addr();
    let mut sender = support::h1(addr).await.expect("connect");
    let started = Instant::now();
    let in_flight = tokio::spawn(async move {
        let response = sender.send_request(get("/?delay_ms=300")).await?;
        support::collect(response).await
    });
    eventually("the request to reach the backend", || {
        backend.requests() == 1
    })
    .await;

    let ((), reply) = tokio::join!(backend.shutdown(), async {
        // `shutdown()` was polled first, so the port is already closed.
        tokio::task::spawn_blocking(move || assert_refused(addr))
            .await
            .expect("refused");
        in_flight.await.expect("client task")
    });
    let reply = reply.expect("in-flight request completes");
    assert_eq!(reply.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(backend.open_connections(), 0);

    // Once stopped, stopping again is immediate and harmless.
    backend.shutdown().await;
    backend.kill();
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections() {
    let backend = support::start_named("g").await;
    let mut sender = support::h1(backend.addr()).await.expect("connect");
    let response = sender.send_request(get("/")).await.expect("request");
    support::collect(response).await.expect("body");

    tokio::time::timeout(PATIENCE, backend.shutdown())
        .await
        .expect("an idle connection does not hold up shutdown");
    eventually("the idle connection to close", || sender.is_closed()).await;
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_backend() {
    let baseline = alive_tasks();
    let backend = support::start_named("d").await;
    let clone = backend.clone();
    let addr = backend.addr();
    let _open = TcpStream::connect(addr).await.expect("connect");
    eventually("the connection to be accepted", || {
        backend.open_connections() == 1
    })
    .await;

    drop(backend);
    TcpStream::connect(addr)
        .await
        .expect("a clone keeps it running");
    drop(clone);
    assert_refused(addr);
    eventually("the backend's tasks to end", || alive_tasks() == baseline).await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_h2_streams_finish() {
    let backend = support::start_named("g2").await;
    let mut sender = support::h2(backend.addr()).await.expect("connect");
    let in_flight = tokio::spawn(async move {
        let req = http::Request::get("http://g2.test/?delay_ms=200")
            .body(http_body_util::Full::default())
            .expect("valid request");
        let response = sender.send_request(req).await?;
        support::collect(response).await
    });
    eventually("the request to reach the backend", || {
        backend.requests() == 1
    })
    .await;

    let ((), reply) = tokio::join!(backend.shutdown(), in_flight);
    let reply = reply.expect("client task").expect("the stream completes");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["backend"], "g2");
    assert_eq!(backend.open_connections(), 0);
}

//! Client-side limits: a request head must arrive in time; idle connections close.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ballast_testkit::{backends, Ballast, Setup};

/// Read until the server closes; returns what was read and when it closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after {limit:?}"),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    setup.listener_extra = "header_read_timeout = \"300ms\"\nidle_timeout = \"30s\"".into();
    let ballast = Ballast::start(&setup).await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let (out, took) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(out.is_empty(), "no response to an incomplete head: {out}");
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
    assert_eq!(bs[0].requests(), 0);
}

/// A new connection that says nothing has the header timeout to start, not the
/// idle timeout (once the kernel has handed it over: the listening socket defers
/// a silent connection for about a second).
#[tokio::test]
async fn a_silent_new_connection_is_closed_after_the_header_timeout() {
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    setup.listener_extra = "header_read_timeout = \"300ms\"\nidle_timeout = \"30s\"".into();
    let ballast = Ballast::start(&setup).await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    let (out, took) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(out.is_empty(), "nothing to answer: {out}");
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
}

#[tokio::test]
async fn idle_and_header_timeouts_are_separate() {
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    setup.listener_extra = "header_read_timeout = \"200ms\"\nidle_timeout = \"1500ms\"".into();
    let ballast = Ballast::start(&setup).await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(req).await.expect("write");
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Idle for longer than the header timeout, shorter than the idle timeout: still open.
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.write_all(req)
        .await
        .expect("write on the idle connection");
    let n = s.read(&mut buf).await.expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "kept alive past the header timeout"
    );
    // Then idle past the idle timeout: closed.
    let (_, took) = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(
        took >= Duration::from_millis(1300),
        "closed before the idle timeout: {took:?}"
    );
}

/// A keep-alive connection quiet for longer than `PARK_AFTER` (250 ms) gives its
/// HTTP state back and waits on the bare socket; the next request on it, whole or
/// arriving in pieces, is served as usual.
#[tokio::test]
async fn a_parked_connection_serves_the_next_request() {
    let bs = backends(1).await;
    let setup = Setup::new(&bs);
    let ballast = Ballast::start(&setup).await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    let mut buf = vec![0u8; 64 * 1024];
    for round in 0..3 {
        if round == 2 {
            // The head arrives in two pieces right after the connection parked.
            s.write_all(b"GET / HTTP/1.1\r\nHo").await.expect("write");
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.write_all(b"st: x\r\n\r\n").await.expect("write");
        } else {
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("write");
        }
        let n = s.read(&mut buf).await.expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "round {round}: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        // Idle past the parking point (the idle timeout is far away): wait until
        // the listener has counted this connection parked once more.
        let parked = |b: &Ballast| {
            let snap = b.server.snapshot();
            let m = &snap.listener("public").expect("listener").metrics;
            m.parked_total.load(std::sync::atomic::Ordering::Relaxed)
        };
        let started = Instant::now();
        while parked(&ballast) < round + 1 {
            assert!(
                started.elapsed() < crate::SOON,
                "round {round}: never parked"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(bs[0].requests(), 3);
    let text = ballast.server.metrics_text();
    assert!(
        text.contains("ballast_parked_connections_total{listener=\"public\"} 3"),
        "{text}"
    );
}

/// Wait until the listener has parked `n` connections in all.
async fn parked(ballast: &Ballast, n: u64) {
    let started = Instant::now();
    loop {
        let snap = ballast.server.snapshot();
        let m = &snap.listener("public").expect("listener").metrics;
        if m.parked_total.load(std::sync::atomic::Ordering::Relaxed) >= n {
            return;
        }
        assert!(started.elapsed() < crate::SOON, "never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn open_connections(ballast: &Ballast) -> i64 {
    let snap = ballast.server.snapshot();
    let m = &snap.listener("public").expect("listener").metrics;
    m.active_connections
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// A parked connection has no task, but it still counts as open, it closes when
/// its client hangs up, and a shutdown closes it at once instead of waiting out
/// the drain timeout for it.
#[tokio::test]
async fn parked_connections_count_as_open_and_close_with_their_client_or_the_drain() {
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    setup.drain_timeout = "30s";
    let ballast = Ballast::start(&setup).await;
    let mut buf = vec![0u8; 64 * 1024];
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let n = s.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        clients.push(s);
    }
    parked(&ballast, 2).await;
    assert_eq!(open_connections(&ballast), 2);

    drop(clients.remove(0));
    let started = Instant::now();
    while open_connections(&ballast) != 1 {
        assert!(started.elapsed() < crate::SOON, "a hang-up was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut last = clients.remove(0);
    let (_, (out, took)) = tokio::join!(
        ballast.server.shutdown(),
        read_until_closed(&mut last, Duration::from_secs(10))
    );
    assert!(out.is_empty(), "{out}");
    assert!(took < Duration::from_secs(10), "closed only after {took:?}");
    assert_eq!(open_connections(&ballast), 0);
}

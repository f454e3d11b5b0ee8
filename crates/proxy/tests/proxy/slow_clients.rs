//! Slow clients (issue 25 §3): a request head, a request body or a reader too
//! slow for the listener's limits is cut off with the right answer and counted
//! in `ballast_client_timeouts_total{phase}`; a body that is slow but keeps to
//! `request_body_min_rate` passes. Short limits, real sockets; the same attacks
//! by the thousand are `crates/ballast/tests/cli/slow_clients.rs`.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use ballast_testkit::raw::read_response;
use ballast_testkit::{backend, eventually, BackendHandle, Ballast, Client, Setup};

use crate::SOON;

struct Rig {
    ballast: Ballast,
    backend: BackendHandle,
    log: PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One target spoken to with `protocol`, the listener's limits in `limits`.
async fn start(protocol: &str, test: &str, limits: &str) -> Rig {
    let backend = backend("b0").await;
    let log = std::env::temp_dir().join(format!(
        "ballast-slow-clients-{}-{test}-{protocol}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let mut setup = Setup::new(std::slice::from_ref(&backend));
    setup.interval = "60s";
    setup.hc_timeout = "1s";
    setup.group_extra = format!("protocol = \"{protocol}\"\n");
    setup.listener_extra = limits.to_string();
    setup.access_log = log.display().to_string();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    Rig {
        ballast,
        backend,
        log,
    }
}

impl Rig {
    fn metric(&self, prefix: &str) -> u64 {
        self.ballast
            .server
            .metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
            .unwrap_or(0)
    }

    fn timeouts(&self, phase: &str) -> u64 {
        self.metric(&format!(
            "ballast_client_timeouts_total{{listener=\"public\",phase=\"{phase}\"}}"
        ))
    }

    fn answered(&self, code: u16) -> u64 {
        self.metric(&format!(
            "ballast_requests_total{{listener=\"public\",code=\"{code}\"}}"
        ))
    }

    async fn wait_timeouts(&self, phase: &str, n: u64) {
        eventually(&format!("{n} {phase} timeouts"), SOON, || async {
            self.timeouts(phase) >= n
        })
        .await;
    }

    async fn wait_target_has(&self, requests: u64) {
        eventually("the request reached the target", SOON, || async {
            self.backend.requests() >= requests
        })
        .await;
    }

    /// The access log's `status error_reason`, once there are `n` lines.
    async fn reasons(&self, n: usize) -> Vec<String> {
        let read = || std::fs::read_to_string(&self.log).unwrap_or_default();
        eventually(&format!("{n} access-log lines"), SOON, || async {
            read().lines().count() >= n
        })
        .await;
        read()
            .lines()
            .map(|l| {
                let line: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                format!("{} {}", line["status"], line["error_reason"])
            })
            .collect()
    }
}

/// Send `body` a piece at a time, `every` apart.
async fn trickle(s: &mut TcpStream, body: &[u8], piece: usize, every: Duration) {
    for part in body.chunks(piece) {
        tokio::time::sleep(every).await;
        if s.write_all(part).await.is_err() {
            return;
        }
    }
}

/// A body that trickles (a byte every 100 ms) is cut after `request_body_timeout`:
/// the client's 408, with `Connection: close`, counted as a body timeout and
/// logged as `request_body_timeout`; the target is not blamed and the next
/// request is served. Towards HTTP/1.1 and HTTP/2 targets alike.
#[tokio::test]
async fn a_trickling_body_is_the_clients_408_request_body_timeout() {
    for protocol in ["http1", "http2"] {
        let rig = start(protocol, "trickle", "request_body_timeout = \"600ms\"").await;
        let mut s = TcpStream::connect(rig.ballast.addr).await.expect("connect");
        s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
            .await
            .expect("write");
        rig.wait_target_has(1).await;
        let started = Instant::now();
        let (mut rd, mut wr) = s.into_split();
        let writer = tokio::spawn(async move {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if wr.write_all(b"x").await.is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        let _ = tokio::time::timeout(SOON, rd.read_to_end(&mut out)).await;
        writer.abort();
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{protocol}: {text}"
        );
        assert!(text.contains("connection: close\r\n"), "{protocol}: {text}");
        assert!(
            text.ends_with("408 Request Timeout: request_body_timeout\n"),
            "{protocol}: {text}"
        );
        // 600 ms of waiting, with a few bytes' worth earned at 1 KiB/s.
        assert!(took >= Duration::from_millis(500), "{protocol}: {took:?}");
        assert_eq!(rig.timeouts("body"), 1, "{protocol}");
        assert_eq!(rig.answered(408), 1, "{protocol}");
        assert_eq!(rig.answered(502) + rig.answered(504), 0, "{protocol}");
        assert_eq!(
            rig.reasons(1).await,
            ["408 \"request_body_timeout\""],
            "{protocol}"
        );
        let snapshot = rig.ballast.server.snapshot();
        let group = snapshot.group("web").expect("group");
        assert!(group.targets.iter().all(|t| t.is_healthy()), "{protocol}");
        let r = Client::http1()
            .get(&rig.ballast.url("/after"))
            .await
            .expect("next request");
        assert_eq!(r.status, 200, "{protocol}");
    }
}

/// A body slow but steady (512 bytes every 150 ms, 3.4 KiB/s) waits far longer
/// in all than `request_body_timeout`, and passes: each KiB earns a second at
/// `request_body_min_rate = "1KiB/s"`. At the same pace with no rate earned
/// (`"0B/s"`), the same body is cut.
#[tokio::test]
async fn a_slow_but_steady_body_passes_at_the_minimum_rate_and_is_cut_without_it() {
    let body = vec![b'z'; 8 * 1024];
    for (rate, passes) in [("1KiB/s", true), ("0B/s", false)] {
        let limits =
            format!("request_body_timeout = \"500ms\"\nrequest_body_min_rate = \"{rate}\"");
        let rig = start("http1", "steady", &limits).await;
        let mut s = TcpStream::connect(rig.ballast.addr).await.expect("connect");
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("write");
        let started = Instant::now();
        trickle(&mut s, &body, 512, Duration::from_millis(150)).await;
        let mut buf = Vec::new();
        let r = read_response(&mut s, &mut buf, false)
            .await
            .expect("a response");
        if passes {
            assert!(started.elapsed() >= Duration::from_millis(2000));
            assert_eq!(
                r.status,
                200,
                "{rate}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let echo: serde_json::Value = serde_json::from_slice(&r.body).expect("echo");
            assert_eq!(echo["body_bytes"], body.len() as u64, "{rate}");
            assert_eq!(rig.timeouts("body"), 0, "{rate}");
        } else {
            assert_eq!(r.status, 408, "{rate}");
            assert_eq!(rig.timeouts("body"), 1, "{rate}");
        }
    }
}

/// On HTTP/2 a slow body ends its own stream with a 408; the connection and
/// its other streams go on.
#[tokio::test]
async fn a_slow_body_on_an_http2_stream_ends_that_stream_only() {
    let rig = start("http1", "h2", "request_body_timeout = \"500ms\"").await;
    let tcp = TcpStream::connect(rig.ballast.addr).await.expect("connect");
    let (h2, connection) = h2::client::handshake(tcp).await.expect("h2c handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut h2 = h2.ready().await.expect("ready");
    let req = Request::post(rig.ballast.url("/upload"))
        .header("content-length", "100000")
        .body(())
        .expect("request");
    let (response, mut body) = h2.send_request(req, false).expect("send");
    body.send_data(Bytes::from_static(b"start"), false)
        .expect("data");
    let response = tokio::time::timeout(SOON, response)
        .await
        .expect("answered in time")
        .expect("a response, not a reset");
    assert_eq!(response.status(), 408);
    assert_eq!(rig.timeouts("body"), 1);
    // The same connection serves the next stream.
    let mut h2 = h2.ready().await.expect("ready");
    let get = Request::get(rig.ballast.url("/next"))
        .body(())
        .expect("get");
    let (response, _) = h2.send_request(get, true).expect("send");
    let response = tokio::time::timeout(SOON, response)
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), 200);
}

/// A request head that comes a byte at a time, and a connection that says
/// nothing, are closed after `header_read_timeout` and counted as head timeouts.
#[tokio::test]
async fn slow_heads_are_closed_and_counted() {
    let rig = start("http1", "head", "header_read_timeout = \"400ms\"").await;
    let mut silent = TcpStream::connect(rig.ballast.addr).await.expect("connect");
    let mut slow = TcpStream::connect(rig.ballast.addr).await.expect("connect");
    let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let (mut rd, mut wr) = slow.split();
    let writing = trickle_half(&mut wr, head);
    let mut out = Vec::new();
    let reading = tokio::time::timeout(SOON, rd.read_to_end(&mut out));
    let (_, read) = tokio::join!(writing, reading);
    assert!(read.is_ok(), "the slow head's connection was closed");
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    let mut none = Vec::new();
    let read = tokio::time::timeout(SOON, silent.read_to_end(&mut none)).await;
    assert!(read.is_ok(), "the silent connection was closed");
    rig.wait_timeouts("head", 2).await;
    assert_eq!(rig.backend.requests(), 0);
}

/// Write `bytes` one every 100 ms until the peer closes.
async fn trickle_half(wr: &mut tokio::net::tcp::WriteHalf<'_>, bytes: &[u8]) {
    for b in bytes {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if wr.write_all(&[*b]).await.is_err() {
            return;
        }
    }
}

/// A client with a small receive buffer that asks for a large response and
/// never reads it: its connection is closed after `response_send_timeout`
/// without a byte taken, counted as a send timeout. Both of ballast's HTTP/1.1
/// servers: its own (a GET) and hyper's (a POST with a body), and h2c.
#[tokio::test]
async fn a_reader_that_stops_is_closed_after_the_send_timeout() {
    let rig = start("http1", "reader", "response_send_timeout = \"500ms\"").await;
    let size = 16 * 1024 * 1024;
    let requests = [
        format!("GET /?bytes={size} HTTP/1.1\r\nHost: x\r\n\r\n"),
        format!("POST /?bytes={size} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"),
    ];
    for (i, req) in requests.iter().enumerate() {
        let mut s = small_window(rig.ballast.addr).await;
        s.write_all(req.as_bytes()).await.expect("write");
        rig.wait_timeouts("send", i as u64 + 1).await;
        // Closed: what is left in the buffers, then the end, far short of the body.
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout(SOON, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got += n,
                Err(_) => panic!("request {i}: still open"),
            }
        }
        assert!(got < size / 2, "request {i}: read {got} bytes");
    }
    // h2c: the connection as a whole stops being read.
    let paused = Arc::new(AtomicBool::new(false));
    let s = Pausable {
        inner: small_window(rig.ballast.addr).await,
        paused: paused.clone(),
    };
    let (h2, connection) = h2::client::Builder::new()
        .initial_window_size(8 * 1024 * 1024)
        .initial_connection_window_size(8 * 1024 * 1024)
        .handshake::<_, Bytes>(s)
        .await
        .expect("h2c handshake");
    tokio::spawn(connection);
    let mut h2 = h2.ready().await.expect("ready");
    let get = Request::get(rig.ballast.url(&format!("/?bytes={size}")))
        .body(())
        .expect("get");
    let (response, _) = h2.send_request(get, true).expect("send");
    let response = tokio::time::timeout(SOON, response)
        .await
        .expect("head in time")
        .expect("head");
    assert_eq!(response.status(), 200);
    // The window is wide open; the socket is no longer read.
    paused.store(true, Ordering::SeqCst);
    rig.wait_timeouts("send", 3).await;
}

/// A stream whose reads stop (stay pending) once `paused` is set.
struct Pausable {
    inner: TcpStream,
    paused: Arc<AtomicBool>,
}

impl AsyncRead for Pausable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.paused.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pausable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection whose receive buffer is 4 KiB, so that a response fills it at once.
async fn small_window(addr: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    socket.connect(addr).await.expect("connect")
}

/// Once the target has answered, the body's clock stops: a gRPC bidirectional
/// stream whose client pauses, in all, several times `request_body_timeout`
/// between its messages is a conversation, not a slow POST, and goes on.
#[tokio::test]
async fn a_grpc_stream_the_target_answered_may_pause_longer_than_the_body_timeout() {
    use ballast_testkit::grpc::{client, EchoRequest, GrpcBackend};
    use futures_util::StreamExt;

    let backend = GrpcBackend::start().await;
    let mut setup = Setup::with_targets(&[backend.addr]).grpc();
    setup.listener_extra = "request_body_timeout = \"200ms\"".into();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    let mut c = client(&ballast.url("")).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(1);
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut inbound = c.bidi(outbound).await.expect("bidi").into_inner();
    for i in 0..4 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let msg = EchoRequest {
            message: format!("ping {i}"),
            ..Default::default()
        };
        tx.send(msg).await.expect("send");
        let reply = tokio::time::timeout(SOON, inbound.next())
            .await
            .expect("reply in time")
            .expect("a reply")
            .expect("ok");
        assert_eq!(reply.message, format!("ping {i}"));
    }
    drop(tx);
    assert!(inbound.next().await.is_none(), "ends at the client's end");
    let text = ballast.server.metrics_text();
    assert!(
        text.contains("ballast_client_timeouts_total{listener=\"public\",phase=\"body\"} 0"),
        "{text}"
    );
}

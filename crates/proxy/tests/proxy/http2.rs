//! Plain HTTP through a `protocol = "http2"` group: HTTP/1.1 and h2c clients alike
//! reach the targets over HTTP/2, with bodies streamed and headers rewritten as
//! for HTTP/1.1 targets.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ballast_testkit::{backends, BackendHandle, Ballast, Client, Setup};

async fn start() -> (Ballast, Vec<BackendHandle>) {
    let bs = backends(2).await;
    let mut setup = Setup::new(&bs);
    setup.group_extra.push_str("protocol = \"http2\"\n");
    let ballast = Ballast::start(&setup).await;
    // The targets pass the HTTP check done over HTTP/2.
    ballast.all_healthy().await;
    (ballast, bs)
}

#[tokio::test]
async fn http1_and_h2c_clients_reach_http2_targets() {
    let (ballast, _bs) = start().await;
    for client in [Client::http1(), Client::h2c()] {
        let req = Request::get(ballast.url("/a/b?x=1"))
            .header("x-custom", "kept")
            .header("connection", "x-private")
            .header("x-private", "secret")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let r = client.send(req).await.expect("response");
        assert_eq!(r.status, 200, "{}", r.text());
        let echo = r.json();
        assert_eq!(echo["path"], "/a/b");
        assert_eq!(echo["query"], "x=1");
        let h = &echo["headers"];
        assert_eq!(h["x-custom"], "kept");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert!(h.get("x-private").is_none(), "{h}");
        assert!(h.get("connection").is_none(), "{h}");
    }
}

#[tokio::test]
async fn request_and_response_bodies_stream_over_http2() {
    let (ballast, _bs) = start().await;
    let body = vec![7u8; 3 * 1024 * 1024];
    let req = Request::post(ballast.url("/upload"))
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let r = Client::http1().send(req).await.expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_bytes"], 3 * 1024 * 1024);
}

/// The h2c preface is recognised however it is cut into reads, and only the
/// whole preface: bytes that start like it and then differ are HTTP/1.
#[tokio::test]
async fn the_h2c_preface_may_arrive_in_pieces() {
    let (ballast, _bs) = start().await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    for piece in [&b"PRI * HT"[..], b"TP/2.0\r\n\r\nS", b"M\r\n\r\n"] {
        s.write_all(piece).await.expect("write");
        s.flush().await.expect("flush");
        // Apart, so that the server reads them apart.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // An empty SETTINGS frame; the server's own SETTINGS frame comes first.
    s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .expect("write");
    let mut frame = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut frame))
        .await
        .expect("an answer in time")
        .expect("read");
    assert_eq!(frame[3], 4, "a SETTINGS frame: {frame:?}");
    assert_eq!(&frame[5..9], &[0, 0, 0, 0], "on stream 0");

    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    s.write_all(b"PRI * HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head))
        .await
        .expect("an answer in time")
        .expect("read");
    assert!(
        head.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
}

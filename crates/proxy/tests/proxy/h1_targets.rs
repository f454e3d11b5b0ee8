//! ballast's own HTTP/1.1 client against a target that answers byte for byte as
//! scripted: every way a response body can be delimited, and when a connection may
//! carry the next request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use ballast_testkit::{Ballast, Client};

use crate::errors::unchecked_target;

/// The raw response for a request path.
fn script(path: &str) -> &'static [u8] {
    match path {
        "/chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
        "/both" => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
        "/close" => b"HTTP/1.1 200 OK\r\n\r\nuntil the target closes",
        "/length" => b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nlength",
        "/head" => b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
        "/no-content" => b"HTTP/1.1 204 No Content\r\n\r\n",
        "/continue" => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        "/conflict" => b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
        "/garbage" => b"NOT HTTP AT ALL\r\n\r\n",
        "/cut" => b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part",
        _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
    }
}

/// A target that answers each request head with its script and counts the
/// connections that carried proxied requests (the health checker probes `/healthz`).
async fn scripted_target() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, count.clone()));
        }
    });
    (addr, accepted)
}

async fn serve(mut stream: TcpStream, proxied: Arc<AtomicUsize>) {
    let mut first = true;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        if std::mem::take(&mut first) && path != "/healthz" {
            proxied.fetch_add(1, Ordering::SeqCst);
        }
        if stream.write_all(script(&path)).await.is_err() {
            return;
        }
        if matches!(path.as_str(), "/close" | "/cut" | "/garbage") {
            return; // the body ends (or breaks off) with the connection
        }
    }
}

#[tokio::test]
async fn every_response_framing_reaches_the_client_whole() {
    let (addr, _) = scripted_target().await;
    let ballast = Ballast::start(&unchecked_target(addr)).await;
    let client = Client::http1();
    for (path, body) in [
        ("/chunked", "hello world"),
        ("/both", "abcd"),
        ("/close", "until the target closes"),
        ("/length", "length"),
        ("/continue", "ok"),
    ] {
        let r = client.get(&ballast.url(path)).await.expect("request");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), body, "{path}");
    }
    let r = client
        .get(&ballast.url("/no-content"))
        .await
        .expect("request");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    let head = http::Request::head(ballast.url("/head"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let r = client.send(head).await.expect("request");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-length"], "9",
        "a HEAD answer keeps its length"
    );
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn a_connection_is_reused_only_after_a_clean_response() {
    let (addr, accepted) = scripted_target().await;
    let ballast = Ballast::start(&unchecked_target(addr)).await;
    let client = Client::http1();
    let r = client.get(&ballast.url("/chunked")).await.expect("request");
    assert_eq!(r.text(), "hello world");
    let first = accepted.load(Ordering::SeqCst);
    assert_eq!(first, 1);
    for _ in 0..4 {
        let r = client.get(&ballast.url("/chunked")).await.expect("request");
        assert_eq!(r.text(), "hello world");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        first,
        "the pooled connection"
    );
    // Both lengths: read as chunked, and that connection is not used again.
    let r = client.get(&ballast.url("/both")).await.expect("request");
    assert_eq!(r.text(), "abcd");
    let r = client.get(&ballast.url("/length")).await.expect("request");
    assert_eq!(r.text(), "length");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        first + 1,
        "a new connection after /both"
    );
}

#[tokio::test]
async fn a_target_that_breaks_http_is_a_502() {
    let (addr, _) = scripted_target().await;
    let ballast = Ballast::start(&unchecked_target(addr)).await;
    let client = Client::http1();
    for path in ["/conflict", "/garbage"] {
        let r = client.get(&ballast.url(path)).await.expect("request");
        assert_eq!(r.status, 502, "{path}");
        assert_eq!(r.text(), "502 Bad Gateway: target_failed\n", "{path}");
    }
    // A body cut short cannot be answered with an error any more: the client sees
    // the response break off.
    assert!(client.get(&ballast.url("/cut")).await.is_err());
    // And the listener goes on serving.
    let r = client.get(&ballast.url("/length")).await.expect("request");
    assert_eq!(r.text(), "length");
}

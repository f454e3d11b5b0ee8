//! ballast's own HTTP/1.1 server (`h1::server`) as a client sees it on the wire,
//! and its hand-over to hyper for the requests it leaves alone.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ballast_testkit::raw::{read_response, RawResponse};
use ballast_testkit::{backends, Ballast, Setup};

use crate::errors::unchecked_target;

fn echo_path(r: &RawResponse) -> String {
    let echo: serde_json::Value = serde_json::from_slice(&r.body).expect("json echo");
    echo["path"].as_str().expect("path").to_string()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    let mut three = Vec::new();
    for path in ["/a", "/b", "/c"] {
        three.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    s.write_all(&three).await.expect("write");
    let mut buf = Vec::new();
    for path in ["/a", "/b", "/c"] {
        let r = read_response(&mut s, &mut buf, false)
            .await
            .expect("a whole response");
        assert_eq!(r.status, 200);
        assert_eq!(echo_path(&r), path);
        assert!(r.headers.contains_key("date"), "{:?}", r.headers);
        assert!(!r.headers.contains_key("connection"), "{:?}", r.headers);
    }
}

#[tokio::test]
async fn a_request_with_a_body_is_served_by_hyper_on_the_same_connection() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    let mut buf = Vec::new();
    let steps: [(&[u8], &str, u64); 4] = [
        (b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n", "/one", 0),
        (b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "/two", 5),
        (b"PUT /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "/three", 3),
        (b"GET /four HTTP/1.1\r\nHost: x\r\n\r\n", "/four", 0),
    ];
    for (raw, path, body_bytes) in steps {
        s.write_all(raw).await.expect("write");
        let r = read_response(&mut s, &mut buf, false)
            .await
            .expect("a whole response");
        assert_eq!(r.status, 200, "{path}");
        let echo: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(echo["path"], path);
        assert_eq!(echo["body_bytes"], body_bytes, "{path}");
    }
}

#[tokio::test]
async fn head_responses_keep_their_length_and_send_no_body() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    let mut buf = Vec::new();
    s.write_all(
        b"HEAD /h?bytes=1000 HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .expect("write");
    let head = read_response(&mut s, &mut buf, true)
        .await
        .expect("a whole response");
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], "1000");
    // Had any body bytes followed the HEAD response, this would not parse.
    let next = read_response(&mut s, &mut buf, false)
        .await
        .expect("a whole response");
    assert_eq!(echo_path(&next), "/after");
}

#[tokio::test]
async fn large_bodies_cross_whole() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    let mut buf = Vec::new();
    for len in [0usize, 1, 4096, 4097, 16 * 1024, 1 << 20] {
        let req = format!("GET /big?bytes={len} HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let r = read_response(&mut s, &mut buf, false)
            .await
            .expect("a whole response");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), len, "body of {len} bytes");
    }
}

#[tokio::test]
async fn connection_close_is_honoured_and_ballasts_own_answers_are_dated() {
    // No target listens there: ballast answers 502 itself.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = dead.local_addr().expect("addr");
    drop(dead);
    let ballast = Ballast::start(&unchecked_target(addr)).await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false)
        .await
        .expect("a whole response");
    assert_eq!(r.status, 502);
    assert_eq!(r.headers["connection"], "close");
    assert!(r.headers["date"].ends_with(" GMT"), "{:?}", r.headers);
    assert!(String::from_utf8_lossy(&r.body).contains("502"));
    let mut rest = Vec::new();
    let n = s.read_to_end(&mut rest).await.expect("read to the close");
    assert_eq!(n, 0, "nothing after the response, then the close");

    // A HEAD gets the same answer's length, and no body.
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let head = read_response(&mut s, &mut buf, true)
        .await
        .expect("a whole response");
    assert_eq!(head.status, 502);
    let get = read_response(&mut s, &mut buf, false)
        .await
        .expect("a whole response");
    assert_eq!(get.status, head.status);
    assert_eq!(head.headers["content-length"], get.body.len().to_string());
}

#[tokio::test]
async fn malformed_requests_get_hypers_answer_and_the_listener_goes_on() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    for bad in [
        &b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ] {
        let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
        s.write_all(bad).await.expect("write");
        let mut buf = Vec::new();
        let r = read_response(&mut s, &mut buf, false)
            .await
            .expect("a whole response");
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
    }
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    s.write_all(b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false)
        .await
        .expect("a whole response");
    assert_eq!(echo_path(&r), "/fine");
}

/// A new connection is read directly, at most 8 KiB at first (`socket.rs`): a
/// longer head, sent whole as the connection's first bytes, is served all the
/// same, every header intact.
#[tokio::test]
async fn a_long_first_head_on_a_new_connection_is_served_whole() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    for len in [7 * 1024, 12 * 1024] {
        let long = "v".repeat(len);
        let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
        let head = format!("GET /long HTTP/1.1\r\nHost: x\r\nX-Long: {long}\r\n\r\n");
        s.write_all(head.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let r = read_response(&mut s, &mut buf, false)
            .await
            .expect("a whole response");
        assert_eq!(r.status, 200, "{len}");
        let echo: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(echo["path"], "/long");
        assert_eq!(echo["headers"]["x-long"], long.as_str(), "{len}");
    }
}

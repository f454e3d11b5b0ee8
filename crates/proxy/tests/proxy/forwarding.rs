//! What crosses the proxy: headers, the request target, bodies of any size, h2c.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ballast_testkit::{backends, Ballast, Client, Setup};

#[tokio::test]
async fn hop_by_hop_removed_and_forwarded_headers_set() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let req = Request::get(ballast.url("/p?q=1"))
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "gzip")
        .header("proxy-authorization", "Basic Zm9v")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "client-id-1")
        .header("x-custom", "kept")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let r = Client::http1().send(req).await.expect("response");
    assert_eq!(r.status, 200);
    let echo = r.json();
    let h = &echo["headers"];
    for gone in [
        "x-private",
        "keep-alive",
        "te",
        "proxy-authorization",
        "connection",
    ] {
        assert!(
            h.get(gone).is_none(),
            "{gone} must not reach the target: {h}"
        );
    }
    assert_eq!(h["x-custom"], "kept");
    assert_eq!(h["host"], ballast.addr.to_string());
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-port"], ballast.addr.port().to_string());
    assert_eq!(h["x-request-id"], "client-id-1");
    assert_eq!(echo["path"], "/p");
    assert_eq!(echo["query"], "q=1");
}

#[tokio::test]
async fn response_hop_by_hop_headers_are_removed() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let r = Client::http1()
        .get(&ballast.url("/"))
        .await
        .expect("request");
    assert!(r.headers.get("keep-alive").is_none());
    assert!(r.headers.get("x-backend").is_some());
}

#[tokio::test]
async fn absolute_form_target_never_makes_an_open_proxy() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
    s.write_all(b"GET http://evil.example:9/steal?x=1 HTTP/1.1\r\nHost: whatever\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // The configured target answered, for the path only.
    assert!(out.contains("x-backend: b0"), "{out}");
    assert!(out.contains(r#""path":"/steal""#), "{out}");
    assert!(out.contains(r#""host":"evil.example:9""#), "{out}");
}

#[tokio::test]
async fn h2c_prior_knowledge_client() {
    let bs = backends(2).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let client = Client::h2c();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (client, url) = (client.clone(), ballast.url(&format!("/s{i}")));
        tasks.push(tokio::spawn(async move { client.get(&url).await }));
    }
    for t in tasks {
        let r = t.await.expect("join").expect("h2 request");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["headers"]["host"], ballast.addr.to_string());
    }
    assert_eq!(bs[0].requests() + bs[1].requests(), 50);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let size = 100 * 1024 * 1024;
    // Upload: the target counts every byte.
    let body = Full::new(Bytes::from(vec![7u8; size]));
    let req = Request::post(ballast.url("/upload"))
        .body(body)
        .expect("request");
    let r = Client::http1().send(req).await.expect("upload");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_bytes"], size as u64);
    // Download: every byte arrives.
    let r = Client::http1()
        .get(&ballast.url(&format!("/?bytes={size}")))
        .await
        .expect("download");
    assert_eq!(r.body.len(), size);
}

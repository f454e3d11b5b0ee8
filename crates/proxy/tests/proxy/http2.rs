//! Plain HTTP through a `protocol = "http2"` group: HTTP/1.1 and h2c clients alike
//! reach the targets over HTTP/2, with bodies streamed and headers rewritten as
//! for HTTP/1.1 targets.

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

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

//! The echo document, headers, keep-alive and h2c.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::support::{self, eventually, get, send};

#[tokio::test]
async fn echo_reports_method_path_query_headers_and_body_size() {
    let backend = support::start_named("b1").await;
    let req = Request::post("/some/path?a=1&b=two")
        .header("host", "backend.test")
        .header("X-Multi", "one")
        .header("x-multi", "two")
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(vec![7u8; 1234])))
        .expect("valid request");

    let reply = send(backend.addr(), req).await.expect("request");

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(reply.header("x-backend"), "b1");
    assert_eq!(reply.header("content-length"), reply.body.len().to_string());
    let echo = reply.json();
    assert_eq!(echo["backend"], "b1");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/some/path");
    assert_eq!(echo["query"], "a=1&b=two");
    assert_eq!(echo["body_bytes"], 1234);
    assert_eq!(echo["headers"]["host"], "backend.test");
    assert_eq!(echo["headers"]["x-multi"], "one, two");
    assert_eq!(echo["headers"]["content-type"], "text/plain");
    assert_eq!(echo["headers"]["content-length"], "1234");
    assert_eq!(backend.requests(), 1);
    assert_eq!(backend.health_checks(), 0);
}

#[tokio::test]
async fn echo_query_is_an_empty_string_when_there_is_none() {
    let backend = support::start_named("b2").await;
    let echo = send(backend.addr(), get("/"))
        .await
        .expect("request")
        .json();
    assert_eq!(echo["query"], "");
    assert_eq!(echo["path"], "/");
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["body_bytes"], 0);
}

#[tokio::test]
async fn large_upload_is_streamed_and_counted() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 512; // 32 MiB
    let backend = support::start_named("up").await;
    let mut sender = support::h1_with(backend.addr()).await.expect("connect");
    let body = support::Repeat::new(Bytes::from(vec![1u8; CHUNK]), CHUNKS);
    let req = Request::put("/upload").body(body).expect("valid request");

    let response = sender.send_request(req).await.expect("request");
    let reply = support::collect(response).await.expect("body");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["body_bytes"], (CHUNK * CHUNKS) as u64);
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let backend = support::start_named("ka").await;
    let mut sender = support::h1(backend.addr()).await.expect("connect");
    for i in 0..5 {
        sender.ready().await.expect("connection stays open");
        let response = sender
            .send_request(get(&format!("/r/{i}")))
            .await
            .expect("request");
        let reply = support::collect(response).await.expect("body");
        assert_eq!(reply.json()["path"], format!("/r/{i}"));
    }
    assert_eq!(backend.requests(), 5);
    assert_eq!(backend.open_connections(), 1);

    drop(sender);
    eventually("the closed connection to be forgotten", || {
        backend.open_connections() == 0
    })
    .await;
}

#[tokio::test]
async fn h2c_prior_knowledge_works_on_the_same_port() {
    let backend = support::start_named("h2").await;
    let sender = support::h2(backend.addr()).await.expect("connect");
    let requests: Vec<_> = (0..4)
        .map(|i| {
            let mut sender = sender.clone();
            tokio::spawn(async move {
                let req = Request::post(format!("http://backend.test/h2/{i}?delay_ms=20"))
                    .header("x-stream", i.to_string())
                    .body(Full::new(Bytes::from_static(b"hello")))
                    .expect("valid request");
                let response = sender.send_request(req).await.expect("request");
                assert_eq!(response.version(), http::Version::HTTP_2);
                support::collect(response).await.expect("body")
            })
        })
        .collect();
    for (i, request) in requests.into_iter().enumerate() {
        let reply = request.await.expect("request task");
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("x-backend"), "h2");
        let echo = reply.json();
        assert_eq!(echo["path"], format!("/h2/{i}"));
        assert_eq!(echo["query"], "delay_ms=20");
        assert_eq!(echo["method"], "POST");
        assert_eq!(echo["body_bytes"], 5);
        assert_eq!(echo["headers"]["x-stream"], i.to_string());
    }
    assert_eq!(backend.requests(), 4);
    assert_eq!(
        backend.open_connections(),
        1,
        "all streams share one connection"
    );
}

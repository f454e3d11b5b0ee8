//! gRPC through ballast with a real tonic client and server: every streaming kind,
//! large messages, deadlines, cancellation, status and metadata both ways, and
//! ballast's own errors answered the gRPC way.

use std::time::Duration;

use ballast_testkit::grpc::tonic::{self, Code};
use ballast_testkit::grpc::{client, EchoRequest, GrpcBackend};
use ballast_testkit::{eventually, Ballast, Setup};
use futures_util::StreamExt;

use crate::SOON;

fn req(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_string(),
        ..Default::default()
    }
}

async fn start(backend: &GrpcBackend) -> Ballast {
    let ballast = Ballast::start(&Setup::with_targets(&[backend.addr]).grpc()).await;
    ballast.all_healthy().await;
    ballast
}

#[tokio::test]
async fn unary_with_metadata_both_ways() {
    let backend = GrpcBackend::start().await;
    let ballast = start(&backend).await;
    let mut c = client(&ballast.url("")).await;
    let mut request = tonic::Request::new(req("hello"));
    request
        .metadata_mut()
        .insert("x-custom", "from-client".parse().expect("value"));
    let response = c.unary(request).await.expect("unary call");
    assert_eq!(
        response
            .metadata()
            .get("x-echo-custom")
            .expect("x-echo-custom"),
        "from-client"
    );
    let reply = response.into_inner();
    assert_eq!(reply.message, "hello");
    // The target saw ballast's address, not the client's.
    assert!(reply.peer.starts_with("127.0.0.1:"), "{}", reply.peer);

    // An error status with metadata passes through unchanged.
    let status = c.unary(req("fail")).await.expect_err("fails");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "denied by echo");
    assert_eq!(status.metadata().get("x-reason").expect("x-reason"), "test");
}

#[tokio::test]
async fn client_server_and_bidi_streaming() {
    let backend = GrpcBackend::start().await;
    let ballast = start(&backend).await;
    let mut c = client(&ballast.url("")).await;

    let parts = futures_util::stream::iter((0..50).map(|i| req(&format!("{i},"))));
    let all = c.client_stream(parts).await.expect("client stream");
    let expected: String = (0..50).map(|i| format!("{i},")).collect();
    assert_eq!(all.into_inner().message, expected);

    let mut r = req("s");
    r.count = 100;
    let mut stream = c
        .server_stream(r)
        .await
        .expect("server stream")
        .into_inner();
    let mut n = 0;
    while let Some(item) = stream.next().await {
        assert_eq!(item.expect("item").message, format!("s-{n}"));
        n += 1;
    }
    assert_eq!(n, 100);

    // Bidi: each reply is awaited before the next request is sent, so this only
    // completes if both directions stream (nothing waits for the end).
    let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(1);
    let outbound =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut inbound = c.bidi(outbound).await.expect("bidi").into_inner();
    for i in 0..20 {
        tx.send(req(&format!("ping {i}"))).await.expect("send");
        let reply = tokio::time::timeout(SOON, inbound.next())
            .await
            .expect("reply in time")
            .expect("a reply")
            .expect("ok");
        assert_eq!(reply.message, format!("ping {i}"));
    }
    drop(tx);
    assert!(
        inbound.next().await.is_none(),
        "stream ends after the client's end"
    );
}

#[tokio::test]
async fn four_mib_message_both_ways() {
    let backend = GrpcBackend::start().await;
    let ballast = start(&backend).await;
    let mut c = client(&ballast.url("")).await;
    let payload: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut r = req("big");
    r.payload = payload.clone();
    let reply = c.unary(r).await.expect("large unary").into_inner();
    assert!(reply.payload == payload, "payload changed in transit");
}

#[tokio::test]
async fn status_and_trailers_after_messages() {
    let backend = GrpcBackend::start().await;
    let ballast = start(&backend).await;
    let mut c = client(&ballast.url("")).await;
    let mut r = req("fail");
    r.count = 2;
    let mut stream = c.server_stream(r).await.expect("call").into_inner();
    assert_eq!(
        stream.next().await.expect("1").expect("ok").message,
        "fail-0"
    );
    assert_eq!(
        stream.next().await.expect("2").expect("ok").message,
        "fail-1"
    );
    let status = stream.next().await.expect("status").expect_err("an error");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "stream failed on purpose");
    assert_eq!(
        status
            .metadata()
            .get("x-trailer-info")
            .expect("x-trailer-info"),
        "abc"
    );
}

/// The group's `response_timeout` is shorter than the client's deadline: ballast
/// answers DEADLINE_EXCEEDED itself when it runs out.
#[tokio::test]
async fn deadline_exceeded_at_the_response_timeout() {
    let backend = GrpcBackend::start().await;
    let mut setup = Setup::with_targets(&[backend.addr]).grpc();
    setup.group_extra.push_str("response_timeout = \"300ms\"\n");
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    let mut c = client(&ballast.url("")).await;
    let mut r = req("slow");
    r.delay_ms = 5_000;
    let mut request = tonic::Request::new(r);
    request.set_timeout(Duration::from_secs(20));
    let status = c.unary(request).await.expect_err("deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("target_response_timeout"),
        "{status:?}"
    );
}

/// The client's `grpc-timeout` is honoured by ballast. Sent by a plain h2 client,
/// which does not enforce the deadline itself (tonic's client would, and win).
#[tokio::test]
async fn grpc_timeout_header_is_honoured() {
    use ballast_testkit::grpc::prost::Message as _;
    let backend = GrpcBackend::start().await;
    let ballast = start(&backend).await;
    let mut r = req("slow");
    r.delay_ms = 5_000;
    let msg = r.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    let request = http::Request::post(ballast.url("/ballast.echo.Echo/Unary"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .body(http_body_util::Full::new(bytes::Bytes::from(framed)))
        .expect("request");
    let started = std::time::Instant::now();
    let reply = ballast_testkit::Client::h2c()
        .send(request)
        .await
        .expect("response");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/grpc");
    assert_eq!(reply.headers["grpc-status"], "4", "{:?}", reply.headers);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn client_cancellation_reaches_the_server() {
    let backend = GrpcBackend::start().await;
    let ballast = start(&backend).await;
    let mut c = client(&ballast.url("")).await;
    let mut r = req("tick");
    r.count = 10_000;
    r.delay_ms = 10;
    let mut stream = c.server_stream(r).await.expect("call").into_inner();
    for i in 0..3 {
        let item = stream.next().await.expect("item").expect("ok");
        assert_eq!(item.message, format!("tick-{i}"));
    }
    drop(stream); // tonic resets the stream (RST_STREAM CANCEL)
    assert!(
        backend.cancelled(SOON).await,
        "the server never saw the cancellation"
    );
}

#[tokio::test]
async fn no_healthy_target_is_grpc_unavailable() {
    let ballast = Ballast::start(&Setup::with_targets(&[]).grpc()).await;
    let mut c = client(&ballast.url("")).await;
    let status = c.unary(req("x")).await.expect_err("no target");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("no_healthy_target"), "{status:?}");
}

#[tokio::test]
async fn grpc_to_an_http1_group_is_unimplemented() {
    let backend = GrpcBackend::start().await;
    let mut setup = Setup::with_targets(&[backend.addr]);
    setup.minimum_healthy_targets = 0;
    let ballast = Ballast::start(&setup).await;
    let mut c = client(&ballast.url("")).await;
    let status = c.unary(req("x")).await.expect_err("wrong group protocol");
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("grpc_needs_http2"), "{status:?}");
}

#[tokio::test]
async fn many_concurrent_streams_share_few_connections() {
    let backend = GrpcBackend::start().await;
    let mut setup = Setup::with_targets(&[backend.addr]).grpc();
    // One probe at start, then none during the test: connections are ours.
    setup.interval = "5m";
    setup.hc_timeout = "2s";
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    let before = backend.connections();
    let c = client(&ballast.url("")).await;
    let calls = (0..200).map(|i| {
        let mut c = c.clone();
        async move {
            let mut r = req(&format!("m{i}"));
            r.delay_ms = 200;
            c.unary(r).await.map(|r| r.into_inner().message)
        }
    });
    let replies = futures_util::future::join_all(calls).await;
    for (i, r) in replies.into_iter().enumerate() {
        assert_eq!(r.expect("call ok"), format!("m{i}"));
    }
    let used = backend.connections() - before;
    assert!(
        used <= 2,
        "200 streams used {used} connections to the target"
    );
}

#[tokio::test]
async fn grpc_health_check_follows_serving_status() {
    let backend = GrpcBackend::start().await;
    let mut setup = Setup::with_targets(&[backend.addr]).grpc();
    setup.minimum_healthy_targets = 0;
    let ballast = start_with(&setup).await;
    ballast.all_healthy().await;
    backend.set_serving(false).await;
    let server = ballast.server.clone();
    eventually("target unhealthy", SOON, || {
        let s = server.snapshot();
        async move { !s.group("web").expect("web").targets[0].is_healthy() }
    })
    .await;
    let mut c = client(&ballast.url("")).await;
    let status = c.unary(req("x")).await.expect_err("unhealthy");
    assert_eq!(status.code(), Code::Unavailable);
    backend.set_serving(true).await;
    ballast.all_healthy().await;
    c.unary(req("x")).await.expect("healthy again");
}

async fn start_with(setup: &Setup) -> Ballast {
    Ballast::start(setup).await
}

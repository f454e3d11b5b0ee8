//! Steering by query (`status=`, `delay_ms=`, `bytes=`) and by config (`fail_rate`,
//! `latency`, `capacity`), and the health check.

use std::time::{Duration, Instant};

use ballast_backend::BackendConfig;
use http::StatusCode;
use http_body_util::BodyExt;

use crate::support::{self, get, send, PATIENCE};

#[tokio::test]
async fn status_parameter_sets_the_status_and_keeps_the_echo() {
    let backend = support::start_named("s").await;
    for code in [201u16, 404, 503] {
        let reply = send(backend.addr(), get(&format!("/x?status={code}")))
            .await
            .expect("request");
        assert_eq!(reply.status.as_u16(), code);
        assert_eq!(reply.header("x-backend"), "s");
        assert_eq!(reply.json()["query"], format!("status={code}"));
    }
}

#[tokio::test]
async fn no_content_status_sends_no_body() {
    let backend = support::start_named("s").await;
    let reply = send(backend.addr(), get("/?status=204"))
        .await
        .expect("request");
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("x-backend"), "s");
}

#[tokio::test]
async fn bad_parameters_are_a_400_with_a_plain_reason() {
    let backend = support::start_named("s").await;
    for query in ["status=abc", "status=42", "delay_ms=soon", "bytes=-3"] {
        let reply = send(backend.addr(), get(&format!("/?{query}")))
            .await
            .expect("request");
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(reply.header("content-type").starts_with("text/plain"));
        let reason = std::str::from_utf8(&reply.body).expect("utf-8");
        let key = query.split('=').next().unwrap_or_default();
        assert!(reason.contains(key), "{query}: {reason}");
    }
}

#[tokio::test]
async fn delay_ms_waits_before_responding() {
    let backend = support::start_named("d").await;
    let started = Instant::now();
    let reply = send(backend.addr(), get("/?delay_ms=250"))
        .await
        .expect("request");
    assert_eq!(reply.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn bytes_parameter_streams_exactly_that_many_bytes() {
    const LEN: u64 = 10 * 1024 * 1024 + 7;
    let backend = support::start_named("big").await;
    let mut sender = support::h1(backend.addr()).await.expect("connect");

    let response = sender
        .send_request(get(&format!("/blob?bytes={LEN}")))
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-length"],
        LEN.to_string().as_str()
    );
    assert_eq!(response.headers()["x-backend"], "big");
    // Counted frame by frame, as it streams in: the test never holds 10 MB either.
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.expect("frame").data_ref() {
            assert!(data.iter().all(|&b| b == b'x'));
            received += data.len() as u64;
        }
    }
    assert_eq!(received, LEN);

    for len in [0u64, 1, 65_536, 65_537] {
        sender
            .ready()
            .await
            .expect("keep-alive after a filler body");
        let response = sender
            .send_request(get(&format!("/?bytes={len}")))
            .await
            .expect("request");
        let reply = support::collect(response).await.expect("body");
        assert_eq!(reply.body.len() as u64, len);
    }
}

#[tokio::test]
async fn healthz_follows_set_healthy_and_is_not_a_request() {
    let backend = support::start_named("h").await;
    let reply = send(backend.addr(), get("/healthz"))
        .await
        .expect("request");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"ok");
    assert_eq!(reply.header("x-backend"), "h");

    backend.set_healthy(false);
    let reply = send(backend.addr(), get("/healthz"))
        .await
        .expect("request");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let reply = send(backend.addr(), get("/other")).await.expect("request");
    assert_eq!(reply.status, StatusCode::OK, "only the health check fails");

    backend.set_healthy(true);
    let reply = send(backend.addr(), get("/healthz"))
        .await
        .expect("request");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(backend.health_checks(), 3);
    assert_eq!(backend.requests(), 1);
}

#[tokio::test]
async fn fail_rate_one_fails_every_request_but_not_health_checks() {
    let backend = support::start(BackendConfig {
        fail_rate: 1.0,
        ..BackendConfig::new("bad")
    })
    .await;
    for _ in 0..5 {
        let reply = send(backend.addr(), get("/")).await.expect("request");
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.json()["backend"], "bad");
    }
    let reply = send(backend.addr(), get("/healthz"))
        .await
        .expect("request");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(backend.requests(), 5);
}

/// A gray failure that ends: `set_fail_rate` changes the share from the next request.
#[tokio::test]
async fn fail_rate_can_change_while_running() {
    let backend = support::start(BackendConfig {
        fail_rate: 1.0,
        ..BackendConfig::new("flaky")
    })
    .await;
    let reply = send(backend.addr(), get("/")).await.expect("request");
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    backend.set_fail_rate(0.0);
    for _ in 0..5 {
        let reply = send(backend.addr(), get("/")).await.expect("request");
        assert_eq!(reply.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn latency_delays_requests_but_not_health_checks_and_can_change() {
    let backend = support::start(BackendConfig {
        latency: Duration::from_millis(150),
        ..BackendConfig::new("slow")
    })
    .await;
    let started = Instant::now();
    send(backend.addr(), get("/")).await.expect("request");
    assert!(started.elapsed() >= Duration::from_millis(150));

    // A stall far longer than the test's patience: health checks must not wait for it,
    // and lowering it again must help the very next request.
    backend.set_latency(PATIENCE * 100);
    let health = tokio::time::timeout(PATIENCE, send(backend.addr(), get("/healthz")))
        .await
        .expect("health checks skip the latency")
        .expect("request");
    assert_eq!(health.status, StatusCode::OK);

    backend.set_latency(Duration::ZERO);
    tokio::time::timeout(PATIENCE, send(backend.addr(), get("/")))
        .await
        .expect("latency was lowered")
        .expect("request");
}

/// `capacity`: requests beyond it wait in line, so six requests at once through two
/// workers of 100 ms each take three turns, one after the other; a health check
/// never waits in that line.
#[tokio::test]
async fn capacity_queues_requests_beyond_it_but_not_health_checks() {
    let backend = support::start(BackendConfig {
        latency: Duration::from_millis(100),
        capacity: Some(2),
        ..BackendConfig::new("bounded")
    })
    .await;
    let started = Instant::now();
    let all: Vec<_> = (0..6)
        .map(|_| {
            let addr = backend.addr();
            tokio::spawn(async move {
                let reply = send(addr, get("/")).await;
                (reply, started.elapsed())
            })
        })
        .collect();
    support::eventually("six requests in line", || backend.requests() == 6).await;
    // With all six queued or served, a health check is answered before them.
    let health = send(backend.addr(), get("/healthz"))
        .await
        .expect("request");
    let health_at = started.elapsed();
    assert_eq!(health.status, StatusCode::OK);
    let mut finished = Vec::new();
    for one in all {
        let (reply, at) = one.await.expect("task");
        assert_eq!(reply.expect("request").status, StatusCode::OK);
        finished.push(at);
    }
    finished.sort();
    assert!(
        health_at < finished[5],
        "health {health_at:?}, requests {finished:?}"
    );
    // Three turns of 100 ms: the last two waited two turns for a worker.
    assert!(finished[4] >= Duration::from_millis(300), "{finished:?}");
    assert!(finished[2] >= Duration::from_millis(200), "{finished:?}");
}

/// `--poison`: other requests pass until one carries the poison; from then on
/// every request fails and so does `/healthz`, like a crashed process.
#[tokio::test]
async fn a_poison_request_breaks_the_backend_for_good() {
    let backend = support::start(BackendConfig {
        poison: Some(ballast_backend::Poison::parse("X-Tenant: poison").expect("poison")),
        ..BackendConfig::new("p")
    })
    .await;
    let with_tenant = |tenant: &str| {
        let mut req = get("/");
        let value = http::HeaderValue::from_str(tenant).expect("value");
        req.headers_mut().insert("x-tenant", value);
        req
    };
    let reply = send(backend.addr(), with_tenant("acme"))
        .await
        .expect("request");
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!backend.is_poisoned());
    let reply = send(backend.addr(), with_tenant("poison"))
        .await
        .expect("request");
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(backend.is_poisoned());
    for _ in 0..3 {
        let reply = send(backend.addr(), with_tenant("acme"))
            .await
            .expect("request");
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.header("x-backend"), "p");
    }
    let reply = send(backend.addr(), get("/healthz"))
        .await
        .expect("request");
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
}

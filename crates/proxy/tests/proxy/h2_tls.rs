//! TLS to HTTP/2 targets (`protocol = "http2"` with `tls`): gRPC and plain HTTP/2
//! through ballast to targets that terminate TLS and agree `h2` by ALPN, their
//! health checks over TLS (gRPC and HTTP), pooled connections, a client
//! certificate, and each way a target can fail the handshake (unknown CA, wrong
//! name, no `h2`): the target is marked unhealthy and requests get 502 (gRPC:
//! UNAVAILABLE) with the cause in the gRPC message.

use std::net::SocketAddr;

use ballast_proxy::{HealthReason, HealthState};
use ballast_testkit::grpc::tonic::Code;
use ballast_testkit::grpc::{client, EchoRequest, GrpcBackend};
use ballast_testkit::pki::{path_str, Ca, Leaf, TempDir};
use ballast_testkit::tls::tls_front;
use ballast_testkit::{backends, eventually, Ballast, Client, Setup};

use crate::SOON;

/// The name on the targets' certificates.
const NAME: &str = "grpc.internal";

/// A CA, its file, and a leaf it signed for `NAME`.
struct Pki {
    dir: TempDir,
    ca: Ca,
    leaf: Leaf,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let ca = Ca::new("Target CA");
        let leaf = ca.server(&[NAME]);
        Pki {
            dir: TempDir::new(tag),
            ca,
            leaf,
        }
    }

    /// The path of `ca`'s certificate written to this test's directory.
    fn ca_file(&self, ca: &Ca, name: &str) -> String {
        path_str(&self.dir.write(name, &ca.cert_pem))
    }

    /// `tls = { ca = <this CA>, server_name = .. }`.
    fn tls(&self, server_name: &str) -> String {
        let ca = self.ca_file(&self.ca, "target-ca.pem");
        format!("tls = {{ ca = {ca:?}, server_name = {server_name:?} }}\n")
    }
}

/// A ballast whose group `web` is `http2` with gRPC health checks, these targets
/// and this `tls` line. Checks are spaced for handshakes on a loaded machine.
async fn grpc_ballast(targets: &[SocketAddr], tls: &str) -> Ballast {
    let mut setup = Setup::with_targets(targets).grpc();
    setup.group_extra.push_str(tls);
    setup.interval = "500ms";
    setup.hc_timeout = "400ms";
    Ballast::start(&setup).await
}

fn health(ballast: &Ballast, i: usize) -> (HealthState, HealthReason) {
    ballast
        .server
        .snapshot()
        .group("web")
        .expect("group")
        .targets[i]
        .health()
}

fn h2_connections(ballast: &Ballast, i: usize) -> usize {
    ballast
        .server
        .snapshot()
        .group("web")
        .expect("group")
        .targets[i]
        .h2
        .connection_count()
}

async fn wait_health(ballast: &Ballast, i: usize, want: (HealthState, HealthReason)) {
    eventually(&format!("target {i} {want:?}"), SOON, || async {
        health(ballast, i) == want
    })
    .await;
}

fn req(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_string(),
        ..Default::default()
    }
}

#[tokio::test]
async fn grpc_calls_and_grpc_health_checks_go_over_tls_on_pooled_connections() {
    let pki = Pki::new("h2tls-grpc");
    let a = GrpcBackend::start_tls(&pki.leaf, &[b"h2"]).await;
    let b = GrpcBackend::start_tls(&pki.leaf, &[b"h2"]).await;
    let ballast = grpc_ballast(&[a.addr, b.addr], &pki.tls(NAME)).await;
    ballast.all_healthy().await;

    let mut c = client(&ballast.url("")).await;
    for i in 0..10 {
        let reply = c
            .unary(req(&format!("hello-{i}")))
            .await
            .expect("unary call over TLS")
            .into_inner();
        assert_eq!(reply.message, format!("hello-{i}"));
        assert!(reply.peer.starts_with("127.0.0.1:"), "{}", reply.peer);
    }
    // Ten sequential calls, alternating: one TLS connection per target, reused.
    assert_eq!(
        (h2_connections(&ballast, 0), h2_connections(&ballast, 1)),
        (1, 1)
    );
    let status = c.unary(req("fail")).await.expect_err("fails");
    assert_eq!(status.code(), Code::PermissionDenied);

    // NOT_SERVING, answered over TLS, marks the target down; the other serves.
    b.set_serving(false).await;
    wait_health(
        &ballast,
        1,
        (HealthState::Unhealthy, HealthReason::ResponseCodeMismatch),
    )
    .await;
    assert_eq!(health(&ballast, 0).0, HealthState::Healthy);
    for i in 0..4 {
        let reply = c.unary(req(&format!("still-{i}"))).await.expect("call");
        assert_eq!(reply.into_inner().message, format!("still-{i}"));
    }
    b.set_serving(true).await;
    wait_health(&ballast, 1, (HealthState::Healthy, HealthReason::None)).await;
}

#[tokio::test]
async fn an_http2_target_over_tls_with_a_client_certificate_and_an_http_check() {
    let bs = backends(1).await;
    let pki = Pki::new("h2tls-http");
    let client_ca = Ca::new("Ballast Client CA");
    // The front requires ballast's client certificate and speaks h2 only; the
    // backend behind it serves h2c.
    let front = tls_front(&pki.leaf, Some(&client_ca), &[b"h2"], bs[0].addr()).await;
    let client_cert = client_ca
        .client("ballast", 9)
        .toml(&pki.dir, "ballast-client");
    let ca = pki.ca_file(&pki.ca, "target-ca.pem");
    let mut setup = Setup::new(&bs);
    setup.targets = vec![(front.addr, 1)];
    setup.interval = "500ms";
    setup.hc_timeout = "400ms";
    setup.group_extra = format!(
        "protocol = \"http2\"\ntls = {{ ca = {ca:?}, server_name = {NAME:?}, client_cert = {client_cert} }}\n"
    );
    let ballast = Ballast::start(&setup).await;
    // The HTTP check's GET went over HTTP/2 and TLS.
    ballast.all_healthy().await;
    assert!(front.handshakes.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    for client in [Client::http1(), Client::h2c()] {
        for i in 0..3 {
            let r = client
                .get(&ballast.url(&format!("/over-tls/{i}")))
                .await
                .expect("response");
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["path"], format!("/over-tls/{i}"));
        }
    }
    assert_eq!(h2_connections(&ballast, 0), 1);
}

#[tokio::test]
async fn verification_failures_are_named_and_insecure_skip_verify_connects() {
    let pki = Pki::new("h2tls-verify");
    let target = GrpcBackend::start_tls(&pki.leaf, &[b"h2"]).await;
    let rogue = pki.ca_file(&Ca::new("Rogue CA"), "rogue-ca.pem");
    let cases = [
        (
            "unknown CA",
            format!("tls = {{ ca = {rogue:?}, server_name = {NAME:?} }}\n"),
        ),
        ("wrong name", pki.tls("other.internal")),
    ];
    for (case, tls) in cases {
        let ballast = grpc_ballast(&[target.addr], &tls).await;
        wait_health(
            &ballast,
            0,
            (HealthState::Unhealthy, HealthReason::FailedHealthChecks),
        )
        .await;
        // The group fails open to its one target; the handshake fails again.
        let mut c = client(&ballast.url("")).await;
        let status = c.unary(req("x")).await.expect_err(case);
        assert_eq!(status.code(), Code::Unavailable, "{case}: {status:?}");
        for needle in [
            "target_connect_failed",
            "TLS handshake failed",
            "invalid peer certificate",
        ] {
            assert!(
                status.message().contains(needle),
                "{case}: {needle:?} not in {:?}",
                status.message()
            );
        }
        let r = Client::http1().get(&ballast.url("/")).await.expect("reply");
        assert_eq!(r.status, 502, "{case}: {}", r.text());
        assert!(r.text().contains("target_connect_failed"), "{}", r.text());
    }

    // Without verification the same target is reached (SNI: its IP address).
    let ballast = grpc_ballast(&[target.addr], "tls = { insecure_skip_verify = true }\n").await;
    ballast.all_healthy().await;
    let mut c = client(&ballast.url("")).await;
    let reply = c.unary(req("unverified")).await.expect("call").into_inner();
    assert_eq!(reply.message, "unverified");
}

#[tokio::test]
async fn a_target_that_does_not_agree_h2_is_refused_with_the_reason() {
    let pki = Pki::new("h2tls-alpn");
    let bs = backends(1).await;
    // One offers http/1.1 only (rustls refuses "h2" with an alert); one offers no
    // ALPN at all and completes the handshake without choosing.
    let http11 = GrpcBackend::start_tls(&pki.leaf, &[b"http/1.1"]).await;
    let silent = tls_front(&pki.leaf, None, &[], bs[0].addr()).await;
    let cases = [
        (http11.addr, "refused ALPN \"h2\""),
        (silent.addr, "chose no protocol"),
    ];
    for (addr, needle) in cases {
        let ballast = grpc_ballast(&[addr], &pki.tls(NAME)).await;
        wait_health(
            &ballast,
            0,
            (HealthState::Unhealthy, HealthReason::FailedHealthChecks),
        )
        .await;
        let mut c = client(&ballast.url("")).await;
        let status = c.unary(req("x")).await.expect_err("no h2");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains(needle) && status.message().contains("TLS"),
            "{needle:?} not in {:?}",
            status.message()
        );
    }
}

/// Not HTTP/2, but the same hop: an upgrade to an `http1` group with `tls` goes
/// over TLS on its dedicated connection, as its pooled requests do.
#[tokio::test]
async fn websocket_upgrades_to_a_tls_group_go_over_tls() {
    use ballast_testkit::ws::tokio_tungstenite::{connect_async, tungstenite::Message};
    use futures_util::{SinkExt, StreamExt};

    let pki = Pki::new("h2tls-ws");
    let ws = ballast_testkit::ws::WsBackend::start().await;
    let front = tls_front(&pki.leaf, None, &[b"http/1.1"], ws.addr).await;
    let mut setup = Setup::with_targets(&[front.addr]);
    setup.group_extra = pki.tls(NAME);
    let ballast = Ballast::start(&setup).await;
    let (mut socket, response) = connect_async(format!("ws://{}/chat", ballast.addr))
        .await
        .expect("upgrade through ballast");
    assert_eq!(response.status(), 101);
    socket.send(Message::text("over tls")).await.expect("send");
    let echoed = tokio::time::timeout(SOON, socket.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("message");
    assert_eq!(echoed, Message::text("over tls"));
    assert!(front.handshakes.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

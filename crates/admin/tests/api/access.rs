//! Who may call what (issue 25): the read token on reads, `/metrics` open to
//! loopback clients only, the write token on writes; the admin listener over TLS
//! and mutual TLS on a real socket; `[admin]` out of the API's reach.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use ballast_admin::{AdminState, Control, Token, Tokens};
use ballast_config::AdminTls;
use ballast_testkit::pki::{Ca, TempDir};
use ballast_testkit::tls::TlsClient;
use ballast_testkit::{backends, Ballast, Setup};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Admin;

const READS: &[&str] = &[
    "/api/v1/config",
    "/api/v1/target-groups",
    "/api/v1/target-groups/web",
    "/api/v1/target-groups/web/health",
    "/api/v1/target-groups/web/anomalies",
    "/api/v1/audit",
    "/api/v1/stats/history",
];

fn both_tokens() -> Tokens {
    Tokens {
        write: Some(Token::new("w-token")),
        read: Some(Token::new("r-token")),
    }
}

#[tokio::test]
async fn a_read_token_guards_reads_and_the_write_token_reads_too() {
    let bs = backends(1).await;
    let mut admin = Admin::start_tokens(&Setup::new(&bs), both_tokens(), None, None).await;
    admin.client = Some("10.1.2.3:40000".parse().expect("addr"));
    for path in READS {
        for (auth, expected) in [
            (None, StatusCode::UNAUTHORIZED),
            (Some("Bearer nope"), StatusCode::UNAUTHORIZED),
            (Some("r-token"), StatusCode::UNAUTHORIZED),
            (Some("Bearer r-token"), StatusCode::OK),
            (Some("Bearer w-token"), StatusCode::OK),
        ] {
            let (status, body) = admin.raw(Method::GET, path, None, auth).await;
            assert_eq!(status, expected, "GET {path} with {auth:?}: {body}");
        }
    }
    // The read token does not write.
    let (status, _) = admin
        .call_as(
            Method::POST,
            "/api/v1/target-groups/web/targets",
            Some(json!({"address": "127.0.0.1:9"})),
            Some("Bearer r-token"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(admin.ballast.server.snapshot().version, 1);
    // The dashboard page and the OpenAPI document hold no state: always open.
    for path in ["/", "/api/v1/openapi.json"] {
        let (status, _) = admin.raw(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn metrics_are_open_to_loopback_clients_and_need_a_token_from_others() {
    let bs = backends(1).await;
    let mut admin = Admin::start_tokens(&Setup::new(&bs), both_tokens(), None, None).await;
    let cases: [(&str, Option<&str>, StatusCode); 6] = [
        ("127.0.0.1:5000", None, StatusCode::OK),
        ("[::1]:5000", None, StatusCode::OK),
        ("[::ffff:127.0.0.1]:5000", None, StatusCode::OK),
        ("10.1.2.3:5000", None, StatusCode::UNAUTHORIZED),
        ("10.1.2.3:5000", Some("Bearer r-token"), StatusCode::OK),
        ("10.1.2.3:5000", Some("Bearer w-token"), StatusCode::OK),
    ];
    for (client, auth, expected) in cases {
        admin.client = Some(client.parse().expect("addr"));
        let (status, body) = admin.raw(Method::GET, "/metrics", None, auth).await;
        assert_eq!(status, expected, "{client} {auth:?}: {body}");
        if status == StatusCode::OK {
            assert!(body.contains("ballast_"), "{body}");
        }
    }
    // Loopback opens /metrics only: the JSON reads still need the token.
    admin.client = Some("127.0.0.1:5000".parse().expect("addr"));
    let (status, _) = admin.raw(Method::GET, "/api/v1/config", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Not from a socket at all: not loopback.
    admin.client = None;
    let (status, _) = admin.raw(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_api_cannot_change_the_admin_settings() {
    let bs = backends(1).await;
    let admin = Admin::start_with(&Setup::new(&bs), Some("w-token"), None).await;
    let mut config = admin.get("/api/v1/config").await["config"].clone();
    config["admin"]["bind"] = json!("0.0.0.0:9900");
    config["admin"]["allow_open_writes"] = json!(true);
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config.clone()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["details"][0]["path"], "admin", "{body}");
    assert_eq!(admin.ballast.server.snapshot().version, 1);
    // Left out, the running settings stay; sent unchanged, they are accepted.
    config.as_object_mut().expect("object").remove("admin");
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = admin.get("/api/v1/config").await;
    assert_eq!(got["config"]["admin"]["bind"], "127.0.0.1:0");
    let (status, body) = admin.call(Method::PUT, "/api/v1/config", Some(got)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A real admin listener over TLS, with `client_ca` when given.
async fn tls_admin(
    dir: &TempDir,
    ca: &Ca,
    client_ca: Option<&Ca>,
) -> (Ballast, Arc<Control>, SocketAddr) {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let (cert, key) = ca.server(&["localhost"]).write(dir, "admin");
    let client_ca = client_ca.map(|c| dir.write("client-ca.pem", &c.cert_pem));
    let tls = ballast_admin::tls_config(&AdminTls {
        cert,
        key,
        client_ca,
    })
    .expect("admin TLS");
    let control = Arc::new(Control::new(ballast.server.clone(), None));
    let state = AdminState {
        control: control.clone(),
        tokens: Tokens::write_only("w-token"),
    };
    let (addr, _task) = ballast_admin::serve(
        "127.0.0.1:0".parse().expect("addr"),
        Some(tls),
        state,
        std::future::pending(),
    )
    .await
    .expect("serve");
    (ballast, control, addr)
}

/// One request over a fresh TLS connection.
async fn https(
    client: &TlsClient,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> std::io::Result<(u16, Value)> {
    let tls = client.connect(addr, "localhost").await?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default()));
    let response = send
        .send_request(req.body(body).map_err(std::io::Error::other)?)
        .await
        .map_err(std::io::Error::other)?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

#[tokio::test]
async fn over_tls_the_token_is_taken_and_plain_http_gets_nothing() {
    let dir = TempDir::new("admin-tls");
    let ca = Ca::new("admin CA");
    let (ballast, control, addr) = tls_admin(&dir, &ca, None).await;
    let client = TlsClient::new(&ca);
    let (status, body) = https(&client, addr, "GET", "/api/v1/config", None, None)
        .await
        .expect("https");
    assert_eq!((status, &body["version"]), (200, &json!(1)), "{body}");
    let register = json!({"address": "127.0.0.1:9", "weight": 2});
    let (status, _) = https(
        &client,
        addr,
        "POST",
        "/api/v1/target-groups/web/targets",
        None,
        Some(register.clone()),
    )
    .await
    .expect("https");
    assert_eq!(status, 401);
    let (status, body) = https(
        &client,
        addr,
        "POST",
        "/api/v1/target-groups/web/targets",
        Some("w-token"),
        Some(register),
    )
    .await
    .expect("https");
    assert_eq!(status, 201, "{body}");
    assert_eq!(ballast.server.snapshot().version, 2);
    // Both writes are audited with the client's address from the TLS socket.
    let entries = control.audit().last(10);
    assert_eq!(entries.len(), 2, "{entries:?}");
    for e in &entries {
        let client: SocketAddr = e.client.as_deref().expect("client").parse().expect("addr");
        assert!(client.ip().is_loopback(), "{e:?}");
    }
    assert_eq!(entries[0].token, "none");
    assert_eq!(entries[1].token, "write");

    // Plain HTTP to the TLS port: no HTTP answer, whatever it sends.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /api/v1/config HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut got),
    )
    .await
    .expect("the server closes the connection");
    assert!(read.is_ok() || got.is_empty(), "{read:?}");
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // A client that does not trust the admin CA does not connect.
    let other = TlsClient::new(&Ca::new("other CA"));
    assert!(other.connect(addr, "localhost").await.is_err());
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate_from_client_ca() {
    let dir = TempDir::new("admin-mtls");
    let ca = Ca::new("admin CA");
    let ops = Ca::new("ops CA");
    let (_ballast, _control, addr) = tls_admin(&dir, &ca, Some(&ops)).await;
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    let anonymous = TlsClient::build(&ca, &versions, None, &[b"http/1.1"]);
    let stranger = Ca::new("stranger CA").client("mallory", 7);
    let foreign = TlsClient::build(&ca, &versions, Some(&stranger), &[b"http/1.1"]);
    let operator = ops.client("alice", 8);
    let trusted = TlsClient::build(&ca, &versions, Some(&operator), &[b"http/1.1"]);
    for (who, client) in [("no certificate", &anonymous), ("a foreign CA", &foreign)] {
        let r = https(client, addr, "GET", "/api/v1/config", None, None).await;
        assert!(r.is_err(), "a client with {who} was served: {r:?}");
    }
    let (status, _) = https(&trusted, addr, "GET", "/api/v1/config", None, None)
        .await
        .expect("a client certificate from client_ca is accepted");
    assert_eq!(status, 200);
}

/// A client that sends part of a request head and then nothing (Slowloris) is
/// closed after `HEADER_READ_TIMEOUT`, not held forever; a whole request on the
/// same listener is still answered meanwhile.
#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let control = Arc::new(Control::new(ballast.server.clone(), None));
    let state = AdminState {
        control,
        tokens: Tokens::write_only("w-token"),
    };
    let (addr, _task) = ballast_admin::serve(
        "127.0.0.1:0".parse().expect("addr"),
        None,
        state,
        std::future::pending(),
    )
    .await
    .expect("serve");
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /api/v1/config HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = std::time::Instant::now();

    let mut whole = tokio::net::TcpStream::connect(addr).await.expect("connect");
    whole
        .write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    whole.read_to_end(&mut answer).await.expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    let limit = ballast_admin::HEADER_READ_TIMEOUT + std::time::Duration::from_secs(10);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(limit, slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the slow head was still open after {limit:?}");
    assert!(
        started.elapsed()
            >= ballast_admin::HEADER_READ_TIMEOUT - std::time::Duration::from_millis(500),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
}

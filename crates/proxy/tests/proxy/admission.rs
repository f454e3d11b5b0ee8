//! Admission at accept (issue 21 §3): a listener's `allow`/`deny` lists, PROXY
//! protocol headers from trusted sources (v1, v2, before TLS), and
//! `max_connections` / `max_connections_per_client`. Refused connections are
//! closed without a byte and counted in `ballast_rejected_requests_total`.

use std::net::SocketAddr;
use std::path::PathBuf;

use ballast_testkit::pki::{Ca, TempDir};
use ballast_testkit::raw::read_response;
use ballast_testkit::recorder::Recorder;
use ballast_testkit::tls::{HttpsConn, TlsClient};
use ballast_testkit::{eventually, Ballast, Client, Setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::retries::metric;
use crate::SOON;

const REQUEST: &[u8] = b"GET /admitted HTTP/1.1\r\nHost: h\r\n\r\n";

struct Rig {
    ballast: Ballast,
    recorder: Recorder,
    log: PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A ballast in front of a recording target, with these listener lines.
async fn start(listener: &str, test: &str) -> Rig {
    let recorder = Recorder::start().await;
    let log = std::env::temp_dir().join(format!(
        "ballast-admission-{}-{test}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let mut setup = Setup::with_targets(&[recorder.addr]);
    setup.listener_extra = listener.to_string();
    setup.access_log = log.display().to_string();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    Rig {
        ballast,
        recorder,
        log,
    }
}

impl Rig {
    fn rejected(&self, reason: &str) -> u64 {
        metric(
            &self.ballast,
            &format!("ballast_rejected_requests_total{{listener=\"public\",reason=\"{reason}\"}}"),
        )
    }

    fn open(&self) -> u64 {
        metric(
            &self.ballast,
            "ballast_active_connections{listener=\"public\"}",
        )
    }

    /// The access log's lines, once it has `n`.
    async fn log_lines(&self, n: usize) -> Vec<serde_json::Value> {
        let read = || std::fs::read_to_string(&self.log).unwrap_or_default();
        eventually(&format!("{n} access-log lines"), SOON, || async {
            read().lines().count() >= n
        })
        .await;
        read()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }

    /// Send `bytes` on a new connection and expect it closed without a byte
    /// of response.
    async fn refused(&self, bytes: &[u8]) {
        let mut conn = TcpStream::connect(self.ballast.addr)
            .await
            .expect("connect");
        // The write may fail once ballast has closed: what counts is the read.
        let _ = conn.write_all(bytes).await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(SOON, conn.read_to_end(&mut got)).await;
        let read = read.expect("closed in time");
        assert!(
            read.is_err() || got.is_empty(),
            "answered: {:?}",
            String::from_utf8_lossy(&got)
        );
    }

    /// Send `bytes` then a request on a new connection; the response.
    async fn served(&self, preface: &[u8]) -> (u16, TcpStream) {
        let mut conn = TcpStream::connect(self.ballast.addr)
            .await
            .expect("connect");
        conn.write_all(&[preface, REQUEST].concat())
            .await
            .expect("send");
        let mut buf = Vec::new();
        let response = read_response(&mut conn, &mut buf, false)
            .await
            .expect("a response");
        (response.status, conn)
    }
}

fn v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 51234 80\r\n").into_bytes()
}

fn v2(client: [u8; 4]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&51234u16.to_be_bytes());
    h.extend_from_slice(&80u16.to_be_bytes());
    h
}

#[tokio::test]
async fn a_denied_client_is_closed_without_a_response_and_counted() {
    let rig = start("deny = [\"127.0.0.1/32\"]", "deny").await;
    rig.refused(REQUEST).await;
    rig.refused(REQUEST).await;
    assert_eq!(rig.rejected("denied"), 2);
    assert_eq!(rig.open(), 0, "refused connections are not open ones");
    assert!(rig.recorder.requests().is_empty());
}

#[tokio::test]
async fn an_allow_list_admits_only_what_it_holds() {
    let rig = start("allow = [\"10.0.0.0/8\"]", "allow-other").await;
    rig.refused(REQUEST).await;
    assert_eq!(rig.rejected("denied"), 1);
    let rig = start("allow = [\"127.0.0.0/8\", \"::1\"]", "allow-loopback").await;
    let r = Client::http1()
        .get(&rig.ballast.url("/"))
        .await
        .expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(rig.rejected("denied"), 0);
}

const TRUSTED_LOOPBACK: &str = "proxy_protocol = { trusted = [\"127.0.0.1/32\"] }";

#[tokio::test]
async fn the_client_of_a_trusted_header_is_the_one_forwarded_and_logged() {
    let rig = start(TRUSTED_LOOPBACK, "trusted").await;
    for header in [v1("203.0.113.7"), v2([203, 0, 113, 7])] {
        let (status, _conn) = rig.served(&header).await;
        assert_eq!(status, 200);
    }
    let seen = rig.recorder.requests_to("/admitted");
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert_eq!(
            r.field("x-forwarded-for"),
            Some("203.0.113.7"),
            "{}",
            r.head
        );
    }
    let lines = rig.log_lines(2).await;
    for l in &lines {
        assert_eq!(l["client"], "203.0.113.7:51234", "{l}");
    }
    assert_eq!(rig.rejected("denied"), 0);
}

#[tokio::test]
async fn allow_and_deny_judge_the_address_a_trusted_header_carries() {
    let lines = format!("{TRUSTED_LOOPBACK}\ndeny = [\"203.0.113.0/24\"]");
    let rig = start(&lines, "trusted-deny").await;
    rig.refused(&[v1("203.0.113.7"), REQUEST.to_vec()].concat())
        .await;
    rig.refused(&[v2([203, 0, 113, 9]), REQUEST.to_vec()].concat())
        .await;
    assert_eq!(rig.rejected("denied"), 2);
    // Another client behind the same balancer is served.
    let (status, _conn) = rig.served(&v1("198.51.100.1")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_trusted_source_must_send_a_well_formed_header() {
    let rig = start(TRUSTED_LOOPBACK, "malformed").await;
    // No header at all, a broken v1, an oversized v1, a v2 of version 3.
    let mut v3 = v2([203, 0, 113, 7]);
    v3[12] = 0x31;
    let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(120)).into_bytes();
    let cases = [
        REQUEST.to_vec(),
        b"PROXY TCP4 203.0.113.7 nowhere 1 2\r\n".to_vec(),
        long,
        v3,
    ];
    for (i, case) in cases.iter().enumerate() {
        rig.refused(&[case.as_slice(), REQUEST].concat()).await;
        assert_eq!(rig.rejected("denied"), i as u64 + 1);
    }
    assert!(rig.recorder.requests().is_empty());
}

#[tokio::test]
async fn a_header_from_an_untrusted_source_is_refused_and_a_plain_client_served() {
    let rig = start(
        "proxy_protocol = { trusted = [\"10.0.0.0/8\"] }",
        "untrusted",
    )
    .await;
    rig.refused(&[v1("203.0.113.7"), REQUEST.to_vec()].concat())
        .await;
    rig.refused(&[v2([203, 0, 113, 7]), REQUEST.to_vec()].concat())
        .await;
    assert_eq!(rig.rejected("denied"), 2);
    let (status, _conn) = rig.served(b"").await;
    assert_eq!(status, 200);
    let seen = rig.recorder.requests_to("/admitted");
    assert_eq!(seen[0].field("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn on_https_the_header_comes_before_the_tls_handshake() {
    let recorder = Recorder::start().await;
    let (dir, ca) = (TempDir::new("proxy-tls"), Ca::new("Test CA"));
    let leaf = ca.server(&["api.example.com"]);
    let mut setup = Setup::with_targets(&[recorder.addr]);
    setup.listener_extra = format!(
        "protocol = \"https\"\ncertificates = [{}]\n{TRUSTED_LOOPBACK}",
        leaf.toml(&dir, "api")
    );
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    let client = TlsClient::new(&ca);
    for header in [v1("203.0.113.7"), v2([203, 0, 113, 7])] {
        let mut tcp = TcpStream::connect(ballast.addr).await.expect("connect");
        tcp.write_all(&header).await.expect("header");
        let tls = client
            .connect_over(tcp, "api.example.com")
            .await
            .expect("handshake");
        let mut conn = HttpsConn::new(tls).await;
        let reply = conn.get("/tls", &[]).await.expect("request");
        assert_eq!(reply.status, 200);
    }
    let seen = recorder.requests_to("/tls");
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert_eq!(r.field("x-forwarded-for"), Some("203.0.113.7"));
    }
    // Without the header, the TLS hello is not one: refused.
    assert!(client
        .connect(ballast.addr, "api.example.com")
        .await
        .is_err());
    let denied = metric(
        &ballast,
        "ballast_rejected_requests_total{listener=\"public\",reason=\"denied\"}",
    );
    assert_eq!(denied, 1);
}

/// Open a keep-alive connection and have one request served on it.
async fn keep_alive(addr: SocketAddr) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(REQUEST).await.expect("send");
    let mut buf = Vec::new();
    let r = read_response(&mut conn, &mut buf, false)
        .await
        .expect("response");
    assert_eq!(r.status, 200);
    conn
}

#[tokio::test]
async fn beyond_max_connections_a_connection_waits_until_one_closes() {
    let rig = start("max_connections = 2", "max").await;
    let mut first = keep_alive(rig.ballast.addr).await;
    let mut second = keep_alive(rig.ballast.addr).await;
    // Idle connections park (their task ends) and still hold their seat.
    eventually("both connections parked", SOON, || async {
        metric(
            &rig.ballast,
            "ballast_parked_connections_total{listener=\"public\"}",
        ) >= 2
    })
    .await;
    let mut third = TcpStream::connect(rig.ballast.addr)
        .await
        .expect("the kernel completes the handshake");
    third
        .write_all(b"GET /third HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("send");
    // Ballast keeps serving the two it holds, the third meanwhile unanswered.
    for conn in [&mut first, &mut second] {
        for _ in 0..3 {
            conn.write_all(REQUEST).await.expect("send");
            let mut buf = Vec::new();
            let r = read_response(conn, &mut buf, false).await.expect("reply");
            assert_eq!(r.status, 200);
        }
    }
    assert!(rig.recorder.requests_to("/third").is_empty());
    let mut probe = [0u8; 1];
    let waiting = third.try_read(&mut probe);
    assert!(
        matches!(&waiting, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the third connection was answered: {waiting:?}"
    );
    assert_eq!(rig.rejected("connection_limit"), 0, "waiting, not refused");
    drop(first);
    let mut buf = Vec::new();
    let r = tokio::time::timeout(SOON, read_response(&mut third, &mut buf, false))
        .await
        .expect("served once a seat is free")
        .expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(rig.recorder.requests_to("/third").len(), 1);
}

#[tokio::test]
async fn beyond_max_connections_per_client_a_connection_is_closed_and_counted() {
    let rig = start("max_connections_per_client = 2", "per-client").await;
    let first = keep_alive(rig.ballast.addr).await;
    let _second = keep_alive(rig.ballast.addr).await;
    rig.refused(REQUEST).await;
    assert_eq!(rig.rejected("connection_limit"), 1);
    assert_eq!(rig.open(), 2);
    drop(first);
    eventually("the first connection closed", SOON, || async {
        rig.open() == 1
    })
    .await;
    let _third = keep_alive(rig.ballast.addr).await;
    assert_eq!(rig.rejected("connection_limit"), 1);
}

#[tokio::test]
async fn per_client_limits_count_the_address_a_trusted_header_carries() {
    let lines = format!("{TRUSTED_LOOPBACK}\nmax_connections_per_client = 1");
    let rig = start(&lines, "per-client-proxied").await;
    let (status, _a) = rig.served(&v1("203.0.113.7")).await;
    assert_eq!(status, 200);
    // Another client through the same balancer has a count of its own.
    let (status, _b) = rig.served(&v1("203.0.113.8")).await;
    assert_eq!(status, 200);
    rig.refused(&[v1("203.0.113.7"), REQUEST.to_vec()].concat())
        .await;
    assert_eq!(rig.rejected("connection_limit"), 1);
}

//! A client's mistakes are the client's: a malformed request body, a client that
//! goes away mid-body, an HTTP/2 stream that breaks its own `content-length` or is
//! reset, each is a 400 with a reason that says so (or no response at all when the
//! client is gone), never a 502, and never counts against the target, towards
//! HTTP/1.1 and HTTP/2 targets alike.
//!
//! Each failure happens while ballast streams the body to the target: the tests
//! wait until the target has the request before breaking the body, so the failure
//! meets a request in flight, where it used to be taken for the target's.

use std::path::PathBuf;

use bytes::Bytes;
use http::Request;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use ballast_testkit::raw::read_response;
use ballast_testkit::{backend, eventually, BackendHandle, Ballast, Client, Setup};

use crate::SOON;

/// A ballast in front of one backend, its group speaking `protocol` to it.
struct Rig {
    ballast: Ballast,
    backend: BackendHandle,
    log: PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One healthy target, health-checked once at start only (the next check is a
/// minute away): whatever its health is later, the data path made it so.
async fn start(protocol: &str, test: &str) -> Rig {
    let backend = backend("b0").await;
    let log = std::env::temp_dir().join(format!(
        "ballast-client-errors-{}-{test}-{protocol}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let mut setup = Setup::new(std::slice::from_ref(&backend));
    setup.interval = "60s";
    setup.hc_timeout = "1s";
    setup.group_extra = format!("protocol = \"{protocol}\"\n");
    setup.access_log = log.display().to_string();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    Rig {
        ballast,
        backend,
        log,
    }
}

impl Rig {
    fn metrics(&self) -> String {
        self.ballast.server.metrics_text()
    }

    /// `ballast_requests_total` of the listener for `code`.
    fn answered(&self, code: u16) -> u64 {
        let name = format!("ballast_requests_total{{listener=\"public\",code=\"{code}\"}} ");
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&name)?.parse().ok())
            .unwrap_or(0)
    }

    async fn wait_answered(&self, code: u16, n: u64) {
        eventually(&format!("{n} requests answered {code}"), SOON, || async {
            self.answered(code) >= n
        })
        .await;
    }

    async fn wait_target_has(&self, requests: u64) {
        eventually("the request reached the target", SOON, || async {
            self.backend.requests() >= requests
        })
        .await;
    }

    /// Nothing was counted against the target: no 5xx from it, no connection
    /// error, and it is still healthy; and ballast answered no 502 at all.
    fn assert_target_blameless(&self) {
        let text = self.metrics();
        assert_eq!(self.answered(502), 0, "{text}");
        for line in text.lines() {
            if line.starts_with("ballast_target_requests_total{") {
                assert!(!line.contains("code=\"5"), "{line}\n{text}");
            }
            if line.starts_with("ballast_target_connection_errors_total{") {
                assert!(line.ends_with(" 0"), "{line}\n{text}");
            }
        }
        let snapshot = self.ballast.server.snapshot();
        let group = snapshot.group("web").expect("group web");
        assert!(
            group.targets.iter().all(|t| t.is_healthy()),
            "still healthy"
        );
    }

    /// The next request is served by the same target.
    async fn assert_next_request_works(&self, client: Client) {
        let r = client
            .get(&self.ballast.url("/after"))
            .await
            .expect("request");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.backend(), "b0");
    }

    /// The access log's error reasons, in order, once there are `n` lines.
    async fn reasons(&self, n: usize) -> Vec<String> {
        let read = || std::fs::read_to_string(&self.log).unwrap_or_default();
        eventually(&format!("{n} access-log lines"), SOON, || async {
            read().lines().count() >= n
        })
        .await;
        read()
            .lines()
            .map(|l| {
                let line: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                format!("{} {}", line["status"], line["error_reason"])
            })
            .collect()
    }
}

#[tokio::test]
async fn a_malformed_chunked_body_is_a_400_client_body_invalid_not_a_502() {
    for protocol in ["http1", "http2"] {
        let rig = start(protocol, "chunk").await;
        let mut s = TcpStream::connect(rig.ballast.addr).await.expect("connect");
        s.write_all(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        )
        .await
        .expect("write");
        rig.wait_target_has(1).await;
        // Not a chunk size.
        s.write_all(b"zz\r\nmore\r\n").await.expect("write");
        let mut buf = Vec::new();
        let r = read_response(&mut s, &mut buf, false)
            .await
            .unwrap_or_else(|| panic!("{protocol}: no response"));
        assert_eq!(r.status, 400, "{protocol}");
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            "400 Bad Request: client_body_invalid\n",
            "{protocol}"
        );
        assert_eq!(rig.answered(400), 1, "{protocol}");
        rig.assert_target_blameless();
        assert_eq!(
            rig.reasons(1).await,
            ["400 \"client_body_invalid\""],
            "{protocol}"
        );
        rig.assert_next_request_works(Client::http1()).await;
    }
}

#[tokio::test]
async fn a_client_that_closes_mid_body_is_a_400_client_closed_not_a_502() {
    for protocol in ["http1", "http2"] {
        let rig = start(protocol, "close").await;
        let mut s = TcpStream::connect(rig.ballast.addr).await.expect("connect");
        s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            .await
            .expect("write");
        s.write_all(&[7u8; 1000]).await.expect("write");
        rig.wait_target_has(1).await;
        drop(s);
        rig.wait_answered(400, 1).await;
        rig.assert_target_blameless();
        assert_eq!(
            rig.reasons(1).await,
            ["400 \"client_closed\""],
            "{protocol}"
        );
        if protocol == "http1" {
            // The target's connection, left with half a body on it, was closed,
            // not pooled (the health check's own connection closes too).
            eventually("the target's connection closed", SOON, || async {
                rig.backend.open_connections() == 0
            })
            .await;
        }
        rig.assert_next_request_works(Client::http1()).await;
    }
}

/// An h2c client breaks its body two ways, towards an HTTP/1.1 target (where
/// ballast reads the client's stream in the request's own task, so it always
/// sees the failure before the client's stream is gone): DATA that ends short of
/// its `content-length`, and a stream reset mid-body.
#[tokio::test]
async fn an_http2_client_that_breaks_its_body_is_a_400_not_a_502() {
    let rig = start("http1", "h2").await;
    let tcp = TcpStream::connect(rig.ballast.addr).await.expect("connect");
    let (h2, connection) = h2::client::handshake(tcp).await.expect("h2c handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = || {
        Request::post(rig.ballast.url("/upload"))
            .header("content-length", "100000")
            .body(())
            .expect("request")
    };

    // DATA shorter than the content-length it announced.
    let mut h2 = h2.ready().await.expect("ready");
    let (response, mut body) = h2.send_request(request(), false).expect("send");
    body.send_data(Bytes::from_static(&[7u8; 1000]), false)
        .expect("data");
    rig.wait_target_has(1).await;
    body.send_data(Bytes::from_static(b"end"), true)
        .expect("data");
    rig.wait_answered(400, 1).await;
    // h2 resets the stream itself (PROTOCOL_ERROR); if an answer came, a 400.
    if let Ok(r) = response.await {
        assert_eq!(r.status(), 400);
    }

    // A stream reset in the middle of the body.
    let mut h2 = h2.ready().await.expect("ready");
    let (_response, mut body) = h2.send_request(request(), false).expect("send");
    body.send_data(Bytes::from_static(&[7u8; 1000]), false)
        .expect("data");
    rig.wait_target_has(2).await;
    body.send_reset(h2::Reason::CANCEL);
    rig.wait_answered(400, 2).await;

    rig.assert_target_blameless();
    let mut reasons = rig.reasons(2).await;
    reasons.sort();
    assert_eq!(
        reasons,
        ["400 \"client_body_invalid\"", "400 \"client_closed\""]
    );
    rig.assert_next_request_works(Client::h2c()).await;
}

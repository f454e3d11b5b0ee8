//! HTTP hygiene (README "HTTP hygiene"): what ballast does with requests that two
//! parsers could read two ways. Raw bytes on real sockets, a real ballast with
//! one listener per desync mitigation mode, and a target that records exactly
//! what it received (`testkit::recorder`).

use std::net::SocketAddr;

use ballast_testkit::raw::{read_response, RawResponse};
use ballast_testkit::recorder::Recorder;
use ballast_testkit::{eventually, Ballast, Setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::SOON;

const MODES: [&str; 3] = ["monitor", "defensive", "strictest"];

struct Rig {
    recorder: Recorder,
    ballast: Ballast,
    /// One listener per mode, in `MODES` order.
    listeners: Vec<SocketAddr>,
}

/// A ballast with a listener per desync mitigation mode (`public` is `monitor`),
/// all forwarding to one recording target; `extra` goes into every listener.
async fn rig(extra: &str) -> Rig {
    let recorder = Recorder::start().await;
    let mut setup = Setup::with_targets(&[recorder.addr]);
    setup.listener_extra = format!("desync_mitigation_mode = \"monitor\"\n{extra}\n");
    // Port 0 on other loopback addresses: two listeners may not name one bind.
    for (i, mode) in MODES[1..].iter().enumerate() {
        setup.extra.push_str(&format!(
            "[[listeners]]\nname = \"{mode}\"\nbind = \"127.0.0.{}:0\"\n\
             default_action = {{ type = \"forward\", target_group = \"web\" }}\n\
             desync_mitigation_mode = \"{mode}\"\n{extra}\n",
            i + 2
        ));
    }
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    let mut listeners = vec![ballast.addr];
    for mode in &MODES[1..] {
        listeners.push(ballast.server.local_addr(mode).await.expect("listener"));
    }
    Rig {
        recorder,
        ballast,
        listeners,
    }
}

/// What a client saw for one raw request.
struct Exchange {
    response: Option<RawResponse>,
    /// The connection ended after the response (checked by a second request
    /// when the response did not say it would close).
    closed: bool,
}

async fn exchange(addr: SocketAddr, raw: &[u8]) -> Exchange {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(raw).await.expect("write");
    let mut buf = Vec::new();
    let head_only = raw.starts_with(b"HEAD ");
    let response = tokio::time::timeout(SOON, read_response(&mut s, &mut buf, head_only))
        .await
        .expect("an answer in time");
    let closed = match &response {
        None => true,
        Some(r) if r.closes() => {
            let mut rest = Vec::new();
            let read = tokio::time::timeout(SOON, s.read_to_end(&mut rest)).await;
            assert!(read.is_ok(), "closed after `connection: close`");
            true
        }
        Some(_) => {
            // Still open: a second request on it is answered.
            let next = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
            if s.write_all(next).await.is_err() {
                true
            } else {
                let again = tokio::time::timeout(SOON, read_response(&mut s, &mut buf, false))
                    .await
                    .expect("an answer in time");
                again.is_none()
            }
        }
    };
    Exchange { response, closed }
}

/// What each mode must do with a request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// Forwarded; the client's connection stays open.
    Forward,
    /// Forwarded; the client's connection is closed after the response (hyper
    /// does that after a request with both `Transfer-Encoding` and
    /// `Content-Length`, in every mode).
    ForwardClientClosed,
    /// Forwarded, then the client's and the target's connection are closed.
    ForwardClose,
    /// `400` with this reason, not forwarded, the client's connection closed.
    Refuse(&'static str),
    /// The HTTP/1.1 parser answers this status itself; not forwarded, closed.
    Parser(u16),
}

/// A classified request: what each mode does with its class.
fn by_class(class: &str) -> [Want; 3] {
    use Want::*;
    match class {
        "compliant" => [Forward, Forward, Forward],
        "acceptable" => [Forward, Forward, Refuse("desync")],
        "ambiguous" => [Forward, ForwardClose, Refuse("desync")],
        "severe" => [Forward, Refuse("desync"), Refuse("desync")],
        "ambiguous, read by hyper" => [ForwardClientClosed, ForwardClose, Refuse("desync")],
        other => panic!("no class {other}"),
    }
}

/// Every case: a name, the raw request (`{P}` is replaced by a path of its own),
/// and its class, or what it gets in every mode.
fn cases() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        // compliant
        ("plain GET", "GET {P} HTTP/1.1\r\nHost: h\r\n\r\n", "compliant"),
        ("POST with a length", "POST {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", "compliant"),
        ("POST chunked", "POST {P} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "compliant"),
        ("HTTP/1.0 keep-alive", "GET {P} HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", "compliant"),
        ("tab inside a value", "GET {P} HTTP/1.1\r\nHost: h\r\nX-Tab: a\tb\r\n\r\n", "compliant"),
        ("encoded query", "GET {P}?q=%20x HTTP/1.1\r\nHost: h\r\n\r\n", "compliant"),
        ("absolute form", "GET http://h{P} HTTP/1.1\r\nHost: h\r\n\r\n", "compliant"),
        ("OPTIONS", "OPTIONS {P} HTTP/1.1\r\nHost: h\r\n\r\n", "compliant"),
        ("DELETE with length 0", "DELETE {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "compliant"),
        ("UTF-8 in a value", "GET {P} HTTP/1.1\r\nHost: h\r\nX-Name: caf\u{e9}\r\n\r\n", "compliant"),
        ("bare LF line ends", "GET {P} HTTP/1.1\nHost: h\n\n", "compliant"),
        // acceptable
        ("GET with length 0", "GET {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "acceptable"),
        ("GET with length 00", "GET {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 00\r\n\r\n", "acceptable"),
        ("HEAD with length 0", "HEAD {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "acceptable"),
        // ambiguous
        ("GET with a body length", "GET {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", "ambiguous"),
        ("CL then TE", "POST {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "ambiguous, read by hyper"),
        ("TE then CL", "POST {P} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "ambiguous, read by hyper"),
        ("TE in capitals and CL", "POST {P} HTTP/1.1\r\nHost: h\r\nTRANSFER-ENCODING: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "ambiguous, read by hyper"),
        ("two equal lengths", "POST {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "ambiguous"),
        ("Transfer_Encoding", "POST {P} HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", "ambiguous"),
        ("Content_Length", "POST {P} HTTP/1.1\r\nHost: h\r\nContent_Length: 5\r\n\r\n", "ambiguous"),
        ("Transfer.Encoding", "POST {P} HTTP/1.1\r\nHost: h\r\nTransfer.Encoding: chunked\r\n\r\n", "ambiguous"),
        ("Content.Length", "POST {P} HTTP/1.1\r\nHost: h\r\nContent.Length: 0\r\n\r\n", "ambiguous"),
        ("GET chunked", "GET {P} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "ambiguous"),
        // severe
        ("chunked twice in one field", "POST {P} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", "severe"),
        ("chunked in two fields", "POST {P} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "severe"),
        // refused by the parser in every mode
        ("a length list", "POST {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello", "parser"),
        ("DEL in a value", "GET {P} HTTP/1.1\r\nHost: h\r\nX-Ctl: a\u{7f}b\r\n\r\n", "parser"),
        ("NUL in a value", "GET {P} HTTP/1.1\r\nHost: h\r\nX: a\u{0}b\r\n\r\n", "parser"),
        ("CR in a value", "GET {P} HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", "parser"),
        ("control byte in a value", "GET {P} HTTP/1.1\r\nHost: h\r\nX: a\u{1}b\r\n\r\n", "parser"),
        ("line fold", "GET {P} HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", "parser"),
        ("space before the colon", "POST {P} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", "parser"),
        ("empty field name", "GET {P} HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n", "parser"),
        ("two different lengths", "POST {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "parser"),
        ("signed length", "POST {P} HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello", "parser"),
        ("length not a number", "POST {P} HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\nhello", "parser"),
        ("TE not ending in chunked", "POST {P} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", "parser"),
        ("TE xchunked", "POST {P} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", "parser"),
        ("TE chunked then identity", "POST {P} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n", "parser"),
        ("TE on HTTP/1.0", "POST {P} HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "parser"),
        ("bad method", "G(T {P} HTTP/1.1\r\nHost: h\r\n\r\n", "parser"),
        ("space in the target", "GET {P} x HTTP/1.1\r\nHost: h\r\n\r\n", "parser"),
        ("DEL in the target", "GET {P}\u{7f} HTTP/1.1\r\nHost: h\r\n\r\n", "parser"),
        // the host and the path, refused in every mode
        ("two Hosts", "GET {P} HTTP/1.1\r\nHost: h\r\nHost: admin.example\r\n\r\n", "duplicate_host"),
        ("no Host", "GET {P} HTTP/1.1\r\nX: y\r\n\r\n", "missing_host"),
        ("Host list", "GET {P} HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n", "invalid_host"),
        ("Host with userinfo", "GET {P} HTTP/1.1\r\nHost: user@a.example\r\n\r\n", "invalid_host"),
        ("Host with a space", "GET {P} HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid_host"),
        ("encoded NUL in the path", "GET {P}%00 HTTP/1.1\r\nHost: h\r\n\r\n", "invalid_path"),
    ]
}

fn wants(outcome: &str) -> [Want; 3] {
    match outcome {
        "parser" => [Want::Parser(400); 3],
        "compliant" | "acceptable" | "ambiguous" | "severe" | "ambiguous, read by hyper" => {
            by_class(outcome)
        }
        reason => [Want::Refuse(Box::leak(reason.to_string().into_boxed_str())); 3],
    }
}

/// The class an outcome names, if it names one.
fn by_class_name(outcome: &str) -> Option<&'static str> {
    match outcome {
        "compliant" => Some("compliant"),
        "acceptable" => Some("acceptable"),
        "ambiguous" | "ambiguous, read by hyper" => Some("ambiguous"),
        "severe" => Some("severe"),
        _ => None,
    }
}

fn desync_count(rig: &Rig, listener: &str, class: &str) -> u64 {
    let needle = format!(
        "ballast_desync_requests_total{{listener=\"{listener}\",classification=\"{class}\"}} "
    );
    let text = rig.ballast.server.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Every case in every mode: the status, whether the target got the request,
/// whether each connection was closed, and the class counted.
#[tokio::test]
async fn each_request_class_gets_what_its_mode_says() {
    let rig = rig("").await;
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (i, (name, raw, outcome)) in cases.iter().enumerate() {
        for (m, want) in wants(outcome).into_iter().enumerate() {
            let listener = if m == 0 { "public" } else { MODES[m] };
            let path = format!("/case{i}-{}", MODES[m]);
            let raw = raw.replace("{P}", &path);
            let counted_before =
                by_class_name(outcome).map_or(0, |class| desync_count(&rig, listener, class));
            let seen = exchange(rig.listeners[m], raw.as_bytes()).await;
            let reached = rig.recorder.requests_to(&path);
            let status = seen.response.as_ref().map(|r| r.status);
            let body = seen
                .response
                .as_ref()
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .unwrap_or_default();
            let ok = match want {
                Want::Forward => status == Some(200) && reached.len() == 1 && !seen.closed,
                Want::ForwardClientClosed => {
                    status == Some(200) && reached.len() == 1 && seen.closed
                }
                Want::ForwardClose => {
                    status == Some(200) && reached.len() == 1 && seen.closed && {
                        let conn = reached[0].conn;
                        let recorder = rig.recorder.clone();
                        eventually("the target's connection closed", SOON, || {
                            let recorder = recorder.clone();
                            async move { recorder.ended(conn) }
                        })
                        .await;
                        true
                    }
                }
                Want::Refuse(reason) => {
                    status == Some(400)
                        && (body == format!("400 Bad Request: {reason}\n")
                            || raw.starts_with("HEAD "))
                        && reached.is_empty()
                        && seen.closed
                }
                Want::Parser(code) => {
                    (status == Some(code) || status.is_none()) && reached.is_empty() && seen.closed
                }
            };
            let classified = by_class_name(outcome).is_some();
            let counted = by_class_name(outcome)
                .is_some_and(|class| desync_count(&rig, listener, class) > counted_before);
            if !ok || (classified && !counted) {
                failures.push(format!(
                    "{name} in {}: want {want:?}, got status {status:?} body {body:?}, \
                     reached {}, client closed {}, counted {counted}",
                    MODES[m],
                    reached.len(),
                    seen.closed
                ));
            }
        }
    }
    assert!(
        rig.recorder.errors().is_empty(),
        "{:?}",
        rig.recorder.errors()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One raw request on a connection of its own: the response, if any.
async fn one(addr: SocketAddr, raw: &str) -> Option<RawResponse> {
    exchange(addr, raw.as_bytes()).await.response
}

fn protect_admin() -> String {
    "[[listeners.rules]]\npriority = 1\nconditions = [{ host = \"admin.example\" }]\n\
     action = { type = \"fixed_response\", status = 403, body = \"forbidden\" }\n\
     [[listeners.rules]]\npriority = 2\nconditions = [{ path = \"/admin\" }]\n\
     action = { type = \"fixed_response\", status = 403, body = \"forbidden\" }\n"
        .to_string()
}

/// Defect 1: a second `Host` went past a host rule and reached the target with
/// both lines; now it is a 400 in every mode and nothing is forwarded.
#[tokio::test]
async fn a_second_host_cannot_reach_a_protected_host() {
    let rig = rig(&protect_admin()).await;
    for addr in &rig.listeners {
        let r = one(*addr, "GET /x HTTP/1.1\r\nHost: admin.example\r\n\r\n").await;
        assert_eq!(r.map(|r| r.status), Some(403));
        for raw in [
            "GET /dup1 HTTP/1.1\r\nHost: public.example\r\nHost: admin.example\r\n\r\n",
            "GET /dup2 HTTP/1.1\r\nHost: admin.example\r\nHost: public.example\r\n\r\n",
            "POST /dup3 HTTP/1.1\r\nHost: public.example\r\nHost: admin.example\r\nContent-Length: 1\r\n\r\nx",
        ] {
            let r = one(*addr, raw).await.expect("an answer");
            assert_eq!(r.status, 400, "{raw:?}");
            assert_eq!(String::from_utf8_lossy(&r.body), "400 Bad Request: duplicate_host\n");
        }
    }
    assert!(rig.recorder.requests_to("/dup").is_empty());
    // Counted as the client's: no 5xx anywhere.
    let text = rig.ballast.server.metrics_text();
    assert!(
        text.contains("ballast_requests_total{listener=\"public\",code=\"400\"} 3\n"),
        "{text}"
    );
}

/// Defect 2: no `Host`, or one that is not a valid authority, is a 400.
#[tokio::test]
async fn a_missing_or_invalid_host_is_a_400() {
    let rig = rig("").await;
    let addr = rig.ballast.addr;
    for (raw, reason) in [
        ("GET /h1 HTTP/1.1\r\n\r\n", "missing_host"),
        (
            "POST /h2 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
            "missing_host",
        ),
        (
            "GET /h3 HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n",
            "invalid_host",
        ),
        (
            "GET /h4 HTTP/1.1\r\nHost: u:p@a.example\r\n\r\n",
            "invalid_host",
        ),
        (
            "GET /h5 HTTP/1.1\r\nHost: a.example/x\r\n\r\n",
            "invalid_host",
        ),
        ("GET /h6 HTTP/1.1\r\nHost:\r\n\r\n", "invalid_host"),
    ] {
        let r = one(addr, raw).await.expect("an answer");
        assert_eq!(
            (r.status, String::from_utf8_lossy(&r.body).into_owned()),
            (400, format!("400 Bad Request: {reason}\n")),
            "{raw:?}"
        );
    }
    assert!(rig.recorder.requests_to("/h").is_empty());
    // HTTP/1.0 may go without; the host the target gets is the one given.
    let r = one(addr, "GET /ok10 HTTP/1.0\r\n\r\n")
        .await
        .expect("an answer");
    assert_eq!(r.status, 200);
    let r = one(addr, "GET /ok11 HTTP/1.1\r\nHost: a.example:8080\r\n\r\n").await;
    assert_eq!(r.map(|r| r.status), Some(200));
    let got = rig.recorder.requests_to("/ok11");
    assert_eq!(got[0].field("host"), Some("a.example:8080"));
    assert_eq!(got[0].fields("host"), 1);
}

/// Defect 5: rules see through path parameters, and an encoded NUL or control
/// character is refused.
#[tokio::test]
async fn path_rules_see_through_parameters_and_nul_is_refused() {
    let rig = rig(&protect_admin()).await;
    let addr = rig.ballast.addr;
    for path in [
        "/admin",
        "/admin;x",
        "/admin;jsessionid=1",
        "/ADMIN/..;/admin;",
        "/x/..;/admin;a=b",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n");
        let r = one(addr, &raw).await.expect("an answer");
        assert_eq!(r.status, 403, "{path}");
    }
    for path in ["/admin%00", "/admin%00.html", "/admin%0d%0a", "/admin%7F"] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n");
        let r = one(addr, &raw).await.expect("an answer");
        assert_eq!(
            (r.status, String::from_utf8_lossy(&r.body).into_owned()),
            (400, "400 Bad Request: invalid_path\n".to_string()),
            "{path}"
        );
    }
    assert!(rig
        .recorder
        .requests()
        .iter()
        .all(|r| !r.path().contains("admin")));
}

/// Defect 6: `max_request_head_size` bounds the head (431 beyond it), 64 KiB by
/// default; the bound is the listener's.
#[tokio::test]
async fn the_request_head_is_bounded_by_the_listener() {
    let big = |n: usize| {
        format!(
            "GET /big{n} HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
            "a".repeat(n)
        )
    };
    let rig = rig("").await;
    let r = one(rig.ballast.addr, &big(60 * 1024)).await;
    assert_eq!(r.map(|r| r.status), Some(200), "60 KiB fits the default");
    let r = one(rig.ballast.addr, &big(70 * 1024)).await;
    assert_eq!(r.map(|r| r.status), Some(431), "70 KiB does not");

    let rig = rig_with_head_size("16KiB").await;
    let r = one(rig.ballast.addr, &big(10 * 1024)).await;
    assert_eq!(r.map(|r| r.status), Some(200));
    let r = one(rig.ballast.addr, &big(20 * 1024)).await;
    assert_eq!(r.map(|r| r.status), Some(431));
    assert!(rig.recorder.requests_to("/big20480").is_empty());
}

async fn rig_with_head_size(size: &str) -> Rig {
    rig(&format!("max_request_head_size = \"{size}\"")).await
}

/// `drop_invalid_header_fields` drops `Transfer_Encoding` and the like before
/// the request is classified: forwarded without it, and not ambiguous.
#[tokio::test]
async fn invalid_header_fields_can_be_dropped() {
    let rig = rig("drop_invalid_header_fields = true").await;
    let raw = b"POST /drop HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nX.Dot: 1\r\nX-Ok: 2\r\nContent-Length: 5\r\n\r\nhello";
    for addr in &rig.listeners {
        let seen = exchange(*addr, raw).await;
        assert_eq!(seen.response.map(|r| r.status), Some(200));
        assert!(!seen.closed, "not ambiguous once dropped");
    }
    for got in rig.recorder.requests_to("/drop") {
        assert_eq!(got.fields("transfer_encoding"), 0, "{}", got.head);
        assert_eq!(got.fields("x.dot"), 0, "{}", got.head);
        assert_eq!(got.field("x-ok"), Some("2"));
        assert_eq!(got.body, b"hello");
    }
    assert_eq!(rig.recorder.requests_to("/drop").len(), 3);
}

/// The classification and its reason are in the access log.
#[tokio::test]
async fn the_classification_is_logged() {
    let recorder = Recorder::start().await;
    let log = std::env::temp_dir().join(format!("ballast-desync-log-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut setup = Setup::with_targets(&[recorder.addr]);
    setup.access_log = log.display().to_string();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    let seen = exchange(
        ballast.addr,
        b"GET /logged HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert!(seen.closed, "ambiguous in defensive mode");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually("an access-log line", SOON, || async {
        read().contains("/logged")
    })
    .await;
    let text = read();
    let line = text.lines().find(|l| l.contains("/logged")).expect("line");
    let line: serde_json::Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(line["desync_classification"], "ambiguous", "{line}");
    assert_eq!(
        line["desync_reason"], "undefined_content_length_semantics",
        "{line}"
    );
    assert_eq!(line["status"], 200);
    let _ = std::fs::remove_file(&log);
}

/// On HTTP/2 the same bound holds for the decoded header list.
#[tokio::test]
async fn the_http2_header_list_is_bounded_too() {
    let rig = rig_with_head_size("16KiB").await;
    let client = ballast_testkit::Client::h2c();
    let send = |path: &str, n: usize| {
        http::Request::get(rig.ballast.url(path))
            .header("x-big", "a".repeat(n))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request")
    };
    let fits = client
        .send(send("/h2fits", 8 * 1024))
        .await
        .expect("answered");
    assert_eq!(fits.status, 200);
    let big = client.send(send("/h2big", 20 * 1024)).await;
    assert!(
        big.as_ref().map_or(true, |r| r.status == 431),
        "{:?}",
        big.map(|r| r.status)
    );
    assert_eq!(rig.recorder.requests_to("/h2fits").len(), 1);
    assert!(rig.recorder.requests_to("/h2big").is_empty());
}

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

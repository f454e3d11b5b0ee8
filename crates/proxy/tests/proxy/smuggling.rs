//! Request smuggling probes at the wire level, in the style of the public CL.TE,
//! TE.CL and TE.TE probes, and HTTP/2 requests that would be unsafe once
//! downgraded to HTTP/1.1. The target records exactly what it received
//! (`testkit::recorder`): ballast never forwards a request whose framing the
//! target could read differently, and a smuggled request never reaches it.

use std::net::SocketAddr;

use ballast_testkit::recorder::Recorder;
use ballast_testkit::{Ballast, Setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::SOON;

const MODES: [&str; 3] = ["monitor", "defensive", "strictest"];

async fn start(mode: &str) -> (Recorder, Ballast) {
    let recorder = Recorder::start().await;
    let mut setup = Setup::with_targets(&[recorder.addr]);
    setup.listener_extra = format!("desync_mitigation_mode = \"{mode}\"\n");
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    (recorder, ballast)
}

/// Send `raw` and read until the connection closes (or `SOON`); a probe then
/// sends a follow-up on the same connection, if it is still open.
async fn probe(addr: SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(raw.as_bytes()).await.expect("write");
    // Whatever follows the probe on the same connection.
    let _ = s
        .write_all(b"GET /follow HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(SOON, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The classic probes. Each hides `GET /smuggled` where a parser that picks the
/// other framing would find a second request.
fn probes() -> Vec<(&'static str, String)> {
    let hidden = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    let chunk = format!("{:x}\r\n{hidden}\r\n0\r\n\r\n", hidden.len());
    vec![
        // CL.TE: a front end reading the length passes the whole; a back end
        // reading chunked ends at `0` and finds the hidden request.
        (
            "CL.TE",
            format!(
                "POST /probe HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}",
                5 + hidden.len()
            ),
        ),
        // TE.CL: a front end reading chunked passes the chunk; a back end
        // reading the length (4) finds the hidden request inside the chunk.
        (
            "TE.CL",
            format!(
                "POST /probe HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}"
            ),
        ),
        // TE.TE, obfuscated: one side honours the odd `Transfer-Encoding`.
        (
            "TE.TE identity",
            format!(
                "POST /probe HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n{chunk}"
            ),
        ),
        (
            "TE.TE space before colon",
            format!(
                "POST /probe HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n{chunk}"
            ),
        ),
        (
            "TE.TE underscore",
            format!(
                "POST /probe HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer_Encoding: chunked\r\n\r\n{chunk}"
            ),
        ),
        (
            "TE.TE xchunked",
            format!(
                "POST /probe HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n{chunk}"
            ),
        ),
        (
            "TE.TE tab",
            format!(
                "POST /probe HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding:\tchunked\r\n\r\n{chunk}"
            ),
        ),
        (
            "CL.CL",
            format!(
                "POST /probe HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: {}\r\n\r\n1234{hidden}",
                4 + hidden.len()
            ),
        ),
        (
            "TE in a folded line",
            format!(
                "POST /probe HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n{chunk}"
            ),
        ),
    ]
}

/// Requests a target answered, as ballast counted them.
fn forwarded(ballast: &Ballast) -> usize {
    ballast
        .server
        .metrics_text()
        .lines()
        .filter(|l| l.starts_with("ballast_target_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
        .sum()
}

/// In every mode the target reads every request ballast sends it one way (no
/// framing error; one length or chunked, never both) and sees exactly the
/// requests ballast sent: never one that ballast did not read as a request of its
/// own. In `defensive` and `strictest` mode no probe gets `/smuggled` to the
/// target at all: an ambiguous request closes the connection after it (or is
/// refused), so nothing that follows it on the connection is read. (In `monitor`
/// mode a probe whose odd field ballast does not read as framing, such as
/// `Transfer_Encoding`, is forwarded with ballast's own framing, and what follows
/// its body is the client's next request, for ballast and target alike.)
#[tokio::test]
async fn classic_probes_never_smuggle_a_request() {
    for mode in MODES {
        let (recorder, ballast) = start(mode).await;
        for (i, (name, raw)) in probes().into_iter().enumerate() {
            let path = format!("/probe{i}-");
            let answer = probe(ballast.addr, &raw.replace("/probe", &path)).await;
            let probes = recorder.requests_to(&path);
            assert!(
                probes.len() <= 1,
                "{mode} {name}: forwarded {} times",
                probes.len()
            );
            for p in &probes {
                let framing = p.fields("content-length") + p.fields("transfer-encoding");
                assert!(framing <= 1, "{mode} {name}: {}", p.head);
            }
            assert!(
                recorder.errors().is_empty(),
                "{mode} {name}: {:?}",
                recorder.errors()
            );
            assert_eq!(
                recorder.requests().len(),
                forwarded(&ballast),
                "{mode} {name}: the target saw a request ballast did not send; answer {answer:?}"
            );
            if mode != "monitor" {
                assert!(
                    recorder.requests_to("/smuggled").is_empty(),
                    "{mode} {name}: smuggled; answer {answer:?}"
                );
            }
            assert!(
                !answer.contains("HTTP/1.1 5"),
                "{mode} {name}: a 5xx for the client's mistake: {answer:?}"
            );
        }
    }
}

// ---- HTTP/2, written frame by frame ----

/// A header field as name and value bytes.
type Field<'a> = (&'a [u8], &'a [u8]);

/// An HPACK literal field, not indexed, no Huffman (RFC 7541 §6.2.2); names and
/// values under 127 bytes.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x10);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

const HEADERS: u8 = 0x1;
const DATA: u8 = 0x0;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// Open an h2c connection, send one request on stream 1 (`fields` after the
/// pseudo-fields, then `data` if any) and read frames until stream 1 is answered,
/// reset, or the connection ends. Returns the response's `:status` (`None`: reset
/// or connection error).
async fn h2_request(
    addr: SocketAddr,
    path: &str,
    fields: &[Field<'_>],
    data: Option<&[u8]>,
) -> Option<u16> {
    h2_request_to(addr, Some(b"h"), path, fields, data).await
}

/// `h2_request` with this `:authority`, or none.
async fn h2_request_to(
    addr: SocketAddr,
    authority: Option<&[u8]>,
    path: &str,
    fields: &[Field<'_>],
    data: Option<&[u8]>,
) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    let mut block = Vec::new();
    literal(
        &mut block,
        b":method",
        if data.is_some() { b"POST" } else { b"GET" },
    );
    literal(&mut block, b":scheme", b"http");
    literal(&mut block, b":path", path.as_bytes());
    if let Some(authority) = authority {
        literal(&mut block, b":authority", authority);
    }
    for (n, v) in fields {
        literal(&mut block, n, v);
    }
    let flags = END_HEADERS | if data.is_none() { END_STREAM } else { 0 };
    out.extend(frame(HEADERS, flags, 1, &block));
    if let Some(data) = data {
        out.extend(frame(DATA, END_STREAM, 1, data));
    }
    s.write_all(&out).await.expect("write");
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, stream) = (
                buf[3],
                u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
            );
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            match (kind, stream) {
                // HEADERS on stream 1: `:status` as an indexed static field
                // (RFC 7541 Appendix A: 8 = 200, 12 = 400, 13 = 404, 14 = 500) or
                // a literal with indexed name 8.
                (0x1, 1) => {
                    return Some(match payload.first() {
                        Some(0x88) => 200,
                        Some(0x8c) => 400,
                        Some(0x8d) => 404,
                        Some(0x8e) => 500,
                        _ => {
                            let digits = &payload[payload.len().min(2)..payload.len().min(5)];
                            std::str::from_utf8(digits).ok()?.parse().ok()?
                        }
                    })
                }
                (0x3, 1) | (0x7, _) => return None, // RST_STREAM, GOAWAY
                _ => {}
            }
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout_at(deadline, s.read(&mut chunk)).await;
        match read {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            Ok(_) => return None,
            Err(_) => panic!("no answer to stream 1 in time"),
        }
    }
}

/// What would be unsafe once an HTTP/2 request is written as HTTP/1.1 never
/// reaches the target: a CR, LF or NUL in a value, a colon or capital in a name,
/// connection-specific fields, DATA that disagrees with `content-length`, and two
/// hosts or hosts that disagree.
#[tokio::test]
async fn http2_requests_that_would_downgrade_unsafely_never_reach_the_target() {
    let (recorder, ballast) = start("defensive").await;
    let addr = ballast.addr;
    assert_eq!(
        h2_request(addr, "/h2ok", &[], None).await,
        Some(200),
        "a plain request works"
    );
    type Case<'a> = (&'a str, Vec<Field<'a>>, Option<&'a [u8]>);
    let cases: Vec<Case<'_>> = vec![
        (
            "CR LF in a value",
            vec![(b"x-a", b"1\r\nTransfer-Encoding: chunked")],
            None,
        ),
        ("NUL in a value", vec![(b"x-a", b"a\0b")], None),
        ("colon in a name", vec![(b"x:a", b"1")], None),
        ("capital in a name", vec![(b"X-A", b"1")], None),
        ("connection", vec![(b"connection", b"keep-alive")], None),
        (
            "transfer-encoding",
            vec![(b"transfer-encoding", b"chunked")],
            None,
        ),
        ("keep-alive", vec![(b"keep-alive", b"timeout=5")], None),
        ("te other than trailers", vec![(b"te", b"gzip")], None),
        (
            "content-length over DATA",
            vec![(b"content-length", b"10")],
            Some(b"abc"),
        ),
        (
            "content-length under DATA",
            vec![(b"content-length", b"1")],
            Some(b"abc"),
        ),
        (
            "host and another :authority",
            vec![(b"host", b"admin.example")],
            None,
        ),
    ];
    for (i, (name, fields, data)) in cases.iter().enumerate() {
        let path = format!("/h2bad{i}");
        let status = h2_request(addr, &path, fields, *data).await;
        assert!(
            status.is_none() || status == Some(400),
            "{name}: answered {status:?}"
        );
        assert!(recorder.requests_to(&path).is_empty(), "{name}: forwarded");
    }
    // Without `:authority`: one `host`, never two, never none.
    let one_host: [Field<'_>; 1] = [(b"host", b"h")];
    let status = h2_request_to(addr, None, "/h2host1", &one_host, None).await;
    assert_eq!(status, Some(200));
    let two_hosts: [Field<'_>; 2] = [(b"host", b"public.example"), (b"host", b"admin.example")];
    for (path, fields) in [("/h2host2", &two_hosts[..]), ("/h2host0", &[][..])] {
        let status = h2_request_to(addr, None, path, fields, None).await;
        assert_eq!(status, Some(400), "{path}");
        assert!(recorder.requests_to(path).is_empty(), "{path}: forwarded");
    }
    assert!(recorder.requests_to("/h2bad").is_empty());
    let text = ballast.server.metrics_text();
    assert!(!text.contains("code=\"502\""), "{text}");
}

//! Which protocol a connection speaks. On TLS it is the one ALPN agreed (no ALPN:
//! HTTP/1.1), whatever the first bytes look like: a client that agreed on one
//! protocol and then speaks the other is not served. On plain TCP it is HTTP/1.1
//! or h2c with prior knowledge, and bytes that go as far as the preface's request
//! line and then break it close the connection (RFC 9113 §3.4), with no HTTP/1.1
//! answer.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ballast_testkit::pki::{Ca, TempDir};
use ballast_testkit::tls::{HttpsConn, TlsClient};
use ballast_testkit::{backends, BackendHandle, Ballast, Client, Setup};

use crate::tls::https_ballast;
use crate::SOON;

/// The HTTP/2 connection preface, and an empty SETTINGS frame to follow it.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Read until the server closes the connection: all it sent before. A TLS
/// stream cut without `close_notify`, or a reset, counts as closed too; a
/// connection still open after `SOON` fails the test.
async fn read_to_close<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(SOON, s.read(&mut buf)).await;
        match read {
            Err(_) => panic!(
                "still open after {SOON:?}, having sent {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether `bytes` hold an HTTP/1.1 response line anywhere.
fn has_http1(bytes: &[u8]) -> bool {
    bytes.windows(9).any(|w| w == b"HTTP/1.1 ")
}

/// An `https` ballast with one certificate for `localhost` and these extra
/// listener lines, and its CA.
async fn https(bs: &[BackendHandle], name: &str, extra: &str) -> (Ballast, Ca, TempDir) {
    let (dir, ca) = (TempDir::new(name), Ca::new("Test CA"));
    let cert = ca.server(&["localhost"]).toml(&dir, "site");
    let ballast = https_ballast(bs, &format!("certificates = [{cert}]\n{extra}")).await;
    (ballast, ca, dir)
}

/// A client trusting `ca` that offers these ALPN protocols (none: no ALPN).
fn offering(ca: &Ca, alpn: &[&[u8]]) -> TlsClient {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    TlsClient::build(ca, &versions, None, alpn)
}

/// ALPN agreed `h2`: HTTP/1.1 request bytes are a broken preface, which ends the
/// connection (hyper's HTTP/2 server sends its SETTINGS frame first, then
/// closes); never an HTTP/1.1 answer, and nothing reaches the target.
#[tokio::test]
async fn alpn_h2_then_an_http1_request_is_a_closed_connection() {
    let bs = backends(1).await;
    let (ballast, ca, _dir) = https(&bs, "alpn-h2-h1", "").await;
    let mut tls = offering(&ca, &[b"h2", b"http/1.1"])
        .connect(ballast.addr, "localhost")
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let out = read_to_close(&mut tls).await;
    assert!(!has_http1(&out), "{:?}", String::from_utf8_lossy(&out));
    // Whatever came back is HTTP/2: frames, the first of them SETTINGS on stream 0.
    if !out.is_empty() {
        assert!(out.len() >= 9 && out[3] == 4, "{out:?}");
        assert_eq!(&out[5..9], &[0, 0, 0, 0], "{out:?}");
    }
    assert_eq!(bs[0].requests(), 0);
}

/// hyper's HTTP/1.1 server meets the HTTP/2 preface by closing the connection
/// without a word (it reports it as an HTTP/2 connection it does not serve).
async fn preface_is_not_served_as_http2(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) {
    let mut opening = PREFACE.to_vec();
    opening.extend_from_slice(SETTINGS);
    tls.write_all(&opening).await.expect("write");
    let out = read_to_close(tls).await;
    assert!(
        out.is_empty(),
        "no SETTINGS frame, no response: {out:?} {:?}",
        String::from_utf8_lossy(&out)
    );
}

/// ALPN agreed `http/1.1`: the HTTP/2 preface is not served as HTTP/2; HTTP/1.1
/// is served as before.
#[tokio::test]
async fn alpn_http1_then_the_http2_preface_is_not_served_as_http2() {
    let bs = backends(1).await;
    let (ballast, ca, _dir) = https(&bs, "alpn-h1-h2", "").await;
    let client = offering(&ca, &[b"http/1.1"]);
    let mut tls = client
        .connect(ballast.addr, "localhost")
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    preface_is_not_served_as_http2(&mut tls).await;
    assert_eq!(bs[0].requests(), 0);

    let tls = client
        .connect(ballast.addr, "localhost")
        .await
        .expect("handshake");
    let mut conn = HttpsConn::new(tls).await;
    assert!(!conn.is_h2());
    assert_eq!(conn.get("/h1", &[]).await.expect("request").status, 200);
}

/// No ALPN is HTTP/1.1: the preface is not served as HTTP/2, and an HTTP/1.1
/// client is served.
#[tokio::test]
async fn no_alpn_is_http1() {
    let bs = backends(1).await;
    let (ballast, ca, _dir) = https(&bs, "alpn-none", "").await;
    let client = offering(&ca, &[]);
    let mut tls = client
        .connect(ballast.addr, "localhost")
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    preface_is_not_served_as_http2(&mut tls).await;
    assert_eq!(bs[0].requests(), 0);

    let tls = client
        .connect(ballast.addr, "localhost")
        .await
        .expect("handshake");
    let mut conn = HttpsConn::new(tls).await;
    assert!(!conn.is_h2());
    let reply = conn.get("/no-alpn", &[]).await.expect("request");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["path"], "/no-alpn");
}

/// The header-read timeout bounds a TLS connection's first request whichever
/// protocol ALPN agreed (for HTTP/2: the preface and a request): one that says
/// nothing after its handshake is closed then, not at the idle timeout.
#[tokio::test]
async fn a_silent_tls_connection_is_closed_after_the_header_timeout() {
    let bs = backends(1).await;
    let limits = "header_read_timeout = \"300ms\"\nidle_timeout = \"30s\"";
    let (ballast, ca, _dir) = https(&bs, "alpn-silent", limits).await;
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let started = Instant::now();
        let mut tls = offering(&ca, &[alpn])
            .connect(ballast.addr, "localhost")
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
        let out = read_to_close(&mut tls).await;
        let took = started.elapsed();
        assert!(!has_http1(&out), "{:?}", String::from_utf8_lossy(&out));
        assert!(
            took >= Duration::from_millis(250),
            "closed too early: {took:?}"
        );
    }
}

/// Plain TCP: bytes that match the preface's request line and then break the
/// preface close the connection, with no `400`; a preface in good order is h2c.
#[tokio::test]
async fn a_broken_h2c_preface_closes_the_connection() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    for broken in [
        &b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\nHost: x\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(ballast.addr).await.expect("connect");
        s.write_all(broken).await.expect("write");
        let out = read_to_close(&mut s).await;
        assert!(
            out.is_empty(),
            "{:?} got {:?}",
            String::from_utf8_lossy(broken),
            String::from_utf8_lossy(&out)
        );
    }
    assert_eq!(bs[0].requests(), 0);

    let reply = Client::h2c()
        .get(&ballast.url("/h2c"))
        .await
        .expect("h2c request");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["path"], "/h2c");
}

//! HTTP/1.1 message syntax towards targets (RFC 9112): the request head ballast
//! writes, the response head it reads, and how a response body is delimited.
//!
//! Data path, no I/O here: plain functions over byte buffers, so every rule is unit
//! tested on its own. Parsing is httparse's (the parser hyper uses); what is
//! ballast's is the framing decision of RFC 9112 §6.3, made strictly, because two
//! parties that disagree on where a message ends is how responses get smuggled:
//! - `Transfer-Encoding` wins over `Content-Length`, and a response that carries
//!   both is read as chunked and its connection is not reused;
//! - a `Transfer-Encoding` whose last coding is not `chunked` is read until close;
//! - `Content-Length` must be digits, and repeated values must agree.
//!
//! Chunked bodies are read and written by `chunked.rs`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH};
use http::header::{TRANSFER_ENCODING, UPGRADE};
use http::{Method, StatusCode};

use super::Error;

/// The largest response head (status line and headers) accepted from a target.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in one response head, or in a chunked body's trailers.
pub const MAX_HEADERS: usize = 128;

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (a HEAD response, 1xx, 204, 304, or a bodiless request).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    Chunked,
    /// Until the target closes the connection (responses only).
    Close,
}

/// Write a request head in origin form. `framing` says how its body will be sent;
/// the client's own `Content-Length` and `Transfer-Encoding` are replaced by it.
/// Hop-by-hop headers must already be gone (`headers::prepare_request`).
pub fn encode_request<B>(req: &http::Request<B>, framing: Framing, out: &mut BytesMut) {
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.put_u8(b' ');
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        // A body-carrying method without a body still says so, as hyper does.
        Framing::Empty if expects_body(req.method()) => {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::Close => {}
    }
    out.extend_from_slice(b"\r\n");
}

fn expects_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

pub fn push_decimal(out: &mut impl BufMut, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// A target's response head, parsed. Its headers are the end-to-end ones: the
/// hop-by-hop fields (`Connection`, those it names, and the fixed list of
/// `hop_by_hop::remove_hop_by_hop`) were read for the framing and then left out.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

/// What the framing decision needs from a response's fields, gathered while they
/// are read (no lookups in the map afterwards).
#[derive(Default)]
struct Fields {
    close: bool,
    upgrade: bool,
    /// A `Transfer-Encoding` field was present; whether its last coding is chunked.
    chunked: Option<bool>,
    content_length: Option<Result<u64, Error>>,
}

impl Fields {
    fn note(&mut self, name: &HeaderName, value: &[u8]) {
        if name == CONNECTION {
            self.close |= super::hop_by_hop::has_token(value, "close");
        } else if name == TRANSFER_ENCODING {
            // The last field's last coding decides (RFC 9112 §6.3 item 4).
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            self.chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == CONTENT_LENGTH {
            self.content_length = Some(match self.content_length.take() {
                Some(Err(e)) => Err(e),
                seen => content_length(value, seen.and_then(Result::ok)),
            });
        } else if name == UPGRADE {
            self.upgrade = true;
        }
    }
}

/// Parse one response head from the front of `buf`, consuming it. `Ok(None)`:
/// incomplete, read more. Informational (1xx) responses are returned like any other;
/// the caller skips them.
pub fn parse_response(buf: &mut BytesMut, method: &Method) -> Result<Option<ResponseHead>, Error> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(Error::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::Invalid("too many headers")),
        Err(_) => return Err(Error::Invalid("malformed response head")),
    };
    if len > MAX_HEAD {
        return Err(Error::HeadTooLarge);
    }
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| Error::Invalid("status code"))?;
    let http11 = parsed.version == Some(1);

    // One copy of the head; every value is a slice of it (one allocation, not one
    // per field).
    let head = Bytes::copy_from_slice(&buf[..len]);
    let start = buf.as_ptr() as usize;
    let fields: &[httparse::Header<'_>] = parsed.headers;
    let is_connection = |h: &&httparse::Header<'_>| h.name.eq_ignore_ascii_case("connection");
    let has_connection = fields.iter().any(|h| is_connection(&h));
    let mut facts = Fields::default();
    let mut headers = HeaderMap::with_capacity(fields.len());
    for h in fields {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Error::Invalid("header name"))?;
        facts.note(&name, h.value);
        let listed = has_connection
            && fields
                .iter()
                .filter(is_connection)
                .any(|c| super::hop_by_hop::has_token(c.value, name.as_str()));
        if listed || super::hop_by_hop::is_hop_by_hop(&name) {
            continue;
        }
        let at = h.value.as_ptr() as usize - start;
        let value = HeaderValue::from_maybe_shared(head.slice(at..at + h.value.len()))
            .map_err(|_| Error::Invalid("header value"))?;
        headers.append(name, value);
    }
    buf.advance(len);

    let mut keep_alive = http11 && !facts.close;
    let framing = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || method == Method::HEAD
    {
        Framing::Empty
    } else if let Some(chunked) = facts.chunked {
        if facts.content_length.is_some() {
            // Both: read as chunked (RFC 9112 §6.3 item 3), never reuse the connection.
            headers.remove(CONTENT_LENGTH);
            keep_alive = false;
        }
        if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else if let Some(length) = facts.content_length {
        Framing::Length(length?)
    } else {
        Framing::Close
    };
    if framing == Framing::Close {
        keep_alive = false;
    }
    if status == StatusCode::SWITCHING_PROTOCOLS || facts.upgrade {
        // Never offered on a pooled connection; whatever follows is not HTTP.
        keep_alive = false;
    }
    Ok(Some(ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// One `Content-Length` field, which may repeat the length as a list; every
/// length must be digits and agree with those seen before (`seen`).
fn content_length(value: &[u8], seen: Option<u64>) -> Result<u64, Error> {
    let mut found = seen;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err(Error::Invalid("content-length"));
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if found.is_some_and(|f| f != n) {
            return Err(Error::Invalid("conflicting content-length"));
        }
        found = Some(n);
    }
    found.ok_or(Error::Invalid("content-length"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::chunked::encode_chunk_size;

    fn parse(raw: &str, method: Method) -> Result<Option<ResponseHead>, Error> {
        let mut buf = BytesMut::from(raw);
        parse_response(&mut buf, &method)
    }

    fn head(raw: &str) -> ResponseHead {
        parse(raw, Method::GET).expect("valid").expect("complete")
    }

    #[test]
    fn hop_by_hop_fields_are_read_then_left_out() {
        let raw = "HTTP/1.1 200 OK\r\nX-Secret: 1\r\nConnection: keep-alive, x-secret\r\n\
                   Keep-Alive: timeout=5\r\nServer: t\r\nconnection: close\r\n\
                   Upgrade: h2c\r\nX-Kept: a\r\nx-kept: b\r\nContent-Length: 3\r\n\r\nabc";
        let mut buf = BytesMut::from(raw);
        let h = parse_response(&mut buf, &Method::GET)
            .expect("valid")
            .expect("complete");
        // Both Connection fields counted: `close` in the second one.
        assert!(!h.keep_alive);
        assert_eq!(h.framing, Framing::Length(3));
        let names: Vec<&str> = h.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["server", "x-kept", "content-length"]);
        let kept: Vec<&[u8]> = h
            .headers
            .get_all("x-kept")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(kept, [b"a", b"b"]);
        assert_eq!(h.headers["server"], "t");
        assert_eq!(&buf[..], b"abc", "only the head is consumed");
    }

    #[test]
    fn request_head_is_origin_form_with_our_framing() {
        let mut req = http::Request::post("/a?b=1")
            .header("host", "example")
            .header("content-length", "999")
            .header("transfer-encoding", "chunked")
            .header("x-y", "z")
            .body(())
            .expect("request");
        let mut out = BytesMut::new();
        encode_request(&req, Framing::Length(12), &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "POST /a?b=1 HTTP/1.1\r\nhost: example\r\nx-y: z\r\ncontent-length: 12\r\n\r\n"
        );
        out.clear();
        encode_request(&req, Framing::Empty, &mut out);
        assert!(String::from_utf8_lossy(&out).ends_with("content-length: 0\r\n\r\n"));
        *req.method_mut() = Method::GET;
        out.clear();
        encode_request(&req, Framing::Chunked, &mut out);
        assert!(String::from_utf8_lossy(&out).ends_with("transfer-encoding: chunked\r\n\r\n"));
    }

    #[test]
    fn decimal_and_hex() {
        let mut out = Vec::new();
        push_decimal(&mut out, 0);
        push_decimal(&mut out, 18446744073709551615);
        assert_eq!(out, b"018446744073709551615");
        out.clear();
        encode_chunk_size(0x1a2b, &mut out);
        assert_eq!(out, b"1a2b\r\n");
    }

    #[test]
    fn framing_follows_rfc9112() {
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n").framing,
            Framing::Length(5)
        );
        let chunked = head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(chunked.keep_alive);
        let close = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(close.framing, Framing::Close);
        assert!(!close.keep_alive);
        let gzip = head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n");
        assert_eq!(gzip.framing, Framing::Close);
        for empty in [
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
        ] {
            let h = head(empty);
            assert_eq!(h.framing, Framing::Empty);
            assert!(h.keep_alive);
        }
        let to_head = parse("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", Method::HEAD)
            .expect("valid")
            .expect("complete");
        assert_eq!(to_head.framing, Framing::Empty);
        assert_eq!(
            to_head.headers["content-length"], "9",
            "kept for the client"
        );
    }

    #[test]
    fn both_lengths_read_as_chunked_and_not_reused() {
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.keep_alive);
        assert!(!h.headers.contains_key("content-length"));
    }

    #[test]
    fn content_length_must_be_digits_and_agree() {
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n").framing,
            Framing::Length(5)
        );
        for bad in ["+5", "5a", "", "5, 6", "99999999999999999999"] {
            let raw = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n");
            assert!(parse(&raw, Method::GET).is_err(), "{bad:?} accepted");
        }
        let twice = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n";
        assert!(parse(twice, Method::GET).is_err());
    }

    #[test]
    fn connection_close_and_http10_are_not_reused() {
        assert!(
            !head("HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n").keep_alive
        );
        assert!(!head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n").keep_alive);
        assert!(
            head("HTTP/1.1 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n")
                .keep_alive
        );
    }

    #[test]
    fn partial_heads_wait_and_huge_ones_fail() {
        assert!(parse("HTTP/1.1 200 OK\r\ncontent-le", Method::GET)
            .expect("ok")
            .is_none());
        let huge = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD + 1));
        assert!(matches!(
            parse(&huge, Method::GET),
            Err(Error::HeadTooLarge)
        ));
        assert!(parse("NOT HTTP\r\n\r\n", Method::GET).is_err());
    }

    #[test]
    fn parsing_consumes_exactly_the_head() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi");
        parse_response(&mut buf, &Method::GET)
            .expect("ok")
            .expect("complete");
        assert_eq!(&buf[..], b"hi");
    }
}

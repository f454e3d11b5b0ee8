//! The request heads ballast's own server takes, parsed in place: a complete
//! head with no body, over HTTP/1.1, that hyper would serve the same way.
//! Anything else (a body, an upgrade, `Expect`, HTTP/1.0, a partial or malformed
//! head) is left to hyper, which serves it from the same bytes.
//!
//! Data path. The head is copied into one allocation of its own size that every
//! header value slices, so the read buffer can go back to the worker at once.
//! Every complete head is also given its desync classification here, from the
//! fields as httparse read them (`hygiene/desync.rs`), including the heads left
//! to hyper, whose view of them is already normalised.

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, TE, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{Method, Request, Uri, Version};

use crate::forward::body::RequestBody;
use crate::http1::hop_by_hop::has_token;
use crate::hygiene::desync::{self, Verdict};

/// The most header fields in a request served here (hyper's limit too).
pub(crate) const MAX_HEADERS: usize = 100;
/// The largest request head served here; larger ones go to hyper (which answers
/// 431 beyond the listener's `max_request_head_size`).
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// What became of the bytes at the front of the read buffer.
// Returned and taken apart at once, never stored: boxing the head would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// A request this server takes.
    Take(Head),
    /// Left to hyper, with the head's desync verdict when it was complete.
    Leave(Option<Verdict>),
}

/// A request head this server takes.
pub(crate) struct Head {
    /// Bytes of the head in the read buffer.
    pub(crate) len: usize,
    pub(crate) request: Request<RequestBody>,
    /// The client asked to close after the response.
    pub(super) close: bool,
    /// The client accepts trailers (`TE: trailers`).
    pub(super) trailers: bool,
    pub(crate) verdict: Verdict,
}

/// Parse a complete request head without a body, no larger than `max_head`, or
/// leave it to hyper (see the module docs).
pub(crate) fn parse(buf: &[u8], max_head: usize) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let Ok(httparse::Status::Complete(len)) = parsed.parse(buf) else {
        return Parsed::Leave(None);
    };
    let method = parsed.method.unwrap_or_default().as_bytes();
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let target = parsed.path.unwrap_or_default().as_bytes();
    let fields = parsed.headers.iter().map(|h| (h.name.as_bytes(), h.value));
    match take(&parsed, buf, len, max_head.min(MAX_HEAD)) {
        Some(mut head) => {
            head.verdict = desync::classify_taken(method, version, target, fields);
            Parsed::Take(head)
        }
        None => Parsed::Leave(Some(desync::classify(method, version, target, fields))),
    }
}

/// The head as a request this server takes, or `None`.
fn take(
    parsed: &httparse::Request<'_, '_>,
    buf: &[u8],
    len: usize,
    max_head: usize,
) -> Option<Head> {
    if len > max_head || parsed.version != Some(1) {
        return None;
    }
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    if method == Method::CONNECT {
        return None;
    }
    // One copy of the head, which the target and every header value slice.
    let head = Bytes::copy_from_slice(&buf[..len]);
    let start = buf.as_ptr() as usize;
    let slice = |part: &[u8]| {
        let at = part.as_ptr() as usize - start;
        head.slice(at..at + part.len())
    };
    let uri = Uri::from_maybe_shared(slice(parsed.path?.as_bytes())).ok()?;
    // Room for the headers the proxy adds (X-Forwarded-*, X-Request-Id).
    let mut headers = HeaderMap::with_capacity(parsed.headers.len() + 4);
    let (mut close, mut trailers) = (false, false);
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == UPGRADE || name == EXPECT
        {
            return None;
        }
        if name == CONNECTION {
            if has_token(field.value, "upgrade") {
                return None;
            }
            close |= has_token(field.value, "close");
        } else if name == TE {
            trailers |= has_token(field.value, "trailers");
        }
        let value = HeaderValue::from_maybe_shared(slice(field.value)).ok()?;
        headers.append(name, value);
    }
    let mut request = Request::new(RequestBody::Empty);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(Head {
        len,
        request,
        close,
        trailers,
        // Classified by the caller.
        verdict: Verdict::COMPLIANT,
    })
}

#[cfg(test)]
mod tests {
    use bytes::{Buf, BytesMut};

    use super::*;
    use crate::runtime::buffers;

    fn head(raw: &str) -> Option<Head> {
        match parse(raw.as_bytes(), MAX_HEAD) {
            Parsed::Take(head) => Some(head),
            Parsed::Leave(_) => None,
        }
    }

    #[test]
    fn a_plain_get_is_taken_with_its_head_shared() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: example\r\nX-Y: z\r\nTE: trailers\r\n\r\nGET /next";
        let h = head(raw).expect("taken");
        assert_eq!(h.len, raw.len() - "GET /next".len());
        assert_eq!(h.request.method(), Method::GET);
        assert_eq!(h.request.uri(), "/a?b=1");
        assert_eq!(h.request.headers()["host"], "example");
        assert_eq!(h.request.headers()["x-y"], "z");
        assert!(!h.close);
        assert!(h.trailers);
        let h = head("HEAD / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").expect("taken");
        assert!(h.close);
    }

    /// The server gives its read buffer back while a request is served: that
    /// takes a head that shares nothing with the buffer it was read into.
    #[test]
    fn a_parsed_head_leaves_its_read_buffer_free_to_go_back() {
        let mut rbuf = BytesMut::new();
        buffers::reserve(&mut rbuf);
        rbuf.extend_from_slice(b"GET /a HTTP/1.1\r\nHost: example\r\n\r\n");
        let Parsed::Take(h) = parse(&rbuf, MAX_HEAD) else {
            panic!("not taken");
        };
        rbuf.advance(h.len);
        let free = buffers::free_count();
        buffers::give_back(&mut rbuf);
        assert_eq!(
            buffers::free_count(),
            free + 1,
            "the buffer went back whole"
        );
        assert_eq!(h.request.headers()["host"], "example");
        assert_eq!(h.request.uri(), "/a");
    }

    /// The shortcut for heads this server takes gives exactly what AWS's
    /// classifier gives, on a corpus of names that do and do not resemble the
    /// framing fields, values, targets and methods.
    #[test]
    fn the_shortcut_agrees_with_the_classifier() {
        let names = [
            "Host",
            "Accept-Encoding",
            "Content-Type",
            "Cache-Control",
            "Content-Location",
            "Content-Security-Policy",
            "Transfer_Encoding",
            "Transfer.Encoding",
            "TransferEncoding",
            "Transfer-Encodings",
            "Transfer-Encoding-X",
            "T-ransfer-Encoding",
            "TRANSFER_ENCODING",
            "Content_Length",
            "Content.Length",
            "contentlength",
            "Content--Length",
            "Content-Lengths",
            "Content-Lengthx",
            "CONTENT_LENGTH",
            "cOnTeNt_LeNgTh",
            "-Content-Length",
            "1Content-Length",
            "X-Content-Length",
            "X-Transfer-Encoding",
            "Content-Length-",
            "Te",
            "Trailer",
            "Cookie",
            "Sec-Fetch-Mode",
            "Tranfer-Encoding",
            "Contentxlength",
        ];
        let values = [
            "x",
            "chunked",
            "5",
            "0",
            "a b",
            "\tx",
            "caf\u{e9}",
            "",
            "a,b",
        ];
        let targets = [
            "/",
            "/a?b=c",
            "/%00",
            "/a\"b",
            "http://h/x",
            "*",
            "/caf\u{e9}",
        ];
        let methods = ["GET", "HEAD", "DELETE", "OPTIONS", "PATCH", "X-CUSTOM"];
        let mut taken = 0;
        let mut suspicious = 0;
        for method in methods {
            for target in targets {
                for name in names {
                    for value in values {
                        let raw = format!(
                            "{method} {target} HTTP/1.1\r\nHost: h\r\n{name}: {value}\r\nX-A: 1\r\n\r\n"
                        );
                        let Some(h) = head(&raw) else { continue };
                        taken += 1;
                        let fields = [("Host", "h"), (name, value), ("X-A", "1")];
                        let full = desync::classify(
                            method.as_bytes(),
                            Version::HTTP_11,
                            target.as_bytes(),
                            fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                        );
                        assert_eq!(h.verdict, full, "{raw:?}");
                        suspicious += usize::from(full != Verdict::COMPLIANT);
                    }
                }
            }
        }
        assert!(taken > 5_000, "{taken} heads taken");
        assert!(
            suspicious > 500,
            "{suspicious} non-compliant heads in the corpus"
        );
    }

    #[test]
    fn everything_else_is_left_to_hyper() {
        for raw in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "CONNECT example:443 HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: exam",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "G@T / HTTP/1.1\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
        ] {
            assert!(head(raw).is_none(), "{raw:?} taken");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
        assert!(head(&format!("GET / HTTP/1.1\r\n{many}\r\n")).is_none());
    }
}

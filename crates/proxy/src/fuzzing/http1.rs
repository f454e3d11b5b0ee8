//! HTTP/1.1 heads and chunked bodies: ballast's own server's request heads
//! (`frontend/http1/request.rs`), the response heads and chunked bodies its
//! client reads from targets (`http1/codec.rs`, `http1/chunked.rs`).

use bytes::BytesMut;
use http::{HeaderMap, Method, Version};

use crate::frontend::http1::request::{self, Parsed};
use crate::http1::chunked::{encode_chunk_size, ChunkedDecoder, Decoded};
use crate::http1::codec::{self, Framing};
use crate::http1::hop_by_hop::is_hop_by_hop;
use crate::hygiene::desync;

/// Ballast's request-head parser against httparse read directly: a head ballast
/// takes is one httparse reads completely, with the same length, method, target,
/// version and header fields (in order within each name; a `HeaderMap` groups
/// equal names), and its shortcut desync verdict is the full classifier's.
pub fn request_head(data: &[u8]) {
    let mut slots = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
    let mut oracle = httparse::Request::new(&mut slots);
    let complete = match oracle.parse(data) {
        Ok(httparse::Status::Complete(len)) => Some(len),
        _ => None,
    };
    let head = match request::parse(data, request::MAX_HEAD) {
        Parsed::Leave(verdict) => {
            // A verdict exactly when the head was complete.
            assert_eq!(verdict.is_some(), complete.is_some(), "left: {data:?}");
            return;
        }
        Parsed::Take(head) => head,
    };
    let len = complete.expect("a taken head is one httparse reads completely");
    assert_eq!(head.len, len);
    let req = &head.request;
    let method = oracle.method.expect("method");
    let target = oracle.path.expect("target");
    assert_eq!(req.method().as_str(), method);
    assert_eq!(oracle.version, Some(1));
    assert_eq!(req.version(), Version::HTTP_11);
    assert!(
        same_target(req.uri(), target),
        "{} read as {}",
        target,
        req.uri()
    );

    let mut sent: Vec<(String, &[u8])> = oracle
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value))
        .collect();
    let mut kept: Vec<(String, &[u8])> = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes()))
        .collect();
    // Stable sorts: fields of one name stay in the order sent.
    sent.sort_by(|a, b| a.0.cmp(&b.0));
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(sent, kept, "header fields");

    let fields = oracle.headers.iter().map(|h| (h.name.as_bytes(), h.value));
    let full = desync::classify(
        method.as_bytes(),
        Version::HTTP_11,
        target.as_bytes(),
        fields,
    );
    assert_eq!(
        head.verdict, full,
        "shortcut verdict against the classifier"
    );
    // The checks after the parser must take whatever it took without panicking.
    let _ = crate::hygiene::host::check(req.version(), req.uri(), req.headers());
}

/// Whether `uri` is the request target `raw` as sent: the same text, but for
/// what `http::Uri` (hyper's reading too) normalises, deliberately accepted here:
/// a fragment is dropped (a request target has none, RFC 9112 §3.2; rules and the
/// target both see the path without it), and in an absolute-form target the
/// scheme's case (`HTTP://` is `http://`) and an empty path, which is `/` (RFC 9110 §4.2.3:
/// `http://h` and `http://h/` are the same resource, and the target gets `/` in
/// origin form either way).
fn same_target(uri: &http::Uri, raw: &str) -> bool {
    let shown = uri.to_string();
    let raw = raw.split_once('#').map_or(raw, |(before, _)| before);
    if shown == raw {
        return true;
    }
    let Some((scheme, rest)) = raw.split_once("://") else {
        return false;
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let tail = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    // `http` and `https` are written in lower case, other schemes as sent.
    shown
        .split_once("://")
        .is_some_and(|(shown_scheme, shown_rest)| {
            shown_scheme.eq_ignore_ascii_case(scheme) && shown_rest == format!("{authority}{tail}")
        })
}

/// A target's response head: what is accepted is a head httparse reads, exactly
/// its bytes are consumed, every shorter prefix asks for more, no hop-by-hop field
/// is kept, and the framing follows RFC 9112 §6.3.
pub fn response_head(data: &[u8]) {
    let Some((&first, raw)) = data.split_first() else {
        return;
    };
    let method = if first & 1 == 1 {
        Method::HEAD
    } else {
        Method::GET
    };
    let mut buf = BytesMut::from(raw);
    let Ok(Some(head)) = codec::parse_response(&mut buf, &method) else {
        return;
    };
    let len = raw.len() - buf.len();
    let mut slots = [httparse::EMPTY_HEADER; codec::MAX_HEADERS];
    let mut oracle = httparse::Response::new(&mut slots);
    assert_eq!(oracle.parse(raw), Ok(httparse::Status::Complete(len)));
    assert_eq!(Some(head.status.as_u16()), oracle.code);
    for k in [len - 1, len / 2] {
        let mut prefix = BytesMut::from(&raw[..k]);
        let partial = codec::parse_response(&mut prefix, &method);
        assert!(matches!(partial, Ok(None)), "a prefix of {k} bytes");
    }
    for name in head.headers.keys() {
        assert!(!is_hop_by_hop(name), "{name} kept");
    }
    let bodiless = head.status.is_informational()
        || head.status == 204
        || head.status == 304
        || method == Method::HEAD;
    assert_eq!(bodiless, head.framing == Framing::Empty);
    let has = |n: &str| {
        oracle
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(n))
    };
    if has("transfer-encoding") && !bodiless {
        assert!(matches!(head.framing, Framing::Chunked | Framing::Close));
        if has("content-length") {
            assert!(!head.keep_alive, "both lengths: never reused");
        }
    }
    if head.framing == Framing::Close || oracle.version == Some(0) {
        assert!(!head.keep_alive);
    }
}

/// A chunked body decoded from the whole input at once and fed in pieces of
/// 1 to 16 bytes (the first byte says how many) gives the same body, trailers
/// and leftover bytes, or the same error; and the bytes re-encoded as chunks
/// decode to themselves.
pub fn chunked_body(data: &[u8]) {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let whole = decode(input, input.len().max(1));
    let pieces = decode(input, usize::from(first % 16) + 1);
    assert_eq!(whole, pieces, "one piece against many");

    let mut encoded = BytesMut::new();
    let mut rest = input;
    let mut size = usize::from(first) + 1;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        encode_chunk_size(chunk.len(), &mut encoded);
        encoded.extend_from_slice(chunk);
        encoded.extend_from_slice(b"\r\n");
        rest = tail;
        size = size * 7 % 251 + 1;
    }
    encoded.extend_from_slice(b"0\r\n\r\n");
    let decoded = decode(&encoded, 13);
    assert_eq!(
        decoded,
        Ok((input.to_vec(), None, Vec::new())),
        "round trip"
    );
}

/// Body, trailers and the bytes left after the body; or the error's text.
type Decoding = Result<(Vec<u8>, Option<HeaderMap>, Vec<u8>), String>;

fn decode(input: &[u8], step: usize) -> Decoding {
    let mut decoder = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match decoder.decode(&mut buf).map_err(|e| e.to_string())? {
            Some(Decoded::Data(d)) => body.extend_from_slice(&d),
            Some(Decoded::End(trailers)) => {
                let mut left = buf.to_vec();
                left.extend_from_slice(&input[fed..]);
                return Ok((body, trailers, left));
            }
            None if fed == input.len() => return Err("incomplete".into()),
            None => {
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}

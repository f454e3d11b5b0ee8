//! gRPC as ballast sees it: recognising a gRPC request, its deadline, and answering
//! one the gRPC way when ballast cannot forward it.
//!
//! Data path. gRPC rides on HTTP/2 (`content-type: application/grpc[+proto|;...]`)
//! and puts its outcome in trailers (`grpc-status`, `grpc-message`); ballast passes
//! messages, headers and trailers through untouched, as streams. Two things need
//! ballast's own attention:
//! - the client's deadline (`grpc-timeout`, gRPC over HTTP/2 spec: 1 to 8 digits
//!   and a unit `H M S m u n`) bounds the wait for the response head, together
//!   with the group's `response_timeout` (the smaller wins);
//! - an error ballast produces itself must be readable by a gRPC client, which
//!   ignores an HTTP 5xx page: it is a "trailers-only" response, HTTP 200 with
//!   `content-type: application/grpc`, `grpc-status` and `grpc-message` in the one
//!   HEADERS frame that ends the stream. The code comes from
//!   `ProxyError::grpc_status`, next to the HTTP mapping.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};

use crate::forward::body::ResponseBody;

pub static GRPC_TIMEOUT: &str = "grpc-timeout";

/// gRPC status codes ballast answers with (grpc/doc/statuscodes.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Cancelled = 1,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
}

/// Whether a request is gRPC: its content type is `application/grpc`, alone or
/// with a `+codec` or parameters.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .and_then(|v| v.strip_prefix(b"application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
}

/// The client's deadline from `grpc-timeout`, if present and well formed.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    parse_timeout(headers.get(GRPC_TIMEOUT)?.as_bytes())
}

fn parse_timeout(v: &[u8]) -> Option<Duration> {
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A trailers-only gRPC response carrying ballast's own error: its gRPC status,
/// and `ballast: <reason>: <message>` as `grpc-message`.
pub fn error_response(
    status: Code,
    reason: &str,
    message: &dyn std::fmt::Display,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(status as u32));
    let message = percent_encode(&format!("ballast: {reason}: {message}"));
    if let Ok(v) = HeaderValue::from_str(&message) {
        h.insert("grpc-message", v);
    }
    response
}

/// `grpc-message` is percent-encoded UTF-8: bytes outside 0x20–0x7E, and `%`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_grpc_content_types() {
        let mut h = HeaderMap::new();
        for (ct, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc;charset=utf-8", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_grpc(&h), grpc, "{ct}");
        }
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn parses_every_timeout_unit() {
        let cases = [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("10S", Duration::from_secs(10)),
            ("250m", Duration::from_millis(250)),
            ("7u", Duration::from_micros(7)),
            ("99999999n", Duration::from_nanos(99_999_999)),
        ];
        for (text, d) in cases {
            assert_eq!(parse_timeout(text.as_bytes()), Some(d), "{text}");
        }
        for bad in ["", "S", "100", "123456789S", "1s", "-1S", "1.5S"] {
            assert_eq!(parse_timeout(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn error_is_trailers_only_with_status() {
        let error = crate::forward::error::ProxyError::NoTarget("web".into());
        let r = error_response(error.grpc_status(), error.reason(), &error);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert_eq!(r.headers()["grpc-status"], "14");
        assert!(r.headers()["grpc-message"]
            .to_str()
            .expect("ascii")
            .contains("no_healthy_target"));
        assert_eq!(percent_encode("a%b\né"), "a%25b%0A%C3%A9");
    }
}

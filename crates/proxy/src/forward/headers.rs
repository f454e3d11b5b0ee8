//! Header rewriting between a client and a target (SPEC §3).
//!
//! Data path. Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every header it
//! names, plus the fixed list) belong to one connection and never cross the proxy in
//! either direction. Towards the target ballast appends the client's address to
//! `X-Forwarded-For`, sets `X-Forwarded-Proto` and `-Port` (replacing whatever the
//! client claimed), and passes or creates `X-Request-Id`. The request target is
//! rewritten to origin form: the authority of an absolute-form target only becomes
//! the `Host` header (RFC 9112 §3.2.2); it never chooses where the request goes, so
//! ballast cannot be used as an open proxy.

use std::net::IpAddr;

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

use crate::http1::hop_by_hop::remove_hop_by_hop;
use http::request::Parts;
use http::{Uri, Version};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What a listener contributes to each request it forwards.
///
/// Header values made per request, not clones of shared ones: a clone of a
/// `HeaderValue` that is not static counts references in a shared cell (one
/// allocation and a compare-and-swap the first time), which every worker would
/// write to; a fresh value is one small allocation local to the worker.
pub struct ForwardedInfo {
    pub proto: HeaderValue,
    /// For redirects (`#{protocol}`).
    pub protocol: &'static str,
    pub port_number: u16,
}

impl ForwardedInfo {
    pub fn new(proto: &'static str, port: u16) -> Self {
        ForwardedInfo {
            proto: HeaderValue::from_static(proto),
            protocol: proto,
            port_number: port,
        }
    }
}

/// A client's address as text, made once per connection; each request gets a
/// header value of its own from it (see `ForwardedInfo`).
#[derive(Clone, Copy)]
pub struct ClientIp {
    /// The longest IPv6 text is 45 bytes (IPv4-mapped, with a zone left out).
    text: [u8; 46],
    len: u8,
}

impl ClientIp {
    /// An IPv4 address is written by hand: through `Display` and a `String` it
    /// cost 1,800 instructions, a twentieth of a whole new connection's work.
    pub fn new(client: IpAddr) -> Self {
        let mut ip = ClientIp {
            text: [0; 46],
            len: 0,
        };
        let v4 = match client {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => {
                let text = v6.to_string();
                let len = text.len().min(ip.text.len());
                ip.text[..len].copy_from_slice(&text.as_bytes()[..len]);
                ip.len = len as u8;
                return ip;
            }
        };
        let mut push = |digit: u8| {
            ip.text[usize::from(ip.len)] = digit;
            ip.len += 1;
        };
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                push(b'.');
            }
            if octet >= 100 {
                push(b'0' + octet / 100);
            }
            if octet >= 10 {
                push(b'0' + octet / 10 % 10);
            }
            push(b'0' + octet % 10);
        }
        ip
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }

    /// The address as a header value of its own.
    pub fn header(&self) -> HeaderValue {
        // An address's text is always a valid header value.
        HeaderValue::from_bytes(self.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// Rewrite a client's request head for a target; its `X-Request-Id` is set
/// afterwards (kept if valid, made otherwise).
pub fn prepare_request<'a>(
    parts: &'a mut Parts,
    client_ip: &ClientIp,
    info: &ForwardedInfo,
) -> &'a HeaderValue {
    // Host: the authority of an absolute-form (HTTP/1.1) or :authority (HTTP/2) target.
    if let Some(authority) = parts.uri.authority() {
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, host);
        }
    }
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let origin = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = Uri::from(origin);
    }
    parts.version = Version::HTTP_11;

    remove_hop_by_hop(&mut parts.headers);
    append_forwarded_for(&mut parts.headers, client_ip);
    parts.headers.insert(&X_FORWARDED_PROTO, info.proto.clone());
    parts
        .headers
        .insert(&X_FORWARDED_PORT, HeaderValue::from(info.port_number));

    match parts.headers.entry(&X_REQUEST_ID) {
        Entry::Occupied(id) if valid_request_id(id.get().as_bytes()) => id.into_mut(),
        Entry::Occupied(mut entry) => {
            entry.insert(new_request_id());
            entry.into_mut()
        }
        Entry::Vacant(entry) => entry.insert(new_request_id()),
    }
}

/// Append the client's address to `X-Forwarded-For`, merging repeated headers into
/// one list so the target sees a single, ordered chain.
fn append_forwarded_for(headers: &mut HeaderMap, client_ip: &ClientIp) {
    let mut entry = match headers.entry(&X_FORWARDED_FOR) {
        Entry::Vacant(entry) => {
            entry.insert(client_ip.header());
            return;
        }
        Entry::Occupied(entry) => entry,
    };
    let mut value = Vec::new();
    for v in entry.iter() {
        let v = v.as_bytes().trim_ascii();
        if !v.is_empty() {
            value.extend_from_slice(v);
            value.extend_from_slice(b", ");
        }
    }
    value.extend_from_slice(client_ip.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&value) {
        entry.insert(v);
    }
}

/// A client's request id is kept when it is 1 to 128 visible characters of a safe set.
fn valid_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(b))
}

/// 128 random bits as 32 hex digits.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = fastrand::u128(..);
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((n >> (124 - 4 * i)) & 0xf) as usize];
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    /// The request id `prepare_request` left in a head.
    fn request_id(headers: &HeaderMap) -> Option<&str> {
        headers.get(&X_REQUEST_ID).and_then(|id| id.to_str().ok())
    }

    fn parts(req: Request<()>) -> Parts {
        req.into_parts().0
    }

    /// The hand-written IPv4 text is what `Display` writes, for every octet
    /// value in every position; IPv6 goes through `Display`.
    #[test]
    fn client_ip_text_matches_display() {
        for n in 0..=255u8 {
            for ip in [
                [n, 0, 0, 1],
                [10, n, 9, 99],
                [100, 200, n, 255],
                [1, 2, 3, n],
            ] {
                let ip = IpAddr::from(ip);
                assert_eq!(ClientIp::new(ip).as_bytes(), ip.to_string().as_bytes());
            }
        }
        for text in [
            "2001:db8::ffff:1",
            "::ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let v6: IpAddr = text.parse().expect("ip");
            assert_eq!(ClientIp::new(v6).header(), text);
        }
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_host() {
        let mut p = parts(
            Request::get("http://evil.example:81/a?b=1")
                .header("host", "other")
                .body(())
                .expect("request"),
        );
        let info = ForwardedInfo::new("http", 8080);
        prepare_request(
            &mut p,
            &ClientIp::new("10.0.0.1".parse().expect("ip")),
            &info,
        );
        assert_eq!(p.uri, "/a?b=1");
        assert_eq!(p.headers["host"], "evil.example:81");
    }

    #[test]
    fn forwarded_headers_append_and_replace() {
        let mut p = parts(
            Request::get("/")
                .header("x-forwarded-for", "1.1.1.1")
                .header("x-forwarded-for", "2.2.2.2")
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-port", "1")
                .body(())
                .expect("request"),
        );
        prepare_request(
            &mut p,
            &ClientIp::new("::1".parse().expect("ip")),
            &ForwardedInfo::new("http", 8080),
        );
        assert_eq!(p.headers["x-forwarded-for"], "1.1.1.1, 2.2.2.2, ::1");
        assert_eq!(p.headers["x-forwarded-proto"], "http");
        assert_eq!(p.headers["x-forwarded-port"], "8080");
    }

    #[test]
    fn request_id_is_kept_when_valid_and_made_otherwise() {
        let info = ForwardedInfo::new("http", 80);
        let ip = &ClientIp::new("127.0.0.1".parse().expect("ip"));
        let mut p = parts(
            Request::get("/")
                .header("x-request-id", "abc-123")
                .body(())
                .expect("req"),
        );
        prepare_request(&mut p, ip, &info);
        assert_eq!(request_id(&p.headers), Some("abc-123"));
        let mut p = parts(
            Request::get("/")
                .header("x-request-id", "bad id!")
                .body(())
                .expect("req"),
        );
        prepare_request(&mut p, ip, &info);
        let id = request_id(&p.headers).expect("an id").to_string();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let mut p = parts(Request::get("/").body(()).expect("req"));
        prepare_request(&mut p, ip, &info);
        assert_ne!(request_id(&p.headers), Some(id.as_str()));
    }
}

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
use http::request::Parts;
use http::{Uri, Version};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers of RFC 9110 §7.6.1, and the legacy `Proxy-Connection`.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether `name` is hop-by-hop by itself (the fixed list, `Connection` included).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Whether a comma-separated header value (`Connection`, `TE`, `Upgrade`) lists
/// `token`, ignoring case and surrounding spaces.
pub fn has_token(list: &[u8], token: &str) -> bool {
    list.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Remove hop-by-hop headers, including those named by `Connection`.
///
/// Most messages carry none, or only `Connection`, so the headers are scanned
/// first (a comparison per name) and only those present are removed: a lookup of
/// each name on the fixed list would hash it every time, present or not.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // The `Connection` values (cheap clones), so that the names they list are
    // still known after `Connection` itself is gone; it is removed last.
    let mut values = headers.get_all(header::CONNECTION).iter();
    let first = values.next().cloned();
    let more: Vec<HeaderValue> = values.cloned().collect(); // no allocation if empty
    let listed = |name: &HeaderName| {
        first
            .iter()
            .chain(&more)
            .any(|v| has_token(v.as_bytes(), name.as_str()))
    };
    let doomed =
        |name: &&HeaderName| **name != header::CONNECTION && (is_hop_by_hop(name) || listed(name));
    while let Some(name) = headers.keys().find(doomed).cloned() {
        headers.remove(&name);
    }
    if first.is_some() {
        headers.remove(header::CONNECTION);
    }
}

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
pub fn prepare_request(parts: &mut Parts, client_ip: &ClientIp, info: &ForwardedInfo) {
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
        Entry::Occupied(id) if valid_request_id(id.get().as_bytes()) => {}
        Entry::Occupied(mut entry) => {
            entry.insert(new_request_id());
        }
        Entry::Vacant(entry) => {
            entry.insert(new_request_id());
        }
    }
}

/// The request id `prepare_request` left in a head.
pub fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(&X_REQUEST_ID).and_then(|id| id.to_str().ok())
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
    fn removes_hop_by_hop_and_connection_named_headers() {
        let mut p = parts(
            Request::get("/x")
                .header("connection", "keep-alive, x-secret")
                .header("keep-alive", "timeout=5")
                .header("x-secret", "1")
                .header("te", "gzip")
                .header("upgrade", "foo")
                .header("x-kept", "1")
                .body(())
                .expect("request"),
        );
        remove_hop_by_hop(&mut p.headers);
        assert_eq!(p.headers.len(), 1, "{:?}", p.headers);
        assert!(p.headers.contains_key("x-kept"));
    }

    #[test]
    fn every_connection_field_names_headers_to_remove() {
        let mut p = parts(
            Request::get("/x")
                .header("x-a", "1")
                .header("connection", "x-a")
                .header("x-kept", "1")
                .header("Connection", " X-B ,close")
                .header("x-b", "1")
                .header("proxy-connection", "keep-alive")
                .body(())
                .expect("request"),
        );
        remove_hop_by_hop(&mut p.headers);
        let names: Vec<&str> = p.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
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

//! Hop-by-hop header fields (RFC 9110 §7.6.1): `Connection`, the fields it
//! names, and the fixed list. They belong to one connection and never cross the
//! proxy in either direction; HTTP/1.1's framing reads some of them first
//! (`Connection: close`, `Transfer-Encoding`).
//!
//! Data path. Plain functions over header values and maps.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

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

#[cfg(test)]
mod tests {
    use http::request::Parts;
    use http::Request;

    use super::*;

    fn parts(req: Request<()>) -> Parts {
        req.into_parts().0
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
}

//! The one request every connection sends, built once before the run.
//!
//! The hot loop clones this template for each request: the method, the URI and the
//! header values are `Bytes`-backed (reference counts, no copies) and the body is a
//! `Full<Bytes>`, so a clone costs one small allocation for the header map and nothing
//! for the body. HTTP/1.1 gets an origin-form URI and an explicit `Host` header (hyper's
//! connection-level client adds neither); HTTP/2 gets the absolute URI, from which hyper
//! derives `:scheme` and `:authority`. `Content-Length` is set here rather than by hyper
//! on every request. HTTP/1.1 runs do not use the template per request: [`raw`] encodes
//! it once into the bytes that [`crate::raw`] writes for every send.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use http::uri::PathAndQuery;
use http::{Method, Request, Uri, Version};
use http_body_util::Full;

/// A request ready to be cloned per send.
pub type Template = Request<Full<Bytes>>;

/// Builds the template for `url`.
pub fn template(
    url: &Uri,
    method: &Method,
    headers: &[(HeaderName, HeaderValue)],
    body: Bytes,
    http2: bool,
) -> anyhow::Result<Template> {
    let path = url
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let uri = if http2 {
        Uri::builder()
            .scheme(url.scheme_str().unwrap_or("http"))
            .authority(url.authority().map(|a| a.as_str()).unwrap_or_default())
            .path_and_query(path)
            .build()?
    } else {
        Uri::builder().path_and_query(path).build()?
    };
    let mut request = Request::builder()
        .method(method.clone())
        .uri(uri)
        .version(if http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        })
        .body(Full::new(body.clone()))?;
    let map = request.headers_mut();
    let user_host = headers.iter().any(|(n, _)| n == HOST);
    if !http2 && !user_host {
        if let Some(authority) = url.authority() {
            map.insert(HOST, HeaderValue::from_str(authority.as_str())?);
        }
    }
    for (name, value) in headers {
        if http2 && name == HOST {
            continue; // HTTP/2 carries the authority in `:authority`
        }
        map.append(name.clone(), value.clone());
    }
    let sends_body =
        !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if sends_body && !map.contains_key(CONTENT_LENGTH) {
        map.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    Ok(request)
}

/// Encodes the HTTP/1.1 request for `url` as the bytes sent on the wire (head and
/// body), for the raw path in [`crate::raw`]: the same request line and headers as the
/// template, header names lower-case as hyper writes them.
pub fn raw(
    url: &Uri,
    method: &Method,
    headers: &[(HeaderName, HeaderValue)],
    body: Bytes,
) -> anyhow::Result<Bytes> {
    let request = template(url, method, headers, body.clone(), false)?;
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(request.uri().to_string().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_uses_origin_form_and_host() {
        let url: Uri = "http://example.test:8080/a?b=1".parse().expect("uri");
        let t = template(&url, &Method::GET, &[], Bytes::new(), false).expect("template");
        assert_eq!(t.uri(), "/a?b=1");
        assert_eq!(t.headers()[HOST], "example.test:8080");
        assert!(!t.headers().contains_key(CONTENT_LENGTH));
    }

    #[test]
    fn raw_encodes_head_and_body() {
        let url: Uri = "http://example.test:8080/a?b=1".parse().expect("uri");
        let extra = [(
            HeaderName::from_static("x-k"),
            HeaderValue::from_static("v"),
        )];
        let raw = raw(&url, &Method::PUT, &extra, Bytes::from_static(b"hi")).expect("raw");
        assert_eq!(
            &raw[..],
            b"PUT /a?b=1 HTTP/1.1\r\nhost: example.test:8080\r\nx-k: v\r\ncontent-length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn http2_uses_absolute_uri_and_body_length() {
        let url: Uri = "https://example.test".parse().expect("uri");
        let extra = [(HOST, HeaderValue::from_static("other"))];
        let t = template(
            &url,
            &Method::POST,
            &extra,
            Bytes::from_static(b"hello"),
            true,
        )
        .expect("template");
        assert_eq!(t.uri(), "https://example.test/");
        assert!(!t.headers().contains_key(HOST));
        assert_eq!(t.headers()[CONTENT_LENGTH], "5");
    }
}

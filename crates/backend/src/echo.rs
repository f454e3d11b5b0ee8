//! The JSON echo document: what the backend saw of a request (SPEC §6).
//!
//! `{"backend", "method", "path", "query", "headers", "body_bytes"}`, with `query` the
//! raw query string (`""` when there is none) and `headers` keyed by lowercase name,
//! repeated headers joined with `", "` as RFC 9110 §5.3 allows. Header bytes that are
//! not UTF-8 are shown lossily rather than rejected: this is a debugging aid.

use bytes::Bytes;
use http::request::Parts;
use serde_json::{Map, Value};

/// Renders the echo of a request whose body was `body_bytes` long.
pub(crate) fn render(backend: &str, parts: &Parts, body_bytes: u64) -> Bytes {
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let mut joined = String::new();
        for (i, value) in parts.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                joined.push_str(", ");
            }
            joined.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
        headers.insert(name.as_str().to_owned(), Value::String(joined));
    }
    let echo = serde_json::json!({
        "backend": backend,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    Bytes::from(echo.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_every_field_and_joins_repeated_headers() {
        let (parts, ()) = http::Request::post("/a/b?x=1&y")
            .header("X-Thing", "one")
            .header("x-thing", "two")
            .header("Accept", "*/*")
            .body(())
            .map(http::Request::into_parts)
            .expect("valid request");
        let echo: Value = serde_json::from_slice(&render("b1", &parts, 42)).expect("json");
        assert_eq!(
            echo,
            serde_json::json!({
                "backend": "b1",
                "method": "POST",
                "path": "/a/b",
                "query": "x=1&y",
                "headers": {"x-thing": "one, two", "accept": "*/*"},
                "body_bytes": 42,
            })
        );
    }

    #[test]
    fn missing_query_is_empty_string() {
        let (parts, ()) = http::Request::get("/")
            .body(())
            .map(http::Request::into_parts)
            .expect("valid request");
        let echo: Value = serde_json::from_slice(&render("b", &parts, 0)).expect("json");
        assert_eq!(echo["query"], "");
        assert_eq!(echo["headers"], serde_json::json!({}));
    }
}

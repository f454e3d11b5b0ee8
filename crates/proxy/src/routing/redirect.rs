//! Expanding a redirect's `location` template for one request.
//!
//! Data path. The template was checked at config time (`ballast_config::RedirectTemplate`):
//! it is a path starting with one `/`, or absolute with an authority made only of
//! literal host characters, `#{host}` and `#{port}`. What the request contributes
//! is made safe here so that no client input can move the redirect elsewhere:
//! - `#{host}` must be a plain host name or IP literal (letters, digits, `-`, `.`,
//!   or `[...]`), else the request is refused (400): no `@`, `/` or `:` can slip in;
//! - `#{port}` is the listener's port and `#{protocol}` its protocol, never the
//!   client's claim;
//! - `#{path}` is the normalised path (`path.rs`: decoded, dot segments and empty
//!   segments removed, so `//evil.com` and `/%2F%2Fevil.com` are `/evil.com`),
//!   percent-encoded again; when it follows a `/` of the template its own leading
//!   `/` is dropped, so `/#{path}` cannot make `//`;
//! - `#{query}` is the query with every byte outside RFC 3986's query characters
//!   percent-encoded (CR, LF, space, `#`, `"`, `<`, `>`, `\`, non-ASCII); an empty
//!   query after a `?` takes the `?` with it.
//!
//! The result is then checked once more: a relative location must start with one
//! `/` not followed by `/` or `\`, and an absolute one must keep the authority the
//! template built, followed by `/`, `?`, `#` or nothing.

use ballast_config::{RedirectTemplate, TemplatePart};
use http::HeaderValue;

use super::{host_name, path, RequestView};

/// Why a redirect could not be built for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectError {
    /// The template uses `#{host}` and the request's host is missing or not a
    /// plain host name.
    InvalidHost,
    /// The expansion failed the final safety check (never expected).
    Unsafe,
}

/// The listener-side values of a redirect.
pub struct Origin<'a> {
    pub protocol: &'a str,
    pub port: u16,
}

/// Expand `template` for `req`.
pub fn location(
    template: &RedirectTemplate,
    req: &RequestView<'_>,
    origin: &Origin<'_>,
) -> Result<HeaderValue, RedirectError> {
    let mut out = String::with_capacity(template.as_str().len() + req.path.len() + 16);
    let mut authority_end = 0;
    for (i, part) in template.parts.iter().enumerate() {
        if i == template.authority_parts {
            authority_end = out.len();
        }
        match part {
            TemplatePart::Literal(l) => out.push_str(l),
            TemplatePart::Protocol => out.push_str(origin.protocol),
            TemplatePart::Port => out.push_str(itoa(origin.port, &mut [0; 5])),
            TemplatePart::Host => {
                let host = req.host.map(host_name).unwrap_or("");
                if !valid_host(host) {
                    return Err(RedirectError::InvalidHost);
                }
                out.extend(host.chars().map(|c| c.to_ascii_lowercase()));
            }
            TemplatePart::Path => {
                let normal = path::normalise(req.path);
                let rest = match (out.ends_with('/'), normal.first()) {
                    (true, Some(b'/')) => &normal[1..],
                    _ => &normal[..],
                };
                encode(rest, PATH_SAFE, &mut out);
            }
            TemplatePart::Query => {
                let q = req.query.unwrap_or("");
                if q.is_empty() && out.ends_with('?') {
                    out.pop();
                }
                encode(q.as_bytes(), QUERY_SAFE, &mut out);
            }
        }
    }
    if template.authority_parts == template.parts.len() {
        authority_end = out.len();
    }
    let safe = if template.authority_parts == 0 {
        let b = out.as_bytes();
        b.first() == Some(&b'/') && !matches!(b.get(1), Some(b'/' | b'\\'))
    } else {
        let authority_ok =
            out[..authority_end]
                .split_once("://")
                .is_some_and(|(scheme, authority)| {
                    matches!(scheme, "http" | "https")
                        && !authority.is_empty()
                        && authority
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                });
        authority_ok
            && matches!(
                out.as_bytes().get(authority_end),
                None | Some(b'/' | b'?' | b'#')
            )
    };
    if !safe {
        return Err(RedirectError::Unsafe);
    }
    HeaderValue::from_str(&out).map_err(|_| RedirectError::Unsafe)
}

/// A host name or an IP literal, nothing else.
fn valid_host(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b":.".contains(&b));
    }
    !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
}

/// RFC 3986 `pchar` and `/`: unreserved, sub-delims, `:` and `@`.
const PATH_SAFE: &[u8] = b"-._~!$&'()*+,;=:@/";
/// Query characters; `%` is kept only where it starts a valid escape.
const QUERY_SAFE: &[u8] = b"-._~!$&'()*+,;=:@/?";

fn encode(bytes: &[u8], safe: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (i, &b) in bytes.iter().enumerate() {
        let escape_start = b == b'%'
            && safe == QUERY_SAFE
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if b.is_ascii_alphanumeric() || safe.contains(&b) || escape_start {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

fn itoa(mut n: u16, buf: &mut [u8; 5]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method};

    fn expand(
        template: &str,
        host: &str,
        path: &str,
        query: Option<&str>,
    ) -> Result<String, RedirectError> {
        let t = RedirectTemplate::parse(template).expect("valid template");
        let headers = HeaderMap::new();
        let req = RequestView {
            method: &Method::GET,
            host: Some(host),
            path,
            query,
            headers: &headers,
            client: [127, 0, 0, 1].into(),
        };
        let origin = Origin {
            protocol: "http",
            port: 8080,
        };
        location(&t, &req, &origin).map(|v| v.to_str().expect("ascii").to_string())
    }

    #[test]
    fn placeholders() {
        assert_eq!(
            expand(
                "https://#{host}/new#{path}?#{query}",
                "Example.COM:8080",
                "/old/x",
                Some("a=1")
            ),
            Ok("https://example.com/new/old/x?a=1".into())
        );
        assert_eq!(
            expand(
                "#{protocol}://#{host}:#{port}#{path}",
                "a.example",
                "/p",
                None
            ),
            Ok("http://a.example:8080/p".into())
        );
        assert_eq!(
            expand("/x?#{query}", "h", "/", None),
            Ok("/x".into()),
            "empty query takes its `?`"
        );
        assert_eq!(
            expand("https://[::1]/#{path}", "[::1]:80", "/a", None),
            Ok("https://[::1]/a".into())
        );
    }

    #[test]
    fn path_cannot_become_an_authority() {
        for (path, want) in [
            ("//evil.com", "/evil.com"),
            ("/%2F%2Fevil.com", "/evil.com"),
            ("/%2f/evil.com", "/evil.com"),
            ("/\\evil.com", "/evil.com"),
            ("/%5C%5Cevil.com", "/evil.com"),
            ("/a/../../evil.com", "/evil.com"),
            ("/", "/"),
        ] {
            assert_eq!(
                expand("/#{path}", "h", path, None).as_deref(),
                Ok(want),
                "{path}"
            );
        }
        assert_eq!(
            expand("https://example.com#{path}", "h", "//evil.com/x", None),
            Ok("https://example.com/evil.com/x".into())
        );
    }

    #[test]
    fn crlf_and_other_bytes_are_escaped() {
        assert_eq!(
            expand("/n#{path}", "h", "/a%0D%0ASet-Cookie:%20x=1", None),
            Ok("/n/a%0D%0ASet-Cookie:%20x=1".into())
        );
        assert_eq!(
            expand("/n?#{query}", "h", "/", Some("a=%0d%0a&b=<x>\"#")),
            Ok("/n?a=%0d%0a&b=%3Cx%3E%22%23".into())
        );
        assert_eq!(
            expand("/n#{path}", "h", "/caf%C3%A9 x", None),
            Ok("/n/caf%C3%A9%20x".into())
        );
        assert_eq!(
            expand("/n?#{query}", "h", "/", Some("100%")),
            Ok("/n?100%25".into())
        );
    }

    #[test]
    fn client_host_must_be_a_plain_name() {
        for host in ["evil.com/x", "a b", "", "[::1", "a\"b", "x.com\\y"] {
            assert_eq!(
                expand("https://#{host}/", host, "/", None),
                Err(RedirectError::InvalidHost),
                "{host:?}"
            );
        }
        assert_eq!(
            expand("https://#{host}/", "user@evil.com", "/", None),
            Err(RedirectError::InvalidHost)
        );
        assert_eq!(
            expand("https://#{host}/", "good.com:1", "/", None),
            Ok("https://good.com/".into())
        );
    }

    #[test]
    fn port_formats() {
        assert_eq!(itoa(0, &mut [0; 5]), "0");
        assert_eq!(itoa(65535, &mut [0; 5]), "65535");
    }
}

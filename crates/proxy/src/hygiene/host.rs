//! Which host a request is for, decided once and strictly (RFC 9112 §3.2,
//! RFC 9113 §8.3.1), so that the rules and the target can never see two answers.
//!
//! Data path, no I/O. An HTTP/1.1 request needs exactly one `Host` field; HTTP/1.0
//! may have none, never two. HTTP/2 needs `:authority` or one `host` field, and
//! when it has both they must name the same host. A host is a DNS name or IP
//! literal with an optional port: `a.example, b.example`, spaces, userinfo and
//! percent-encoding are refused, since targets read them differently (first item,
//! last item, up to the `@`). An absolute-form request target's authority wins over
//! `Host`, as RFC 9112 §3.2.2 says, and becomes the `Host` the target gets
//! (`forward/headers.rs`).

use http::header::HOST;
use http::{HeaderMap, Uri, Version};

/// Why a request's host was refused (each a 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    Missing,
    Duplicate,
    Invalid,
    /// HTTP/2's `:authority` and `host` name different hosts.
    Conflicting,
}

impl HostError {
    pub fn reason(self) -> &'static str {
        match self {
            HostError::Missing => "missing_host",
            HostError::Duplicate => "duplicate_host",
            HostError::Invalid => "invalid_host",
            HostError::Conflicting => "conflicting_host",
        }
    }
}

/// Check the request's host fields.
pub fn check(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), HostError> {
    let mut fields = headers.get_all(HOST).iter();
    let first = fields.next();
    if fields.next().is_some() {
        return Err(HostError::Duplicate);
    }
    let authority = uri.authority();
    if let Some(a) = authority {
        if !valid(a.as_str().as_bytes()) {
            return Err(HostError::Invalid);
        }
    }
    match (first, authority) {
        (None, None) if version == Version::HTTP_10 || version == Version::HTTP_09 => Ok(()),
        (None, None) => Err(HostError::Missing),
        (Some(h), _) if !valid(h.as_bytes()) => Err(HostError::Invalid),
        (Some(h), Some(a)) if version == Version::HTTP_2 => {
            if h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes()) {
                Ok(())
            } else {
                Err(HostError::Conflicting)
            }
        }
        _ => Ok(()),
    }
}

/// `host [":" port]`: a registered name (letters, digits, `-`, `.`, `_`, `~`), an
/// IPv4 address, or an IPv6 literal in brackets; the port digits only.
fn valid(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(end) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &value[1..end];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        (&value[..=end], &value[end + 1..])
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, &value[value.len()..]),
        }
    };
    let name_ok = host.first() == Some(&b'[')
        || (!host.is_empty()
            && host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')));
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    name_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(hosts: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for h in hosts {
            map.append(HOST, HeaderValue::from_str(h).expect("value"));
        }
        map
    }

    fn origin() -> Uri {
        Uri::from_static("/")
    }

    #[test]
    fn http11_needs_exactly_one_valid_host() {
        let v = Version::HTTP_11;
        assert_eq!(check(v, &origin(), &headers(&["a.example"])), Ok(()));
        assert_eq!(check(v, &origin(), &headers(&["a.example:8080"])), Ok(()));
        assert_eq!(check(v, &origin(), &headers(&["[::1]:80"])), Ok(()));
        assert_eq!(check(v, &origin(), &headers(&["10.0.0.1"])), Ok(()));
        assert_eq!(check(v, &origin(), &headers(&[])), Err(HostError::Missing));
        assert_eq!(
            check(v, &origin(), &headers(&["a.example", "b.example"])),
            Err(HostError::Duplicate)
        );
        for bad in [
            "a.example, b.example",
            "a.example b",
            "user@a.example",
            "a.example:80x",
            "a%2eexample",
            "",
            ":80",
            "[::1",
            "a.example:123456",
        ] {
            assert_eq!(
                check(v, &origin(), &headers(&[bad])),
                Err(HostError::Invalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn http10_may_go_without() {
        assert_eq!(check(Version::HTTP_10, &origin(), &headers(&[])), Ok(()));
        assert_eq!(
            check(Version::HTTP_10, &origin(), &headers(&["a", "b"])),
            Err(HostError::Duplicate)
        );
    }

    #[test]
    fn http2_authority_or_host_and_never_two_hosts() {
        let v = Version::HTTP_2;
        let with = Uri::from_static("https://a.example/x");
        assert_eq!(check(v, &with, &headers(&[])), Ok(()));
        assert_eq!(check(v, &with, &headers(&["A.example"])), Ok(()));
        assert_eq!(
            check(v, &with, &headers(&["b.example"])),
            Err(HostError::Conflicting)
        );
        assert_eq!(check(v, &origin(), &headers(&["a.example"])), Ok(()));
        assert_eq!(check(v, &origin(), &headers(&[])), Err(HostError::Missing));
        assert_eq!(
            check(v, &origin(), &headers(&["a.example", "b.example"])),
            Err(HostError::Duplicate)
        );
        let userinfo = Uri::from_static("https://u@a.example/x");
        assert_eq!(check(v, &userinfo, &headers(&[])), Err(HostError::Invalid));
    }

    #[test]
    fn absolute_form_wins_over_host() {
        let abs = Uri::from_static("http://a.example/x");
        assert_eq!(
            check(Version::HTTP_11, &abs, &headers(&["b.example"])),
            Ok(())
        );
        assert_eq!(check(Version::HTTP_11, &abs, &headers(&[])), Ok(()));
    }
}

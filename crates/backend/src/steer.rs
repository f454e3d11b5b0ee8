//! The query parameters that steer one response: `status=CODE`, `delay_ms=N`, `bytes=N`,
//! `set_cookie=NAME=VALUE` (the response sets that cookie, as an application starting
//! a session does).
//!
//! Data path, parsed per request straight from the raw query string without allocating.
//! Values are plain numbers or a cookie's `name=value`, so no percent-decoding is needed; unknown parameters are
//! ignored (they are echoed back like any query) and a repeated one counts its last
//! value. A value that does not parse is the client's mistake and becomes a `400` with a
//! one-line reason, never a panic.

use std::time::Duration;

use http::{HeaderValue, StatusCode};

/// What the query asks of this response.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Steer {
    /// Respond with this status instead of `200`.
    pub(crate) status: Option<StatusCode>,
    /// Wait this long before responding.
    pub(crate) delay: Duration,
    /// Respond with a body of exactly this many bytes instead of the echo.
    pub(crate) bytes: Option<u64>,
    /// A `Set-Cookie` field for the response.
    pub(crate) set_cookie: Option<HeaderValue>,
}

impl Steer {
    /// Parses the steering parameters out of a raw query string.
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut steer = Self::default();
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "status" => steer.status = Some(parse_status(value)?),
                "delay_ms" => steer.delay = Duration::from_millis(parse_number(key, value)?),
                "bytes" => steer.bytes = Some(parse_number(key, value)?),
                "set_cookie" => steer.set_cookie = Some(parse_cookie(value)?),
                _ => {}
            }
        }
        Ok(steer)
    }
}

fn parse_number(key: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("bad {key}={value}: expected a non-negative integer"))
}

/// `name=value`, where neither holds `;`, a space or a control character.
fn parse_cookie(value: &str) -> Result<HeaderValue, String> {
    let ok = value
        .split_once('=')
        .is_some_and(|(name, _)| !name.is_empty())
        && value.bytes().all(|b| b.is_ascii_graphic() && b != b';');
    ok.then(|| HeaderValue::from_str(value).ok())
        .flatten()
        .ok_or_else(|| format!("bad set_cookie={value}: expected NAME=VALUE"))
}

/// A final status: informational (1xx) codes cannot end a response.
fn parse_status(value: &str) -> Result<StatusCode, String> {
    value
        .parse::<u16>()
        .ok()
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| format!("bad status={value}: expected a status code from 200 to 599"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_unrelated_queries_steer_nothing() {
        assert_eq!(Steer::parse(None), Ok(Steer::default()));
        assert_eq!(Steer::parse(Some("")), Ok(Steer::default()));
        assert_eq!(Steer::parse(Some("a=1&b&&c=")), Ok(Steer::default()));
    }

    #[test]
    fn all_parameters_parse_and_the_last_one_wins() {
        let steer = Steer::parse(Some(
            "status=503&delay_ms=20&x=y&bytes=10&status=418&set_cookie=SESSIONID=a=b",
        ));
        assert_eq!(
            steer,
            Ok(Steer {
                status: Some(StatusCode::IM_A_TEAPOT),
                delay: Duration::from_millis(20),
                bytes: Some(10),
                set_cookie: Some(HeaderValue::from_static("SESSIONID=a=b")),
            })
        );
    }

    #[test]
    fn bad_values_are_reported() {
        for query in [
            "status=abc",
            "status=",
            "status=99",
            "status=600",
            "status=101",
            "delay_ms=-1",
            "delay_ms=1.5",
            "bytes=lots",
            "bytes=99999999999999999999999",
            "set_cookie=",
            "set_cookie=novalue",
            "set_cookie==x",
            "set_cookie=a=b;Path=/",
        ] {
            let err = Steer::parse(Some(query)).expect_err(query);
            assert!(err.starts_with("bad "), "{query}: {err}");
        }
    }
}

//! A listener's limits on slow clients (SPEC §13, issue 25): how long a request
//! body may take to arrive (`request_body_timeout`, with `request_body_min_rate`
//! so that a large upload at a steady pace is never cut) and how long a response
//! may wait on a client that does not read it (`response_send_timeout`). Their
//! model and their decoding, which reports every error with its path and position
//! like the rest of the config. (`header_read_timeout` and `idle_timeout` are the
//! listener's older keys, read in `parse.rs`.)
//!
//! Control path only. The proxy enforces them on the data path
//! (`proxy::upstream::body` for bodies, `proxy::frontend::connection` for sends).

use std::time::Duration;

use serde::Serialize;

use crate::decode::{self as d, Errors, Fields};
use crate::{duration, size};

/// Slow-client limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ClientTimeouts {
    /// How long ballast waits, in all, for the bytes of one request body (time
    /// spent waiting on the target to take them does not count), extended by one
    /// second for every `request_body_min_rate` bytes received.
    #[serde(serialize_with = "duration::serialize")]
    pub request_body_timeout: Duration,
    /// Bytes per second that earn a body one more second; 0: none (the whole
    /// body must arrive within `request_body_timeout`).
    #[serde(serialize_with = "serialize_rate")]
    pub request_body_min_rate: u64,
    /// A connection whose client accepts no byte of what ballast writes to it for
    /// this long is closed.
    #[serde(serialize_with = "duration::serialize")]
    pub response_send_timeout: Duration,
}

impl ClientTimeouts {
    /// Apache's mod_reqtimeout gives a body 20 s and NGINX's `client_body_timeout`
    /// 60 s between reads; 30 s in all is generous to a real client and short
    /// for one that trickles.
    pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
    /// 1 KiB/s: a phone on a poor 2G link sends faster; a trickle of a byte
    /// every few seconds earns nothing (mod_reqtimeout's `MinRate` is 500 B/s).
    pub const DEFAULT_REQUEST_BODY_MIN_RATE: u64 = 1024;
    /// NGINX's `send_timeout` is 60 s between writes; 30 s without a byte
    /// taken is far beyond any client that is reading.
    pub const DEFAULT_RESPONSE_SEND_TIMEOUT: Duration = Duration::from_secs(30);
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
    pub const MAX_MIN_RATE: u64 = 1024 * 1024 * 1024;
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        ClientTimeouts {
            request_body_timeout: Self::DEFAULT_REQUEST_BODY_TIMEOUT,
            request_body_min_rate: Self::DEFAULT_REQUEST_BODY_MIN_RATE,
            response_send_timeout: Self::DEFAULT_RESPONSE_SEND_TIMEOUT,
        }
    }
}

const RATE_ALLOWED: &str =
    "a size per second: B/s, KiB/s or MiB/s (e.g. \"1KiB/s\"; \"0B/s\": none)";

/// Parse `"1KiB/s"`, `"500B/s"`, `"0B/s"`.
pub fn parse_rate(text: &str) -> Option<u64> {
    let n = size::parse(text.trim().strip_suffix("/s")?)?;
    u64::try_from(n).ok()
}

/// The shortest exact spelling of a rate in the config's grammar.
pub fn format_rate(n: u64) -> String {
    format!("{}/s", size::format(n as usize))
}

fn serialize_rate<S: serde::Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rate(*n))
}

/// Read the slow-client keys of the listener table `f`.
pub fn decode_client_timeouts(f: &mut Fields<'_>, errs: &mut Errors) -> Option<ClientTimeouts> {
    let bounds = (Duration::from_millis(1), ClientTimeouts::MAX_TIMEOUT);
    let mut timeout =
        |key: &'static str, default: Duration, errs: &mut Errors| match f.optional(key) {
            None => Some(default),
            Some(n) => d::duration_in(n, &f.path(key), bounds.0, bounds.1, errs),
        };
    let body = timeout(
        "request_body_timeout",
        ClientTimeouts::DEFAULT_REQUEST_BODY_TIMEOUT,
        errs,
    );
    let send = timeout(
        "response_send_timeout",
        ClientTimeouts::DEFAULT_RESPONSE_SEND_TIMEOUT,
        errs,
    );
    let rate = match f.optional("request_body_min_rate") {
        None => Some(ClientTimeouts::DEFAULT_REQUEST_BODY_MIN_RATE),
        Some(n) => {
            let path = f.path("request_body_min_rate");
            let s = d::string(n, &path, errs)?;
            match parse_rate(&s) {
                Some(r) if r <= ClientTimeouts::MAX_MIN_RATE => Some(r),
                Some(r) => {
                    errs.at(
                        &path,
                        n.pos,
                        format!(
                            "rate {} is out of range; allowed: 0B/s to {}",
                            format_rate(r),
                            format_rate(ClientTimeouts::MAX_MIN_RATE)
                        ),
                    );
                    None
                }
                None => {
                    errs.at(
                        &path,
                        n.pos,
                        format!("invalid rate {s:?}; expected {RATE_ALLOWED}"),
                    );
                    None
                }
            }
        }
    };
    Some(ClientTimeouts {
        request_body_timeout: body?,
        request_body_min_rate: rate?,
        response_send_timeout: send?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_round_trip() {
        for (text, n) in [
            ("0B/s", 0),
            ("500B/s", 500),
            ("1KiB/s", 1024),
            ("2MiB/s", 2 << 20),
        ] {
            assert_eq!(parse_rate(text), Some(n), "{text}");
            assert_eq!(format_rate(n), text);
        }
        for bad in ["", "1KiB", "1KiB/m", "1kb/s", "/s", "-1B/s", "1.5KiB/s"] {
            assert_eq!(parse_rate(bad), None, "{bad:?}");
        }
    }
}

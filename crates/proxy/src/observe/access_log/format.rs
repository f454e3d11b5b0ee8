//! How a record becomes a line, written straight into the worker's buffer: the
//! JSON object of SPEC §10 or the demo's short terminal line.
//!
//! The JSON is written by hand, field by field, because it is on the request
//! path: serde_json's derived serializer spent about 5,000 instructions a record
//! (every value through its generic serializer, socket addresses through
//! `Display` and a string adapter), as much as a third of what ballast spends
//! on a small request. Here keys are constants, numbers go through `itoa` and
//! `zmij` (the integer and float formatters serde_json itself uses, so the
//! numbers read exactly as before), IPv4 addresses are written digit by digit,
//! and a string needing no escape is copied as is; one that does goes through
//! serde_json, so escaping stays exactly what it was (a unit test compares the
//! two on every field). Nothing here allocates.

use std::cell::Cell;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::AccessRecord;

/// The record as one JSON object (no newline).
pub fn json(r: &AccessRecord, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(&time(r.time));
    out.extend_from_slice(b"\",\"listener\":");
    string(out, &r.listener);
    out.extend_from_slice(b",\"client\":");
    address(out, Some(r.client));
    out.extend_from_slice(b",\"target_group\":");
    opt_string(out, r.target_group.as_deref());
    out.extend_from_slice(b",\"target\":");
    address(out, r.target);
    out.extend_from_slice(b",\"method\":");
    string(out, r.method.as_str());
    out.extend_from_slice(b",\"path\":");
    string(out, &r.path);
    out.extend_from_slice(b",\"status\":");
    integer(out, Some(r.status));
    out.extend_from_slice(b",\"target_status\":");
    integer(out, r.target_status);
    out.extend_from_slice(b",\"request_processing_time\":");
    seconds(out, r.request_processing_time);
    out.extend_from_slice(b",\"target_processing_time\":");
    seconds(out, r.target_processing_time);
    out.extend_from_slice(b",\"response_processing_time\":");
    seconds(out, r.response_processing_time);
    out.extend_from_slice(b",\"bytes_in\":");
    integer(out, Some(r.bytes_in));
    out.extend_from_slice(b",\"bytes_out\":");
    integer(out, Some(r.bytes_out));
    out.extend_from_slice(b",\"user_agent\":");
    opt_string(out, r.user_agent.as_ref().and_then(|v| v.to_str().ok()));
    out.extend_from_slice(b",\"request_id\":");
    opt_string(out, r.request_id.as_ref().and_then(|v| v.to_str().ok()));
    out.extend_from_slice(b",\"error_reason\":");
    opt_string(out, r.error_reason);
    out.extend_from_slice(b",\"desync_classification\":");
    opt_string(out, r.desync_classification);
    out.extend_from_slice(b",\"desync_reason\":");
    opt_string(out, r.desync_reason);
    out.extend_from_slice(b",\"rule_priority\":");
    integer(out, r.rule_priority);
    out.extend_from_slice(b",\"tls_protocol\":");
    opt_string(out, r.tls_protocol);
    out.extend_from_slice(b",\"tls_cipher\":");
    opt_string(out, r.tls_cipher);
    out.extend_from_slice(if r.complete {
        b",\"complete\":true}"
    } else {
        b",\"complete\":false}"
    });
}

/// `rfc3339::millis_bytes`, with the date and time of day kept per thread
/// from one call to the next: only the milliseconds change within a second.
pub(super) fn time(t: SystemTime) -> [u8; 24] {
    thread_local! {
        static LAST: Cell<(u64, [u8; 24])> = const { Cell::new((u64::MAX, [0; 24])) };
    }
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let (second, mut text) = LAST.get();
    if second != since.as_secs() {
        text = crate::observe::rfc3339::millis_bytes(t);
        LAST.set((since.as_secs(), text));
        return text;
    }
    let ms = since.subsec_millis();
    text[20] = b'0' + (ms / 100) as u8;
    text[21] = b'0' + (ms / 10 % 10) as u8;
    text[22] = b'0' + (ms % 10) as u8;
    text
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string: copied between quotes when nothing in it needs an escape
/// (a quote, a backslash, a control character), else through serde_json.
fn string(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        if serde_json::to_writer(&mut *out, s).is_err() {
            out.extend_from_slice(b"null");
        }
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Whether `bytes` hold a byte below 0x20, a `"` or a `\\`. Eight bytes at a
/// time (the classic "has a zero byte" bit trick): a byte-by-byte scan of the
/// path, user agent and request id was a fifth of the log's cost.
pub(super) fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero, or (second form) below `n`, where the result has
    // its high bit set; only for bytes without their own high bit, hence `!x`.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let hit = |x: u64| {
        below(x, 0x20) | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\')))
            != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if hit(u64::from_le_bytes(word)) {
            return true;
        }
    }
    // The last bytes, padded with a letter that needs no escape.
    let rest = chunks.remainder();
    let mut word = [b'a'; 8];
    word[..rest.len()].copy_from_slice(rest);
    hit(u64::from_le_bytes(word))
}

fn integer<I: itoa::Integer>(out: &mut Vec<u8>, n: Option<I>) {
    match n {
        Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// A duration in seconds, as serde_json writes the `f64` of `as_secs_f64`
/// (which the log has always done): the shortest decimal that reads back as
/// that float. For a duration from 10 µs to 1 s (almost all of them) that is
/// the nanoseconds as a decimal fraction with its trailing zeros dropped:
/// `n / 1e9` is one correctly rounded division, and two decimals of at most 15
/// significant digits never round to the same float, so no shorter decimal
/// reads back as it. Those are written digit by digit; the rest (and the
/// exponent form serde_json uses below 1e-5) go through `zmij`, serde_json's own
/// float formatter. A unit test holds the two to the same output.
pub(super) fn seconds(out: &mut Vec<u8>, d: Option<Duration>) {
    let Some(d) = d else {
        out.extend_from_slice(b"null");
        return;
    };
    let nanos = d.subsec_nanos();
    if d.as_secs() != 0 || nanos < 10_000 {
        out.extend_from_slice(
            zmij::Buffer::new()
                .format_finite(d.as_secs_f64())
                .as_bytes(),
        );
        return;
    }
    // "0." and nine digits, the nanoseconds right-aligned, trailing zeros dropped.
    let mut text = *b"0.000000000";
    let mut itoa = itoa::Buffer::new();
    let digits = itoa.format(nanos).as_bytes();
    text[11 - digits.len()..].copy_from_slice(digits);
    let mut end = text.len();
    while text[end - 1] == b'0' {
        end -= 1;
    }
    out.extend_from_slice(&text[..end]);
}

/// `"127.0.0.1:5000"`, `"[::1]:5000"` (as `SocketAddr`'s `Display`), or null.
fn address(out: &mut Vec<u8>, a: Option<SocketAddr>) {
    match a {
        Some(SocketAddr::V4(a)) => {
            // `"255.255.255.255:65535"` at most: 23 bytes, built on the stack
            // and copied once.
            let mut text = [0u8; 23];
            text[0] = b'"';
            let mut at = 1;
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    text[at] = b'.';
                    at += 1;
                }
                if octet >= 100 {
                    text[at] = b'0' + octet / 100;
                    at += 1;
                }
                if octet >= 10 {
                    text[at] = b'0' + octet / 10 % 10;
                    at += 1;
                }
                text[at] = b'0' + octet % 10;
                at += 1;
            }
            text[at] = b':';
            at += 1;
            let mut itoa = itoa::Buffer::new();
            let port = itoa.format(a.port()).as_bytes();
            text[at..at + port.len()].copy_from_slice(port);
            at += port.len();
            text[at] = b'"';
            out.extend_from_slice(&text[..=at]);
        }
        Some(a) => {
            let _ = write!(out, "\"{a}\"");
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// `12:34:56.789 200 GET /hello -> 127.0.0.1:40001 1.8ms` (time of day in UTC;
/// the target is `-` when ballast answered itself, with its reason after it).
pub fn terminal(r: &AccessRecord, out: &mut Vec<u8>) {
    let time = crate::observe::rfc3339::millis_bytes(r.time);
    out.extend_from_slice(&time[11..23]);
    let _ = write!(out, " {} {} {} -> ", r.status, r.method, r.path);
    match r.target {
        Some(t) => {
            let _ = write!(out, "{t}");
        }
        None => out.push(b'-'),
    }
    let parts = [
        r.request_processing_time,
        r.target_processing_time,
        r.response_processing_time,
    ];
    if parts.iter().all(Option::is_none) {
        out.extend_from_slice(b" -");
    } else {
        let ms = parts
            .iter()
            .flatten()
            .map(Duration::as_secs_f64)
            .sum::<f64>()
            * 1000.0;
        let _ = if ms < 10.0 {
            write!(out, " {ms:.1}ms")
        } else {
            write!(out, " {ms:.0}ms")
        };
    }
    if let Some(reason) = r.error_reason {
        let _ = write!(out, " ({reason})");
    }
}

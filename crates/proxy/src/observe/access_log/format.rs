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
use std::time::SystemTime;

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
    float(out, r.request_processing_time);
    out.extend_from_slice(b",\"target_processing_time\":");
    float(out, r.target_processing_time);
    out.extend_from_slice(b",\"response_processing_time\":");
    float(out, r.response_processing_time);
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
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        if below(x, 0x20) | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\')))
            != 0
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

fn integer<I: itoa::Integer>(out: &mut Vec<u8>, n: Option<I>) {
    match n {
        Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// Seconds as serde_json writes an `f64` (null if not finite, as it does).
fn float(out: &mut Vec<u8>, f: Option<f64>) {
    match f {
        Some(f) if f.is_finite() => {
            out.extend_from_slice(zmij::Buffer::new().format_finite(f).as_bytes());
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// `"127.0.0.1:5000"`, `"[::1]:5000"` (as `SocketAddr`'s `Display`), or null.
fn address(out: &mut Vec<u8>, a: Option<SocketAddr>) {
    match a {
        Some(SocketAddr::V4(a)) => {
            out.push(b'"');
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
            out.push(b':');
            out.extend_from_slice(itoa::Buffer::new().format(a.port()).as_bytes());
            out.push(b'"');
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
        let ms = parts.iter().flatten().sum::<f64>() * 1000.0;
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

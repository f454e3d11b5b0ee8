//! RFC 3339 timestamps in UTC, for the access log and the client-certificate
//! validity header. Written by hand because it is one small algorithm: days since
//! the epoch to a civil date by Howard Hinnant's `civil_from_days`
//! (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).

use std::time::SystemTime;

/// `2026-11-21T21:30:05.123Z`: with milliseconds.
pub fn millis(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let (date, time) = civil(since.as_secs() as i64);
    format!("{date}T{time}.{:03}Z", since.subsec_millis())
}

/// `2026-11-21T21:30:05.123456Z`: with microseconds (cluster mode's
/// registrations, whose times are compared across nodes of one machine).
pub fn micros(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let (date, time) = civil(since.as_secs() as i64);
    format!("{date}T{time}.{:06}Z", since.subsec_micros())
}

/// `2026-11-21T21:30:05Z`: whole seconds, from Unix seconds (may be negative).
pub fn seconds(unix: i64) -> String {
    let (date, time) = civil(unix);
    format!("{date}T{time}Z")
}

/// (`YYYY-MM-DD`, `HH:MM:SS`) of Unix seconds.
fn civil(unix: i64) -> (String, String) {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (year, month, day) = date(days);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        ),
    )
}

/// (year, month, day) of days since 1970-01-01.
fn date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `millis` without allocating: the 24 bytes of `2026-11-21T21:30:05.123Z`, for
/// the access log, which writes one per request. Years past 9999 are written as
/// 9999 (never reached by a clock that is right).
pub fn millis_bytes(t: SystemTime) -> [u8; 24] {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let unix = since.as_secs() as i64;
    let (year, month, day) = date(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year.clamp(0, 9999));
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, secs / 3600);
    put(14, 2, secs % 3600 / 60);
    put(17, 2, secs % 60);
    put(20, 3, i64::from(since.subsec_millis()));
    out
}

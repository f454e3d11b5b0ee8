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

/// `2026-11-21T21:30:05Z`: whole seconds, from Unix seconds (may be negative).
pub fn seconds(unix: i64) -> String {
    let (date, time) = civil(unix);
    format!("{date}T{time}Z")
}

/// (`YYYY-MM-DD`, `HH:MM:SS`) of Unix seconds.
fn civil(unix: i64) -> (String, String) {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
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

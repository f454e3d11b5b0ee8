//! Durations as the config writes them: an integer and a unit, `"500ms"`, `"5s"`,
//! `"2m"`, `"1h"`. Written by hand because the accepted grammar is part of the
//! product's contract and its error message must say exactly what is allowed.

use std::time::Duration;

pub const ALLOWED: &str = "an integer and a unit: ms, s, m or h (e.g. \"500ms\", \"5s\", \"2m\")";

/// Parse `"500ms"`, `"5s"`, `"2m"`, `"1h"`.
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    Some(d)
}

/// The shortest exact spelling of a duration in the config's grammar.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Serialize a duration in the config's own grammar, so a config read back from the
/// admin API can be written to a file unchanged.
pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn rejects_what_is_not_allowed() {
        for bad in ["", "5", "s", "5 s", "1.5s", "-1s", "5sec", "5d"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn format_round_trips() {
        for d in ["500ms", "5s", "2m", "1h", "0s", "90s"] {
            assert_eq!(format(parse(d).expect("valid")), d);
        }
    }
}

//! Byte sizes as the config writes them: `"64KiB"`, `"1MiB"`, `"512B"` (binary
//! units, as NGINX and HAProxy size their buffers). Written by hand, as durations
//! are: the accepted grammar and its error message are part of the contract.

pub const ALLOWED: &str = "an integer and a unit: B, KiB or MiB (e.g. \"64KiB\")";

/// Parse `"512B"`, `"64KiB"`, `"1MiB"`.
pub fn parse(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: usize = digits.parse().ok()?;
    match unit {
        "B" => Some(n),
        "KiB" => n.checked_mul(1024),
        "MiB" => n.checked_mul(1024 * 1024),
        _ => None,
    }
}

/// The shortest exact spelling of a size in the config's grammar.
pub fn format(n: usize) -> String {
    if n > 0 && n.is_multiple_of(1024 * 1024) {
        format!("{}MiB", n / (1024 * 1024))
    } else if n > 0 && n.is_multiple_of(1024) {
        format!("{}KiB", n / 1024)
    } else {
        format!("{n}B")
    }
}

/// Serialize a size in the config's own grammar (read back unchanged).
pub fn serialize<S: serde::Serializer>(n: &usize, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip() {
        for (text, n) in [("512B", 512), ("64KiB", 65536), ("1MiB", 1 << 20)] {
            assert_eq!(parse(text), Some(n));
            assert_eq!(format(n), text);
        }
        for bad in [
            "",
            "64",
            "64kb",
            "KiB",
            "-1KiB",
            "1.5KiB",
            "99999999999999999999MiB",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(format(1536), "1536B");
    }
}

//! The config reader (`ballast_config::Config::from_toml`) and the unit strings
//! of its values: durations, sizes, rates (`limits.rs`).

use ballast_config::limits::Rate;
use ballast_config::{duration, size, Config};

/// Any text: read without panicking; an accepted config survives the admin
/// API's round trip (its JSON form reads back as the same config), and every
/// error names a place that exists.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text) {
        Ok(config) => {
            let json = serde_json::to_value(&config).expect("a config serialises");
            match Config::from_json(&json) {
                Ok(again) => assert_eq!(again, config, "JSON round trip"),
                Err(e) => panic!("its own JSON form refused: {e}\n{json:#}"),
            }
        }
        Err(errors) => {
            let lines = text.lines().count().max(1);
            for e in &errors.0 {
                if let Some(pos) = e.pos {
                    assert!(pos.line >= 1 && pos.line as usize <= lines + 1, "{e}");
                }
                let _ = e.to_string();
            }
        }
    }
}

/// A duration, a size and a rate read from the same text: each accepted value
/// prints in the config's grammar and reads back the same; a rate is accepted
/// exactly when it is `N/s`, `N/m` or `N/h` with N from 1 to `u32::MAX`.
pub fn units(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(d) = duration::parse(text) {
        let printed = duration::format(d);
        assert_eq!(
            duration::parse(&printed),
            Some(d),
            "{text:?} printed {printed:?}"
        );
    }
    if let Some(n) = size::parse(text) {
        let printed = size::format(n);
        assert_eq!(
            size::parse(&printed),
            Some(n),
            "{text:?} printed {printed:?}"
        );
    }
    let expected = text.split_once('/').and_then(|(n, unit)| {
        let digits = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
        let count = n.trim_start_matches('0');
        let fits = count.len() < 10 || (count.len() == 10 && count <= "4294967295");
        (digits && fits && !count.is_empty() && matches!(unit, "s" | "m" | "h"))
            .then_some((count.parse::<u32>().ok()?, unit))
    });
    let rate = Rate::parse(text);
    assert_eq!(
        rate.map(|r| (r.count, r.to_string())),
        expected.map(|(count, unit)| (count, format!("{count}/{unit}"))),
        "{text:?}"
    );
    if let Some(r) = rate {
        assert_eq!(Rate::parse(&r.to_string()), Some(r));
    }
}

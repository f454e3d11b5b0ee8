//! Config of issue 21 §2: a target group's `load_shedding`, each valid form read
//! and round-tripped, each misuse rejected with its path, line and column.

use std::time::Duration;

use super::tests::VALID;
use super::*;
use crate::shedding::LoadShedding;
use crate::test_fixture::assert_error;

const ANCHOR: &str = "connect_timeout = \"500ms\"";

/// VALID with `line` added to its first target group, and that line's number.
fn with(line: &str) -> (String, u32) {
    let at = VALID.find(ANCHOR).expect("anchor");
    let number = VALID[..at].matches('\n').count() as u32 + 2;
    (VALID.replace(ANCHOR, &format!("{ANCHOR}\n{line}")), number)
}

#[test]
fn latency_target_alone_takes_the_defaults_and_round_trips() {
    let (text, _) = with("load_shedding = { latency_target = \"50ms\" }");
    let c = Config::from_toml(&text).expect("valid");
    let ls = c.target_groups[0].load_shedding.expect("on");
    assert_eq!(
        ls,
        LoadShedding {
            latency_target: Duration::from_millis(50),
            window: LoadShedding::DEFAULT_WINDOW,
            min_limit: LoadShedding::DEFAULT_MIN_LIMIT,
            max_limit: LoadShedding::DEFAULT_MAX_LIMIT,
        }
    );
    let json = serde_json::to_value(&c).expect("serialize");
    assert_eq!(
        json["target_groups"][0]["load_shedding"]["latency_target"],
        "50ms"
    );
    assert_eq!(Config::from_json(&json).expect("reads back"), c);
}

#[test]
fn every_knob_is_read_and_omitted_means_off() {
    let (text, _) = with(
        "load_shedding = { latency_target = \"25ms\", window = \"250ms\", min_limit = 2, max_limit = 64 }",
    );
    let ls = Config::from_toml(&text).expect("valid").target_groups[0]
        .load_shedding
        .expect("on");
    assert_eq!(ls.window, Duration::from_millis(250));
    assert_eq!((ls.min_limit, ls.max_limit), (2, 64));
    let off = Config::from_toml(VALID).expect("valid");
    assert!(off.target_groups[0].load_shedding.is_none());
    let json = serde_json::to_value(&off).expect("serialize");
    assert!(json["target_groups"][0].get("load_shedding").is_none());
}

#[test]
fn misuse_is_rejected_with_path_line_and_column() {
    let cases = [
        (
            "load_shedding = {}",
            "target_groups[0].load_shedding.latency_target",
            "missing required field",
        ),
        (
            "load_shedding = \"50ms\"",
            "target_groups[0].load_shedding",
            "expected",
        ),
        (
            "load_shedding = { latency_target = \"fast\" }",
            "target_groups[0].load_shedding.latency_target",
            "invalid duration",
        ),
        (
            "load_shedding = { latency_target = \"0ms\" }",
            "target_groups[0].load_shedding.latency_target",
            "allowed: 1ms to 1m",
        ),
        (
            "load_shedding = { latency_target = \"50ms\", window = \"1ms\" }",
            "target_groups[0].load_shedding.window",
            "allowed: 10ms to 10s",
        ),
        (
            "load_shedding = { latency_target = \"50ms\", min_limit = 0 }",
            "target_groups[0].load_shedding.min_limit",
            "allowed: 1 to 100000",
        ),
        (
            "load_shedding = { latency_target = \"50ms\", max_limit = 200000 }",
            "target_groups[0].load_shedding.max_limit",
            "allowed: 1 to 100000",
        ),
        (
            "load_shedding = { latency_target = \"50ms\", min_limit = 50, max_limit = 10 }",
            "target_groups[0].load_shedding.min_limit",
            "above max_limit",
        ),
        (
            "load_shedding = { latency_target = \"50ms\", max_limit = 2 }",
            "target_groups[0].load_shedding.max_limit",
            "min_limit 4 is above max_limit 2",
        ),
        (
            "load_shedding = { latency_target = \"50ms\", target = \"1s\" }",
            "target_groups[0].load_shedding.target",
            "unknown",
        ),
    ];
    for (line, path, needle) in cases {
        let (text, number) = with(line);
        let errs = Config::from_toml(&text).expect_err(line);
        assert_error(&errs, path, number, needle);
        let e = errs.iter().find(|e| e.path == path).expect("the error");
        // The column points into the added line, at the offending value or table.
        let column = e.column.expect("a column") as usize;
        assert!(
            column > 1 && column <= line.len(),
            "{line}: column {column}"
        );
    }
}

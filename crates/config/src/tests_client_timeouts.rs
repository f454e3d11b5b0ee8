//! Config of a listener's slow-client keys (issue 25 §3): defaults, each valid
//! form read and round-tripped, each misuse rejected with its path, line and column.

use std::time::Duration;

use super::tests::VALID;
use super::*;
use crate::client_timeouts::ClientTimeouts;
use crate::test_fixture::assert_error;

const ANCHOR: &str = "idle_timeout = \"2m\"";

fn with(lines: &str) -> String {
    VALID.replace(ANCHOR, &format!("{ANCHOR}\n{lines}"))
}

fn added_line() -> u32 {
    let at = VALID.find(ANCHOR).expect("anchor");
    VALID[..at].matches('\n').count() as u32 + 2
}

#[test]
fn omitted_keys_take_the_defaults() {
    let c = Config::from_toml(VALID).expect("valid");
    let t = c.listeners[0].client_timeouts;
    assert_eq!(t, ClientTimeouts::default());
    assert_eq!(t.request_body_timeout, Duration::from_secs(30));
    assert_eq!(t.request_body_min_rate, 1024);
    assert_eq!(t.response_send_timeout, Duration::from_secs(30));
    let json = serde_json::to_value(&c).expect("serialise");
    assert_eq!(json["listeners"][0]["request_body_timeout"], "30s");
    assert_eq!(json["listeners"][0]["request_body_min_rate"], "1KiB/s");
    assert_eq!(json["listeners"][0]["response_send_timeout"], "30s");
}

#[test]
fn every_key_is_read_and_round_trips() {
    let text = with(
        "request_body_timeout = \"5s\"\nrequest_body_min_rate = \"0B/s\"\nresponse_send_timeout = \"1500ms\"",
    );
    let c = Config::from_toml(&text).expect("valid");
    let t = c.listeners[0].client_timeouts;
    assert_eq!(t.request_body_timeout, Duration::from_secs(5));
    assert_eq!(t.request_body_min_rate, 0);
    assert_eq!(t.response_send_timeout, Duration::from_millis(1500));
    let json = serde_json::to_value(&c).expect("serialise");
    assert_eq!(Config::from_json(&json).expect("reads back"), c);
}

#[test]
fn misuse_is_rejected_with_path_and_line() {
    let line = added_line();
    let cases = [
        (
            "request_body_timeout = \"0s\"",
            "listeners[0].request_body_timeout",
            "duration 0s is out of range; allowed: 1ms to 1h",
        ),
        (
            "request_body_timeout = 30",
            "listeners[0].request_body_timeout",
            "expected a string",
        ),
        (
            "response_send_timeout = \"2h\"",
            "listeners[0].response_send_timeout",
            "duration 2h is out of range; allowed: 1ms to 1h",
        ),
        (
            "response_send_timeout = \"soon\"",
            "listeners[0].response_send_timeout",
            "invalid duration \"soon\"",
        ),
        (
            "request_body_min_rate = \"1KiB\"",
            "listeners[0].request_body_min_rate",
            "invalid rate \"1KiB\"; expected a size per second",
        ),
        (
            "request_body_min_rate = 1024",
            "listeners[0].request_body_min_rate",
            "expected a string",
        ),
        (
            "request_body_min_rate = \"2048MiB/s\"",
            "listeners[0].request_body_min_rate",
            "rate 2048MiB/s is out of range; allowed: 0B/s to 1024MiB/s",
        ),
    ];
    for (lines, path, needle) in cases {
        let errs = Config::from_toml(&with(lines)).expect_err(lines);
        assert_error(&errs, path, line, needle);
        let e = errs.iter().find(|e| e.path == path).expect("error");
        assert!(e.column.is_some(), "{lines}: no column in {e:?}");
    }
}

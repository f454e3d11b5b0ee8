//! Config of a listener's admission keys (issue 21 §3): each valid form read and
//! round-tripped, each misuse rejected with its path, line and column.

use super::tests::VALID;
use super::*;
use crate::admission::*;
use crate::test_fixture::assert_error;

const ANCHOR: &str = "idle_timeout = \"2m\"";

/// VALID with `lines` added to its listener.
fn with(lines: &str) -> String {
    VALID.replace(ANCHOR, &format!("{ANCHOR}\n{lines}"))
}

/// The line of the first added line in `with(lines)`.
fn added_line() -> u32 {
    let at = VALID.find(ANCHOR).expect("anchor");
    VALID[..at].matches('\n').count() as u32 + 2
}

fn rejected(lines: &str) -> ConfigErrors {
    Config::from_toml(&with(lines)).expect_err("must be rejected")
}

fn cidr(s: &str) -> Cidr {
    Cidr::parse(s).expect("cidr")
}

#[test]
fn every_key_is_read_and_round_trips() {
    let text = with(
        r#"allow = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
deny = ["10.9.0.0/16"]
max_connections = 10000
max_connections_per_client = 100
proxy_protocol = { trusted = ["127.0.0.1/32"] }"#,
    );
    let c = Config::from_toml(&text).expect("valid");
    let a = &c.listeners[0].admission;
    assert_eq!(
        a.allow,
        [
            cidr("10.0.0.0/8"),
            cidr("2001:db8::/32"),
            cidr("192.0.2.7/32")
        ]
    );
    assert_eq!(a.deny, [cidr("10.9.0.0/16")]);
    assert_eq!(a.max_connections, Some(10_000));
    assert_eq!(a.max_connections_per_client, Some(100));
    assert_eq!(
        a.proxy_protocol,
        Some(ProxyProtocol {
            trusted: vec![cidr("127.0.0.1/32")]
        })
    );
    assert!(!a.is_open());
    let json = serde_json::to_value(&c).expect("serialise");
    assert_eq!(json["listeners"][0]["allow"][2], "192.0.2.7/32");
    assert_eq!(Config::from_json(&json).expect("reads back"), c);
}

#[test]
fn omitted_keys_and_an_empty_allow_list_admit_everyone() {
    let c = Config::from_toml(VALID).expect("valid");
    assert!(c.listeners[0].admission.is_open());
    let c = Config::from_toml(&with("allow = []\ndeny = []")).expect("valid");
    assert!(c.listeners[0].admission.is_open());
    let json = serde_json::to_value(&c).expect("serialise");
    assert!(json["listeners"][0].get("allow").is_none(), "{json}");
}

#[test]
fn misuse_is_rejected_with_path_and_line() {
    let line = added_line();
    let cases = [
        (
            "allow = [\"10.0.0.1/8\"]",
            "listeners[0].allow[0]",
            "host bits set; did you mean \"10.0.0.0/8\"?",
        ),
        (
            "deny = [\"10.0.0.0/8\", \"10.0.0/8\"]",
            "listeners[0].deny[1]",
            "invalid CIDR \"10.0.0/8\"",
        ),
        (
            "deny = [\"2001:db8::/129\"]",
            "listeners[0].deny[0]",
            "invalid prefix length in \"2001:db8::/129\"; allowed: 0 to 128",
        ),
        (
            "allow = \"10.0.0.0/8\"",
            "listeners[0].allow",
            "expected a list of ranges such as [\"10.0.0.0/8\"], found a string",
        ),
        ("allow = [10]", "listeners[0].allow[0]", "expected a string"),
        (
            "max_connections = 0",
            "listeners[0].max_connections",
            "0 is out of range; allowed: 1 to 10000000",
        ),
        (
            "max_connections_per_client = \"100\"",
            "listeners[0].max_connections_per_client",
            "expected an integer from 1 to 10000000",
        ),
        (
            "proxy_protocol = { trusted = [] }",
            "listeners[0].proxy_protocol.trusted",
            "empty list; give at least one range",
        ),
        (
            "proxy_protocol = {}",
            "listeners[0].proxy_protocol.trusted",
            "missing required field `trusted`",
        ),
        (
            "proxy_protocol = { trusted = [\"127.0.0.1/32\"], version = 2 }",
            "listeners[0].proxy_protocol.version",
            "unknown field `version`; allowed: trusted",
        ),
        (
            "proxy_protocol = { trusted = [\"127.0.0.1/8\"] }",
            "listeners[0].proxy_protocol.trusted[0]",
            "did you mean \"127.0.0.0/8\"?",
        ),
        (
            "proxy_protocol = \"v2\"",
            "listeners[0].proxy_protocol",
            "expected a table",
        ),
        (
            "alow = [\"10.0.0.0/8\"]",
            "listeners[0].alow",
            "unknown field `alow` (did you mean `allow`?)",
        ),
    ];
    for (lines, path, needle) in cases {
        let errs = rejected(lines);
        assert_error(&errs, path, line, needle);
    }
}

#[test]
fn errors_name_the_column_of_the_bad_range() {
    let errs = rejected("deny = [\"10.0.0.0/8\", \"10.0.0.1/8\"]");
    let e = errs
        .iter()
        .find(|e| e.path == "listeners[0].deny[1]")
        .unwrap_or_else(|| panic!("{errs}"));
    // The second string starts after `deny = ["10.0.0.0/8", `.
    assert_eq!(e.column, Some(23), "{errs}");
}

#[test]
fn every_bad_range_is_reported_at_once() {
    let errs = rejected("allow = [\"10.0.0.1/8\", \"x\"]\ndeny = [\"1.2.3.4/40\"]");
    for path in [
        "listeners[0].allow[0]",
        "listeners[0].allow[1]",
        "listeners[0].deny[0]",
    ] {
        assert!(errs.iter().any(|e| e.path == path), "{path}: {errs}");
    }
}

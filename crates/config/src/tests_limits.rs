//! Config of issue 21 §1: named rate limits, their keys and their attachment to
//! listeners and rules; each valid form read and round-tripped, each misuse
//! rejected with its path, line and column.

use std::time::Duration;

use super::tests::VALID;
use super::*;
use crate::limits::*;
use crate::test_fixture::{assert_error, Fixture};

const LIMITS: &str = r#"
[[rate_limits]]
name = "per-ip"
key = "client_ip"
rate = "100/s"
burst = 200

[[rate_limits]]
name = "per-key"
key = ["client_ip", { header = "X-Api-Key" }]
rate = "6000/m"
scope = "local"
max_keys = 1024

[[rate_limits]]
name = "per-net"
key = { client_ip_prefix = 24 }
rate = "10/h"

[[rate_limits]]
name = "per-rule"
key = "rule"
rate = "50/s"
"#;

/// VALID with the limits above, `per-ip` on the listener and a rule with `per-rule`.
pub(crate) fn text() -> String {
    let listener = "idle_timeout = \"2m\"";
    let with_refs = VALID.replacen(
        listener,
        &format!(
            "{listener}\nrate_limits = [\"per-ip\", \"per-key\"]\n\
             rules = [{{ priority = 1, conditions = [{{ path = \"/api/*\" }}], \
             action = {{ type = \"forward\", target_group = \"web\" }}, rate_limits = [\"per-rule\", \"per-net\"] }}]"
        ),
        1,
    );
    format!("{LIMITS}{with_refs}")
}

#[test]
fn every_form_is_read_and_round_trips() {
    let c = Config::from_toml(&text()).expect("valid");
    let ip = c.rate_limit("per-ip").expect("per-ip");
    assert_eq!(ip.key, [KeyPart::ClientIp]);
    assert_eq!(
        ip.rate,
        Rate {
            count: 100,
            per: Duration::from_secs(1)
        }
    );
    assert_eq!(ip.burst, 200);
    assert_eq!(ip.scope, Scope::Local);
    assert_eq!(ip.max_keys, RateLimitConfig::DEFAULT_MAX_KEYS);
    let key = c.rate_limit("per-key").expect("per-key");
    assert_eq!(
        key.key,
        [KeyPart::ClientIp, KeyPart::Header("x-api-key".into())]
    );
    assert!(key.keys_on_header());
    // Default burst: one second's worth of the rate, at least one.
    assert_eq!(key.burst, 100);
    assert_eq!(key.max_keys, 1024);
    let net = c.rate_limit("per-net").expect("per-net");
    assert_eq!(net.key, [KeyPart::ClientIpPrefix { v4: 24, v6: 64 }]);
    assert_eq!(net.burst, 1);
    assert_eq!(c.rate_limit("per-rule").expect("rule").key, [KeyPart::Rule]);
    assert_eq!(c.listeners[0].rate_limits, ["per-ip", "per-key"]);
    assert_eq!(c.listeners[0].rules[0].rate_limits, ["per-rule", "per-net"]);

    let json = serde_json::to_value(&c).expect("serialize");
    assert_eq!(json["rate_limits"][0]["rate"], "100/s");
    assert_eq!(json["rate_limits"][0]["key"], "client_ip");
    assert_eq!(json["rate_limits"][1]["key"][1]["header"], "x-api-key");
    assert_eq!(json["rate_limits"][2]["key"]["client_ip_prefix"], 24);
    assert_eq!(Config::from_json(&json).expect("reads back"), c);
}

#[test]
fn none_configured_is_nothing() {
    let c = Config::from_toml(VALID).expect("valid");
    assert!(c.rate_limits.is_empty() && c.listeners[0].rate_limits.is_empty());
    let json = serde_json::to_value(&c).expect("serialize");
    assert!(json.get("rate_limits").is_none());
}

#[test]
fn ipv6_prefix_is_chosen_beside_the_ipv4_one() {
    let t = text().replace(
        "{ client_ip_prefix = 24 }",
        "{ client_ip_prefix = 16, ipv6_prefix = 48 }",
    );
    let c = Config::from_toml(&t).expect("valid");
    assert_eq!(
        c.rate_limit("per-net").expect("per-net").key,
        [KeyPart::ClientIpPrefix { v4: 16, v6: 48 }]
    );
}

/// `text()` with one replacement must be rejected at `path`, on the line of
/// `at` (a text of the broken config), saying `needle`.
fn rejected(from: &str, to: &str, path: &str, at: &str, needle: &str) {
    let t = text();
    assert!(t.contains(from), "patch {from:?} not in the text");
    let broken = t.replacen(from, to, 1);
    let errs = Config::from_toml(&broken).expect_err("must be rejected");
    let line = Fixture(Box::leak(broken.into_boxed_str())).line_of(at);
    assert_error(&errs, path, line, needle);
    assert!(
        errs.iter().all(|e| e.column.is_some()),
        "every error has a column: {errs}"
    );
}

#[test]
fn a_bad_rate_is_refused_with_what_is_allowed() {
    for bad in [
        "100/fortnight",
        "100",
        "/s",
        "0/s",
        "-1/s",
        "1.5/s",
        "100/ s",
    ] {
        rejected(
            "rate = \"100/s\"",
            &format!("rate = \"{bad}\""),
            "rate_limits[0].rate",
            &format!("rate = \"{bad}\""),
            "expected N/s, N/m or N/h",
        );
    }
    rejected(
        "rate = \"100/s\"",
        "rate = \"2000000/s\"",
        "rate_limits[0].rate",
        "2000000/s",
        "above 1000000 a second",
    );
    rejected(
        "rate = \"100/s\"",
        "rate = 100",
        "rate_limits[0].rate",
        "rate = 100",
        "expected a string",
    );
}

#[test]
fn burst_scope_and_max_keys_are_bounded() {
    rejected(
        "burst = 200",
        "burst = 0",
        "rate_limits[0].burst",
        "burst = 0",
        "out of range",
    );
    rejected(
        "rate = \"10/h\"",
        "rate = \"10/h\"\nburst = 10000",
        "rate_limits[2].burst",
        "burst = 10000",
        "longer than 30 days to refill",
    );
    rejected(
        "scope = \"local\"",
        "scope = \"global\"",
        "rate_limits[1].scope",
        "scope = \"global\"",
        "set [cluster] redis",
    );
    rejected(
        "scope = \"local\"",
        "scope = \"fleet\"",
        "rate_limits[1].scope",
        "scope = \"fleet\"",
        "allowed: \"local\"",
    );
    rejected(
        "max_keys = 1024",
        "max_keys = 10",
        "rate_limits[1].max_keys",
        "max_keys = 10",
        "allowed: 64 to 16777216",
    );
}

#[test]
fn a_bad_key_is_refused() {
    let cases = [
        (
            "key = \"client_ip\"",
            "key = \"ip\"",
            "rate_limits[0].key",
            "unknown key \"ip\"",
        ),
        (
            "key = \"client_ip\"",
            "key = []",
            "rate_limits[0].key",
            "empty key",
        ),
        (
            "key = \"client_ip\"",
            "key = 3",
            "rate_limits[0].key",
            "found an integer",
        ),
        (
            "key = \"client_ip\"",
            "key = {}",
            "rate_limits[0].key",
            "empty key part",
        ),
        (
            "key = \"client_ip\"",
            "key = { header = \"X Api\" }",
            "rate_limits[0].key.header",
            "invalid header name",
        ),
        (
            "key = \"client_ip\"",
            "key = { client_ip_prefix = 33 }",
            "rate_limits[0].key.client_ip_prefix",
            "allowed: 1 to 32",
        ),
        (
            "key = \"client_ip\"",
            "key = { client_ip_prefix = 24, ipv6_prefix = 129 }",
            "rate_limits[0].key.ipv6_prefix",
            "allowed: 1 to 128",
        ),
        (
            "key = \"client_ip\"",
            "key = { ipv6_prefix = 64 }",
            "rate_limits[0].key.ipv6_prefix",
            "goes with client_ip_prefix",
        ),
        (
            "key = \"client_ip\"",
            "key = { header = \"a\", client_ip_prefix = 8 }",
            "rate_limits[0].key",
            "one key part per table",
        ),
        (
            "key = \"client_ip\"",
            "key = { cookie = \"a\" }",
            "rate_limits[0].key.cookie",
            "unknown field `cookie`",
        ),
        (
            "key = \"client_ip\"",
            "key = [\"rule\", \"rule\"]",
            "rate_limits[0].key[1]",
            "listed twice",
        ),
        (
            "key = \"client_ip\"",
            "key = [\"client_ip\", { client_ip_prefix = 8 }]",
            "rate_limits[0].key",
            "address is in the key twice",
        ),
    ];
    for (from, to, path, needle) in cases {
        rejected(from, to, path, to, needle);
    }
}

#[test]
fn names_must_be_unique_and_references_must_resolve() {
    rejected(
        "name = \"per-key\"",
        "name = \"per-ip\"",
        "rate_limits[1].name",
        "name = \"per-ip\"\nkey = [",
        "duplicate rate limit \"per-ip\"",
    );
    rejected(
        "rate_limits = [\"per-ip\", \"per-key\"]",
        "rate_limits = [\"per-ip\", \"per-kee\"]",
        "listeners[0].rate_limits[1]",
        "\"per-kee\"",
        "unknown rate limit \"per-kee\"; defined rate limits: \"per-ip\", \"per-key\"",
    );
    rejected(
        "rate_limits = [\"per-rule\", \"per-net\"]",
        "rate_limits = [\"per-rule\", \"nope\"]",
        "listeners[0].rules[0].rate_limits[1]",
        "\"nope\"",
        "unknown rate limit \"nope\"",
    );
    rejected(
        "rate_limits = [\"per-ip\", \"per-key\"]",
        "rate_limits = [\"per-ip\", \"per-ip\"]",
        "listeners[0].rate_limits[1]",
        "rate_limits = [\"per-ip\", \"per-ip\"]",
        "listed twice",
    );
    rejected(
        "rate_limits = [\"per-ip\", \"per-key\"]",
        "rate_limits = \"per-ip\"",
        "listeners[0].rate_limits",
        "rate_limits = \"per-ip\"",
        "expected an array",
    );
    rejected(
        "name = \"per-ip\"",
        "nmae = \"per-ip\"",
        "rate_limits[0].nmae",
        "nmae = \"per-ip\"",
        "did you mean `name`?",
    );
}

#[test]
fn json_errors_name_the_field() {
    let c = Config::from_toml(&text()).expect("valid");
    let mut json = serde_json::to_value(&c).expect("serialize");
    json["rate_limits"][0]["rate"] = "100/fortnight".into();
    let errs = Config::from_json(&json).expect_err("rejected");
    assert!(
        errs.iter()
            .any(|e| e.path == "rate_limits[0].rate" && e.message.contains("100/fortnight")),
        "{errs}"
    );
}

//! Config of targets by DNS name: `address = "HOST:PORT"`, `srv`, a group's `dns`
//! refresh bounds and `[server] dns_servers`, read and round-tripped; each misuse
//! rejected with its path and line. No lookup is made: a valid name is valid config.

use std::time::Duration;

use super::tests::VALID;
use super::*;
use crate::test_fixture::{assert_error, Fixture};

const TARGETS: &str =
    r#"targets = [{ address = "127.0.0.1:9001" }, { address = "[::1]:9002", weight = 2 }]"#;

/// VALID with its targets line replaced and `extra` added to the group.
fn with(targets: &str, extra: &str) -> String {
    VALID.replacen(TARGETS, &format!("targets = [{targets}]\n{extra}"), 1)
}

fn line_of_targets() -> u32 {
    Fixture(VALID).line_of(TARGETS)
}

#[test]
fn names_srv_and_refresh_bounds_are_read_and_round_trip() {
    let text = with(
        r#"{ address = "127.0.0.1:9001" }, { address = "App.Internal:8080", weight = 3 }, { srv = "_http._tcp.app.internal" }"#,
        r#"dns = { min_ttl = "1s", max_ttl = "10m" }"#,
    )
    .replace(
        "drain_timeout = \"10s\"",
        "drain_timeout = \"10s\"\ndns_servers = [\"127.0.0.1:5353\", \"[::1]:53\"]",
    );
    let c = Config::from_toml(&text).expect("valid");
    let g = &c.target_groups[0];
    assert_eq!(
        g.targets[1].address,
        TargetAddress::Host {
            host: "app.internal".into(),
            port: 8080
        }
    );
    assert_eq!(g.targets[1].weight, 3);
    assert_eq!(
        g.targets[2].address,
        TargetAddress::Srv("_http._tcp.app.internal".into())
    );
    assert!(g.has_dns_targets());
    assert_eq!(
        g.dns,
        DnsRefresh {
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(600)
        }
    );
    assert_eq!(c.server.dns_servers.len(), 2);
    let json = serde_json::to_value(&c).expect("serialize");
    let targets = &json["target_groups"][0]["targets"];
    assert_eq!(
        targets[1],
        serde_json::json!({"address": "app.internal:8080", "weight": 3})
    );
    assert_eq!(targets[2]["srv"], "_http._tcp.app.internal");
    assert_eq!(json["target_groups"][0]["dns"]["max_ttl"], "10m");
    assert_eq!(json["server"]["dns_servers"][0], "127.0.0.1:5353");
    assert_eq!(Config::from_json(&json).expect("reads back"), c);
}

#[test]
fn defaults_cost_nothing_and_are_not_written() {
    let c = Config::from_toml(VALID).expect("valid");
    assert_eq!(c.target_groups[0].dns, DnsRefresh::DEFAULT);
    assert_eq!(DnsRefresh::DEFAULT.min_ttl, Duration::from_secs(5));
    assert_eq!(DnsRefresh::DEFAULT.max_ttl, Duration::from_secs(300));
    assert!(!c.target_groups[0].has_dns_targets());
    assert!(c.server.dns_servers.is_empty());
    let json = serde_json::to_value(&c).expect("serialize");
    assert!(json["target_groups"][0].get("dns").is_none());
    assert!(json["server"].get("dns_servers").is_none());
    // A lone bound past the other's default moves that default along: a default
    // the user never wrote is never the cause of an error.
    let refresh = |dns: &str| {
        let text = with(r#"{ address = "localhost:9002" }"#, dns);
        Config::from_toml(&text).expect("valid").target_groups[0].dns
    };
    let long = refresh(r#"dns = { min_ttl = "10m" }"#);
    assert_eq!(
        (long.min_ttl, long.max_ttl),
        (Duration::from_secs(600), Duration::from_secs(600))
    );
    let short = refresh(r#"dns = { max_ttl = "1s" }"#);
    assert_eq!(
        (short.min_ttl, short.max_ttl),
        (Duration::from_secs(1), Duration::from_secs(1))
    );
}

#[test]
fn misuse_is_rejected_with_path_and_line() {
    let line = line_of_targets();
    let cases = [
        (
            r#"{ address = "app.internal" }"#,
            "",
            "target_groups[0].targets[0].address",
            "or HOST:PORT",
        ),
        (
            r#"{ address = "10.0.0.300:80" }"#,
            "",
            "target_groups[0].targets[0].address",
            "invalid address",
        ),
        (
            r#"{ address = "a..b:80" }"#,
            "",
            "target_groups[0].targets[0].address",
            "invalid address",
        ),
        (
            r#"{ srv = "not a name" }"#,
            "",
            "target_groups[0].targets[0].srv",
            "invalid SRV name",
        ),
        (
            r#"{ address = "app.internal:80", srv = "_http._tcp.app.internal" }"#,
            "",
            "target_groups[0].targets[0].srv",
            "either address or srv",
        ),
        (
            r#"{ weight = 2 }"#,
            "",
            "target_groups[0].targets[0].address",
            "missing required key address (or srv)",
        ),
        (
            r#"{ address = "app.internal:80" }, { address = "App.Internal:80" }"#,
            "",
            "target_groups[0].targets[1].address",
            "duplicate target app.internal:80",
        ),
    ];
    for (targets, extra, path, needle) in cases {
        let errs = Config::from_toml(&with(targets, extra)).expect_err(targets);
        assert_error(&errs, path, line, needle);
    }
    let dns_cases = [
        (
            r#"dns = { min_ttl = "10ms" }"#,
            "target_groups[0].dns.min_ttl",
            "100ms to 24h",
        ),
        (
            r#"dns = { max_ttl = "25h" }"#,
            "target_groups[0].dns.max_ttl",
            "100ms to 24h",
        ),
        (
            r#"dns = { min_ttl = "1m", max_ttl = "30s" }"#,
            "target_groups[0].dns.max_ttl",
            "must not be shorter than min_ttl 1m",
        ),
        (
            r#"dns = { ttl = "1s" }"#,
            "target_groups[0].dns.ttl",
            "unknown",
        ),
    ];
    for (extra, path, needle) in dns_cases {
        let errs =
            Config::from_toml(&with(r#"{ address = "app.internal:80" }"#, extra)).expect_err(extra);
        assert_error(&errs, path, line + 1, needle);
    }
    let errs = Fixture(VALID).broken(
        "drain_timeout = \"10s\"",
        "drain_timeout = \"10s\"\ndns_servers = [\"resolver.local:53\"]",
    );
    assert_error(&errs, "server.dns_servers[0]", 4, "expected IP:PORT");
}

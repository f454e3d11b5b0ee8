//! Config of issue 20: a target group's resilience keys, each valid form read and
//! round-tripped, each misuse rejected with its path and line.

use std::time::Duration;

use super::tests::VALID;
use super::*;
use crate::resilience::*;
use crate::test_fixture::assert_error;

const ANCHOR: &str = "connect_timeout = \"500ms\"";

/// VALID with `lines` added to its first target group.
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

#[test]
fn every_key_is_read_and_round_trips() {
    let text = with(
        r#"anomaly_mitigation = "monitor"
slow_start = "45s"
stickiness = { type = "app_cookie", cookie_name = "SESSIONID", duration = "1h" }
retry = { attempts = 3, on = ["connect_failure", "reset", "503", "timeout"], budget = { ratio = 0.25, min_per_second = 5 } }
circuit_breaker = { max_requests = 100, max_retries = 3 }"#,
    );
    let c = Config::from_toml(&text).expect("valid");
    let g = &c.target_groups[0];
    assert_eq!(g.anomaly_mitigation, AnomalyMitigation::Monitor);
    assert_eq!(g.slow_start, Duration::from_secs(45));
    assert_eq!(
        g.stickiness,
        Some(Stickiness {
            kind: StickinessKind::AppCookie {
                cookie_name: "SESSIONID".into()
            },
            duration: Duration::from_secs(3600),
        })
    );
    let retry = g.retry.as_ref().expect("retry");
    assert_eq!(retry.attempts, 3);
    assert_eq!(
        retry.on,
        [
            RetryOn::ConnectFailure,
            RetryOn::Reset,
            RetryOn::Status(503),
            RetryOn::Timeout
        ]
    );
    assert_eq!(retry.budget.ratio, 0.25);
    assert_eq!(retry.budget.min_per_second, 5);
    assert_eq!(g.circuit_breaker.max_requests, Some(100));
    assert_eq!(g.circuit_breaker.max_connections, None);
    let json = serde_json::to_value(&c).expect("serialize");
    assert_eq!(json["target_groups"][0]["retry"]["on"][2], "503");
    assert_eq!(json["target_groups"][0]["stickiness"]["type"], "app_cookie");
    assert_eq!(Config::from_json(&json).expect("reads back"), c);
}

#[test]
fn defaults_are_off() {
    let c = Config::from_toml(VALID).expect("valid");
    let g = &c.target_groups[0];
    assert_eq!(g.anomaly_mitigation, AnomalyMitigation::Off);
    assert_eq!(g.slow_start, Duration::ZERO);
    assert!(g.stickiness.is_none() && g.retry.is_none() && g.circuit_breaker.is_off());
    let retry = Config::from_toml(&with("retry = {}")).expect("valid");
    let r = retry.target_groups[0].retry.clone().expect("retry");
    assert_eq!(r.attempts, RetryPolicy::DEFAULT_ATTEMPTS);
    assert_eq!(r.on, [RetryOn::ConnectFailure, RetryOn::Reset]);
    assert_eq!(r.budget, RetryPolicy::DEFAULT_BUDGET);
}

#[test]
fn misuse_is_rejected_with_path_and_line() {
    let line = added_line();
    let cases = [
        (
            "anomaly_mitigation = \"yes\"",
            "target_groups[0].anomaly_mitigation",
            "allowed: \"off\", \"on\", \"monitor\"",
        ),
        (
            "slow_start = \"10s\"",
            "target_groups[0].slow_start",
            "30s to 15m",
        ),
        (
            "slow_start = \"16m\"",
            "target_groups[0].slow_start",
            "30s to 15m",
        ),
        (
            "stickiness = { type = \"app_cookie\", duration = \"1h\" }",
            "target_groups[0].stickiness",
            "needs cookie_name",
        ),
        (
            "stickiness = { type = \"lb_cookie\", cookie_name = \"X\", duration = \"1h\" }",
            "target_groups[0].stickiness.cookie_name",
            "only for type = \"app_cookie\"",
        ),
        (
            "stickiness = { type = \"app_cookie\", cookie_name = \"a b\", duration = \"1h\" }",
            "target_groups[0].stickiness.cookie_name",
            "invalid cookie name",
        ),
        (
            "stickiness = { type = \"lb_cookie\" }",
            "target_groups[0].stickiness.duration",
            "missing required field",
        ),
        (
            "stickiness = { type = \"lb_cookie\", duration = \"8d\" }",
            "target_groups[0].stickiness.duration",
            "invalid duration",
        ),
        (
            "retry = { attempts = 9 }",
            "target_groups[0].retry.attempts",
            "allowed: 1 to 5",
        ),
        (
            "retry = { on = [\"404\"] }",
            "target_groups[0].retry.on[0]",
            "unknown retry condition",
        ),
        (
            "retry = { on = [\"reset\", \"reset\"] }",
            "target_groups[0].retry.on[1]",
            "listed twice",
        ),
        (
            "retry = { budget = { ratio = 1.5 } }",
            "target_groups[0].retry.budget.ratio",
            "allowed: 0 to 1",
        ),
        (
            "retry = { budget = { ratio = \"lots\" } }",
            "target_groups[0].retry.budget.ratio",
            "expected a number",
        ),
        (
            "retry = { budget = { burst = 1 } }",
            "target_groups[0].retry.budget.burst",
            "unknown",
        ),
        (
            "circuit_breaker = { max_requests = 0 }",
            "target_groups[0].circuit_breaker.max_requests",
            "allowed: 1 to",
        ),
        (
            "circuit_breaker = { max_request = 5 }",
            "target_groups[0].circuit_breaker.max_request",
            "unknown",
        ),
    ];
    for (lines, path, needle) in cases {
        let errs = rejected(lines);
        assert_error(&errs, path, line, needle);
    }
}

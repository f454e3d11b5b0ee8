//! Config parsing and validation: one valid config read in full, and each kind of bad
//! config rejected with its path, position and message.

use std::time::Duration;

use super::*;
use crate::test_fixture::{assert_error, Fixture};

pub(crate) const VALID: &str = r#"
[server]
drain_timeout = "10s"

[admin]
bind = "127.0.0.1:9901"

[state]
dir = "/tmp/ballast-state"

[access_log]
path = "off"

[[listeners]]
name = "public"
bind = "127.0.0.1:8080"
protocol = "http"
default_action = { type = "forward", target_group = "web" }
idle_timeout = "2m"

[[target_groups]]
name = "web"
algorithm = "least_outstanding_requests"
targets = [{ address = "127.0.0.1:9001" }, { address = "[::1]:9002", weight = 2 }]
connect_timeout = "500ms"

[target_groups.health_check]
path = "/health"
interval = "1s"
timeout = "500ms"
healthy_threshold = 2
unhealthy_threshold = 3
matcher = "200,204"

[target_groups.unhealthy_state_routing]
minimum_healthy_targets = 2
"#;

const F: Fixture = Fixture(VALID);

#[test]
fn valid_config_reads_every_field() {
    let c = Config::from_toml(VALID).expect("valid config");
    assert_eq!(c.server.drain_timeout, Duration::from_secs(10));
    assert_eq!(c.admin.bind.port(), 9901);
    assert_eq!(c.access_log, AccessLogConfig::Off);
    let l = &c.listeners[0];
    assert_eq!(l.name, "public");
    assert_eq!(l.idle_timeout, Duration::from_secs(120));
    assert_eq!(
        l.header_read_timeout,
        ListenerConfig::DEFAULT_HEADER_READ_TIMEOUT
    );
    assert_eq!(l.default_action, Action::forward_to("web"));
    assert!(l.rules.is_empty());
    let g = &c.target_groups[0];
    assert_eq!(g.algorithm, Algorithm::LeastOutstandingRequests);
    assert_eq!(g.targets[1].weight, 2);
    assert_eq!(g.targets[0].weight, 1);
    assert_eq!(g.connect_timeout, Duration::from_millis(500));
    assert_eq!(g.health_check.path, "/health");
    assert_eq!(g.health_check.unhealthy_threshold, 3);
    assert!(g.health_check.matcher.matches(204) && !g.health_check.matcher.matches(302));
    assert_eq!(g.unhealthy_state_routing.minimum_healthy_targets, 2);
}

#[test]
fn minimal_config_takes_defaults() {
    let c = Config::from_toml(
        r#"
[[listeners]]
name = "a"
bind = "127.0.0.1:0"
default_action = { type = "forward", target_group = "g" }
[[target_groups]]
name = "g"
targets = []
"#,
    )
    .expect("valid");
    assert_eq!(c.target_groups[0].algorithm, Algorithm::RoundRobin);
    assert_eq!(
        c.target_groups[0].health_check,
        HealthCheckConfig::default()
    );
    assert_eq!(c.access_log, AccessLogConfig::Stdout);
    assert_eq!(
        c.target_groups[0].deregistration_delay,
        TargetGroupConfig::DEFAULT_DEREGISTRATION_DELAY
    );
}

#[test]
fn deregistration_delay_is_read_and_bounded() {
    let c = Config::from_toml(&VALID.replace(
        "[target_groups.health_check]",
        "deregistration_delay = \"0s\"\n[target_groups.health_check]",
    ))
    .expect("valid");
    assert_eq!(c.target_groups[0].deregistration_delay, Duration::ZERO);
    let errs = F.broken(
        "[target_groups.health_check]",
        "deregistration_delay = \"2h\"\n[target_groups.health_check]",
    );
    assert_eq!(errs.0[0].path, "target_groups[0].deregistration_delay");
}

/// What the admin API serves as JSON must read back as the same config, for every
/// access-log form (the API's GET then PUT must be a no-op).
#[test]
fn json_round_trips() {
    for log in ["", "path = \"off\"", "path = \"/tmp/access.log\""] {
        let text = VALID.replace("path = \"off\"", log);
        let c = Config::from_toml(&text).expect("valid");
        let json = serde_json::to_value(&c).expect("serialize");
        assert_eq!(Config::from_json(&json).expect("reads back"), c, "{json}");
    }
}

#[test]
fn syntax_error_has_line_and_column() {
    let errs = F.broken("name = \"public\"", "name = \"public");
    let e = &errs.0[0];
    assert_eq!(e.line, Some(F.line_of("name = \"public\"")));
    assert!(e.column.is_some());
}

#[test]
fn unknown_key_is_an_error_with_suggestion() {
    let errs = F.broken("interval = \"1s\"", "intreval = \"1s\"");
    assert_error(
        &errs,
        "target_groups[0].health_check.intreval",
        F.line_of("interval = \"1s\""),
        "unknown field `intreval` (did you mean `interval`?)",
    );
    assert!(errs.0[0]
        .message
        .contains("allowed: path, interval, timeout"));
}

#[test]
fn unknown_top_level_table() {
    let errs = F.broken("[server]", "[sever]");
    assert_error(
        &errs,
        "sever",
        F.line_of("[server]"),
        "did you mean `server`?",
    );
}

#[test]
fn wrong_type_names_what_was_found() {
    let errs = F.broken("healthy_threshold = 2", "healthy_threshold = \"2\"");
    assert_error(
        &errs,
        "target_groups[0].health_check.healthy_threshold",
        F.line_of("healthy_threshold = 2"),
        "expected an integer from 1 to 10, found a string",
    );
}

#[test]
fn missing_required_field() {
    let errs = F.broken("name = \"public\"\n", "");
    assert_error(
        &errs,
        "listeners[0].name",
        F.line_of("[[listeners]]"),
        "missing required field `name`",
    );
}

#[test]
fn bad_bind_address() {
    let errs = F.broken("bind = \"127.0.0.1:8080\"", "bind = \"127.0.0.1:99999\"");
    assert_error(
        &errs,
        "listeners[0].bind",
        F.line_of("bind = \"127.0.0.1:8080\""),
        "expected IP:PORT",
    );
}

#[test]
fn bad_duration() {
    let errs = F.broken("idle_timeout = \"2m\"", "idle_timeout = \"2 minutes\"");
    assert_error(
        &errs,
        "listeners[0].idle_timeout",
        F.line_of("idle_timeout"),
        "invalid duration \"2 minutes\"",
    );
}

#[test]
fn unknown_algorithm_lists_choices() {
    let errs = F.broken("least_outstanding_requests", "fastest");
    assert_error(
        &errs,
        "target_groups[0].algorithm",
        F.line_of("least_outstanding_requests"),
        "allowed: \"round_robin\", \"least_outstanding_requests\", \"weighted_random\"",
    );
}

#[test]
fn unknown_target_group_reference() {
    let errs = F.broken("target_group = \"web\"", "target_group = \"wbe\"");
    assert_error(
        &errs,
        "listeners[0].default_action",
        F.line_of("default_action"),
        "unknown target group \"wbe\"; defined target groups: \"web\"",
    );
}

#[test]
fn weight_out_of_range() {
    let errs = F.broken("weight = 2", "weight = 1000");
    assert_error(
        &errs,
        "target_groups[0].targets[1].weight",
        F.line_of("weight = 2"),
        "1000 is out of range; allowed: 0 to 999",
    );
}

#[test]
fn duplicate_target_address() {
    let errs = F.broken("[::1]:9002", "127.0.0.1:9001");
    assert_error(
        &errs,
        "target_groups[0].targets[1].address",
        F.line_of("[::1]:9002"),
        "duplicate target 127.0.0.1:9001",
    );
}

#[test]
fn timeout_not_shorter_than_interval() {
    let errs = F.broken("\ntimeout = \"500ms\"", "\ntimeout = \"1s\"");
    assert_error(
        &errs,
        "target_groups[0].health_check.timeout",
        F.line_of("\ntimeout = \"500ms\"") + 1,
        "must be shorter than interval",
    );
}

#[test]
fn bad_matcher() {
    let errs = F.broken("matcher = \"200,204\"", "matcher = \"299-200\"");
    assert_error(
        &errs,
        "target_groups[0].health_check.matcher",
        F.line_of("matcher"),
        "invalid matcher \"299-200\"",
    );
}

#[test]
fn bad_health_check_path() {
    let errs = F.broken("path = \"/health\"", "path = \"health\"");
    assert_error(
        &errs,
        "target_groups[0].health_check.path",
        F.line_of("path = \"/health\""),
        "expected an absolute path",
    );
}

#[test]
fn duplicate_names_and_binds() {
    let text = format!(
        "{VALID}\n[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:8080\"\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n"
    );
    let errs = Config::from_toml(&text).expect_err("duplicates");
    assert_error(
        &errs,
        "listeners[1].name",
        VALID.lines().count() as u32 + 3,
        "duplicate listener \"public\"; already used by listeners[0]",
    );
    assert_error(
        &errs,
        "listeners[1].bind",
        VALID.lines().count() as u32 + 4,
        "duplicate listener bind address \"127.0.0.1:8080\"",
    );
}

#[test]
fn https_needs_certificates() {
    let errs = F.broken("protocol = \"http\"", "protocol = \"https\"");
    assert_error(
        &errs,
        "listeners[0].certificates",
        F.line_of("[[listeners]]"),
        "missing required field `certificates`",
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let text = VALID
        .replace("least_outstanding_requests", "fastest")
        .replace("idle_timeout = \"2m\"", "idle_timeout = 5")
        .replace("weight = 2", "weight = -1")
        .replace("[state]", "[stat]");
    let errs = Config::from_toml(&text).expect_err("invalid");
    assert_eq!(errs.len(), 4, "{errs}");
    // In file order, as the file is read top to bottom.
    let lines: Vec<_> = errs.iter().map(|e| e.line.unwrap_or(0)).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn json_source_reports_paths_without_positions() {
    let v = serde_json::json!({
        "listeners": [{"name": "a", "bind": "127.0.0.1:1", "default_action": {"type": "forward", "target_group": "g"}}],
        "target_groups": [{"name": "g", "targets": [{"address": "nope"}]}]
    });
    let errs = Config::from_json(&v).expect_err("invalid");
    assert_eq!(errs.0[0].path, "target_groups[0].targets[0].address");
    assert_eq!(errs.0[0].line, None);
}

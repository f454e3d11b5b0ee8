//! Listener rules and actions: a config with every condition and action read in
//! full, and each kind of bad rule rejected with its path, position and message.

use std::time::Duration;

use super::*;
use crate::test_fixture::{assert_error, Fixture};

pub(crate) const VALID: &str = r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:8080"
default_action = { type = "forward", target_group = "web" }

[[listeners.rules]]
priority = 20
conditions = [{ host = ["API.example.com", "*.api.example.com"] }, { path = "/v1/*" }]
action = { type = "forward", target_groups = [{ name = "web", weight = 90 }, { name = "canary", weight = 10 }], stickiness = { enabled = true, duration = "1h" } }

[[listeners.rules]]
priority = 10
conditions = [{ header = { name = "X-Env", values = ["staging", "dev*"] } }, { method = ["GET", "HEAD"] }]
action = { type = "redirect", status = 301, location = "https://#{host}/new#{path}?#{query}" }

[[listeners.rules]]
priority = 30
conditions = [{ query = [{ key = "debug", value = "1" }, { value = "x*" }] }, { source_ip = ["10.0.0.0/8", "2001:db8::/32"] }]
action = { type = "fixed_response", status = 403, body = "no" }

[[target_groups]]
name = "web"
targets = []

[[target_groups]]
name = "canary"
targets = []
"#;

const F: Fixture = Fixture(VALID);

#[test]
fn rules_read_every_field_in_priority_order() {
    let c = Config::from_toml(VALID).expect("valid config");
    let rules = &c.listeners[0].rules;
    let priorities: Vec<u32> = rules.iter().map(|r| r.priority).collect();
    assert_eq!(priorities, [10, 20, 30]);
    assert_eq!(
        rules[1].conditions[0],
        Condition::Host(vec!["api.example.com".into(), "*.api.example.com".into()])
    );
    assert_eq!(
        rules[1].conditions[1],
        Condition::Path(vec!["/v1/*".into()])
    );
    let Action::Forward(fwd) = &rules[1].action else {
        panic!("forward expected")
    };
    assert_eq!(fwd.target_groups[1].name, "canary");
    assert_eq!(fwd.target_groups[1].weight, 10);
    assert_eq!(fwd.stickiness, Some(Duration::from_secs(3600)));
    assert_eq!(
        rules[0].conditions[0],
        Condition::Header {
            name: "x-env".into(),
            values: vec!["staging".into(), "dev*".into()]
        }
    );
    assert!(matches!(
        &rules[0].action,
        Action::Redirect { status: 301, location } if location.as_str() == "https://#{host}/new#{path}?#{query}"
    ));
    let Condition::Query(q) = &rules[2].conditions[0] else {
        panic!("query expected")
    };
    assert_eq!(q[0].key.as_deref(), Some("debug"));
    assert_eq!(q[1].key, None);
    assert_eq!(
        rules[2].action,
        Action::FixedResponse {
            status: 403,
            content_type: "text/plain".into(),
            body: "no".into()
        }
    );
}

#[test]
fn rules_survive_a_json_round_trip() {
    // The admin API serves the config as JSON and takes it back the same way.
    let c = Config::from_toml(VALID).expect("valid config");
    let json = serde_json::to_value(&c).expect("serialize");
    let back = Config::from_json(&json).unwrap_or_else(|e| panic!("{e}\n{json:#}"));
    assert_eq!(back, c);
}

#[test]
fn duplicate_priority() {
    let errs = F.broken("priority = 30", "priority = 20");
    assert_error(
        &errs,
        "listeners[0].rules[2].priority",
        F.line_of("priority = 30"),
        "duplicate priority \"20\"; already used by listeners[0].rules[0].priority",
    );
    assert_eq!(errs.len(), 1, "{errs}");
}

#[test]
fn priority_out_of_range() {
    let errs = F.broken("priority = 30", "priority = 50001");
    assert_error(
        &errs,
        "listeners[0].rules[2].priority",
        F.line_of("priority = 30"),
        "allowed: 1 to 50000",
    );
    let errs = F.broken("priority = 30", "priority = 0");
    assert_error(
        &errs,
        "listeners[0].rules[2].priority",
        F.line_of("priority = 30"),
        "0 is out of range",
    );
}

#[test]
fn unknown_group_in_weighted_forward() {
    let errs = F.broken("name = \"canary\", weight", "name = \"canery\", weight");
    let e = errs.iter().next().expect("one error");
    assert_eq!(e.path, "listeners[0].rules[0].action.target_groups[1].name");
    assert_eq!(e.line, Some(F.line_of("name = \"canary\", weight")));
    assert!(
        e.message.contains(
            "unknown target group \"canery\"; defined target groups: \"web\", \"canary\""
        ),
        "{errs}"
    );
}

#[test]
fn weights_all_zero_and_too_many_groups() {
    let one_left = VALID.replacen("weight = 90", "weight = 0", 1);
    Config::from_toml(&one_left).expect("one weight above 0 is enough");
    let text =
        VALID
            .replacen("weight = 90", "weight = 0", 1)
            .replacen("weight = 10", "weight = 0", 1);
    let errs = Config::from_toml(&text).expect_err("all zero");
    assert_error(
        &errs,
        "listeners[0].rules[0].action.target_groups",
        F.line_of("target_groups = ["),
        "every weight is 0",
    );
    let six = (0..6)
        .map(|i| format!("{{ name = \"g{i}\" }}"))
        .collect::<Vec<_>>()
        .join(", ");
    let errs = F.broken(
        "[{ name = \"web\", weight = 90 }, { name = \"canary\", weight = 10 }]",
        &format!("[{six}]"),
    );
    assert_error(
        &errs,
        "listeners[0].rules[0].action.target_groups",
        F.line_of("target_groups = ["),
        "6 target groups; allowed: 1 to 5",
    );
}

#[test]
fn weight_out_of_range_and_duplicate_group() {
    let errs = F.broken("weight = 90", "weight = 1000");
    assert_error(
        &errs,
        "listeners[0].rules[0].action.target_groups[0].weight",
        F.line_of("weight = 90"),
        "allowed: 0 to 999",
    );
    let errs = F.broken("name = \"canary\", weight", "name = \"web\", weight");
    assert_error(
        &errs,
        "listeners[0].rules[0].action.target_groups[1].name",
        F.line_of("weight = 90"),
        "duplicate target group \"web\"",
    );
}

#[test]
fn stickiness_needs_a_duration_in_range() {
    let errs = F.broken("duration = \"1h\"", "duration = \"8d\"");
    assert_error(
        &errs,
        "listeners[0].rules[0].action.stickiness.duration",
        F.line_of("duration = \"1h\""),
        "invalid duration",
    );
    let errs = F.broken("duration = \"1h\"", "duration = \"200h\"");
    assert_error(
        &errs,
        "listeners[0].rules[0].action.stickiness.duration",
        F.line_of("duration = \"1h\""),
        "out of range; allowed: 1s to 168h",
    );
    let errs = F.broken("enabled = true, duration = \"1h\"", "enabled = true");
    assert_error(
        &errs,
        "listeners[0].rules[0].action.stickiness.duration",
        F.line_of("stickiness"),
        "missing required field `duration`",
    );
    let errs = F.broken("enabled = true", "enabled = \"yes\"");
    assert_error(
        &errs,
        "listeners[0].rules[0].action.stickiness.enabled",
        F.line_of("enabled = true"),
        "expected a boolean, found a string",
    );
}

#[test]
fn empty_conditions() {
    let errs = F.broken(
        "conditions = [{ header = { name = \"X-Env\", values = [\"staging\", \"dev*\"] } }, { method = [\"GET\", \"HEAD\"] }]",
        "conditions = []",
    );
    assert_error(
        &errs,
        "listeners[0].rules[1].conditions",
        F.line_of("conditions = [{ header"),
        "a rule needs at least one condition",
    );
    let errs = F.broken("{ path = \"/v1/*\" }", "{}");
    assert_error(
        &errs,
        "listeners[0].rules[0].conditions[1]",
        F.line_of("{ path = \"/v1/*\" }"),
        "empty condition; give one of: host, path, header, method, query, source_ip",
    );
}

#[test]
fn unknown_condition_kind() {
    let errs = F.broken("{ path = \"/v1/*\" }", "{ paht = \"/v1/*\" }");
    assert_error(
        &errs,
        "listeners[0].rules[0].conditions[1].paht",
        F.line_of("{ path = \"/v1/*\" }"),
        "unknown field `paht` (did you mean `path`?); allowed: host, path, header, method, query, source_ip",
    );
    assert_eq!(errs.len(), 1, "no second 'empty condition' error: {errs}");
    let errs = F.broken(
        "{ path = \"/v1/*\" }",
        "{ path = \"/v1/*\", method = \"GET\" }",
    );
    assert_error(
        &errs,
        "listeners[0].rules[0].conditions[1].method",
        F.line_of("{ path = \"/v1/*\" }"),
        "one kind per condition",
    );
}

#[test]
fn bad_globs() {
    let errs = F.broken("{ path = \"/v1/*\" }", "{ path = [\"/ok\", \"v1/*\"] }");
    assert_error(
        &errs,
        "listeners[0].rules[0].conditions[1].path[1]",
        F.line_of("{ path = \"/v1/*\" }"),
        "a path pattern starts with `/`",
    );
    let errs = F.broken("\"*.api.example.com\"", "\"api.example.com:443\"");
    assert_error(
        &errs,
        "listeners[0].rules[0].conditions[0].host[1]",
        F.line_of("*.api.example.com"),
        "without its port",
    );
    let errs = F.broken("\"dev*\"", "\"dev**\"");
    assert_error(
        &errs,
        "listeners[0].rules[1].conditions[0].header.values[1]",
        F.line_of("dev*"),
        "`**` is not a pattern here",
    );
    let errs = F.broken("value = \"1\"", "value = \"\"");
    assert_error(
        &errs,
        "listeners[0].rules[2].conditions[0].query[0].value",
        F.line_of("value = \"1\""),
        "invalid pattern \"\": empty",
    );
    let errs = F.broken("{ path = \"/v1/*\" }", "{ path = [] }");
    assert_error(
        &errs,
        "listeners[0].rules[0].conditions[1].path",
        F.line_of("{ path = \"/v1/*\" }"),
        "empty list",
    );
}

#[test]
fn bad_header_name_and_method() {
    let errs = F.broken("name = \"X-Env\"", "name = \"X Env\"");
    assert_error(
        &errs,
        "listeners[0].rules[1].conditions[0].header.name",
        F.line_of("X-Env"),
        "invalid header name \"X Env\"",
    );
    let errs = F.broken("[\"GET\", \"HEAD\"]", "[\"GET\", \"head\"]");
    assert_error(
        &errs,
        "listeners[0].rules[1].conditions[1].method[1]",
        F.line_of("HEAD"),
        "methods are case-sensitive: \"HEAD\"?",
    );
}

#[test]
fn bad_cidrs() {
    let errs = F.broken("\"10.0.0.0/8\"", "\"10.0.0.0/33\"");
    assert_error(
        &errs,
        "listeners[0].rules[2].conditions[1].source_ip[0]",
        F.line_of("10.0.0.0/8"),
        "invalid prefix length in \"10.0.0.0/33\"; allowed: 0 to 32",
    );
    let errs = F.broken("\"2001:db8::/32\"", "\"2001:db8::1/32\"");
    assert_error(
        &errs,
        "listeners[0].rules[2].conditions[1].source_ip[1]",
        F.line_of("2001:db8"),
        "host bits set; did you mean \"2001:db8::/32\"?",
    );
    let errs = F.broken("\"10.0.0.0/8\"", "\"10.0.0/8\"");
    assert_error(
        &errs,
        "listeners[0].rules[2].conditions[1].source_ip[0]",
        F.line_of("10.0.0.0/8"),
        "invalid CIDR",
    );
}

#[test]
fn bad_status_codes() {
    let errs = F.broken("status = 301", "status = 200");
    assert_error(
        &errs,
        "listeners[0].rules[1].action.status",
        F.line_of("status = 301"),
        "status 200 is not a redirect; allowed: 301, 302, 303, 307, 308",
    );
    let errs = F.broken("status = 403", "status = 600");
    assert_error(
        &errs,
        "listeners[0].rules[2].action.status",
        F.line_of("status = 403"),
        "600 is out of range; allowed: 200 to 599",
    );
    let errs = F.broken("status = 403", "status = 101");
    assert_error(
        &errs,
        "listeners[0].rules[2].action.status",
        F.line_of("status = 403"),
        "allowed: 200 to 599",
    );
}

#[test]
fn bad_redirect_templates() {
    for (bad, why) in [
        ("//evil.com/#{path}", "leaves the scheme to the client"),
        ("#{path}", "neither absolute nor a path"),
        ("https://#{path}", "may form the authority"),
        (
            "https://user@#{host}/",
            "'@' is not allowed in the authority",
        ),
        ("https://#{host}/#{hots}", "unknown placeholder #{hots}"),
        ("https://#{host}/a b", "no spaces"),
        ("ftp://x/", "neither absolute nor a path"),
    ] {
        let errs = F.broken("https://#{host}/new#{path}?#{query}", bad);
        assert_error(
            &errs,
            "listeners[0].rules[1].action.location",
            F.line_of("location"),
            why,
        );
    }
}

#[test]
fn oversized_body_and_bad_content_type() {
    let big = "x".repeat(1025);
    let errs = F.broken("body = \"no\"", &format!("body = \"{big}\""));
    assert_error(
        &errs,
        "listeners[0].rules[2].action.body",
        F.line_of("body = \"no\""),
        "body is 1025 bytes; allowed: at most 1024",
    );
    let ok = "x".repeat(1024);
    let text = VALID.replacen("body = \"no\"", &format!("body = \"{ok}\""), 1);
    Config::from_toml(&text).expect("1024 bytes is allowed");
    let errs = F.broken("body = \"no\"", "body = \"no\", content_type = \"html\"");
    assert_error(
        &errs,
        "listeners[0].rules[2].action.content_type",
        F.line_of("body = \"no\""),
        "invalid content type \"html\"",
    );
}

#[test]
fn keys_of_another_action_type_are_unknown() {
    let errs = F.broken(
        "status = 403, body",
        "status = 403, location = \"/x\", body",
    );
    assert_error(
        &errs,
        "listeners[0].rules[2].action.location",
        F.line_of("status = 403"),
        "unknown field `location`; allowed: type, status, content_type, body",
    );
    let errs = F.broken("type = \"fixed_response\"", "type = \"fixed\"");
    assert_error(
        &errs,
        "listeners[0].rules[2].action.type",
        F.line_of("type = \"fixed_response\""),
        "allowed: \"forward\", \"redirect\", \"fixed_response\"",
    );
}

#[test]
fn default_action_may_redirect_or_answer() {
    let text = VALID.replacen(
        "default_action = { type = \"forward\", target_group = \"web\" }",
        "default_action = { type = \"fixed_response\", status = 404, content_type = \"application/json\", body = \"{}\" }",
        1,
    );
    let c = Config::from_toml(&text).expect("valid");
    assert!(matches!(
        c.listeners[0].default_action,
        Action::FixedResponse { status: 404, .. }
    ));
}

#[test]
fn every_rule_error_at_once() {
    let text = VALID
        .replacen("priority = 30", "priority = 20", 1)
        .replacen("\"10.0.0.0/8\"", "\"10.0.0.0/99\"", 1)
        .replacen("status = 301", "status = 399", 1)
        .replacen("body = \"no\"", "body = 5", 1);
    let errs = Config::from_toml(&text).expect_err("invalid");
    assert_eq!(errs.len(), 4, "{errs}");
}

//! Config of issue 22: a target's optional `name`, and the health check's
//! `timeout` default that follows a short `interval` (a default the user never
//! wrote must never be the cause of an error).

use std::time::Duration;

use super::*;

const BASE: &str = r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:8080"
default_action = { type = "forward", target_group = "web" }

[[target_groups]]
name = "web"
targets = [TARGETS]
"#;

/// `BASE` with its targets and, after them, `extra` lines of the group.
fn config(targets: &str, extra: &str) -> String {
    BASE.replace("TARGETS", targets) + extra
}

/// The (line, column) at which `needle` first stands in `text`, 1-based.
fn position(text: &str, needle: &str) -> (u32, u32) {
    let at = text.find(needle).expect("needle in text");
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (
        text[..at].matches('\n').count() as u32 + 1,
        (at - line_start) as u32 + 1,
    )
}

fn one_error(text: &str) -> ConfigError {
    let errs = Config::from_toml(text).expect_err("must be rejected");
    assert_eq!(errs.len(), 1, "one error expected:\n{errs}");
    errs.0.into_iter().next().expect("one error")
}

#[test]
fn target_names_are_read_and_round_trip() {
    let text = config(
        r#"{ address = "127.0.0.1:9001", name = "a" }, { address = "127.0.0.1:9002" }"#,
        "",
    );
    let c = Config::from_toml(&text).expect("valid");
    let targets = &c.target_groups[0].targets;
    assert_eq!(targets[0].name.as_deref(), Some("a"));
    assert_eq!(targets[0].display_name(), "a");
    assert_eq!(targets[1].name, None);
    assert_eq!(targets[1].display_name(), "127.0.0.1:9002");
    // What the admin API serves reads back the same, and an unnamed target
    // writes no `name`.
    let json = serde_json::to_value(&c).expect("serialize");
    assert_eq!(json["target_groups"][0]["targets"][0]["name"], "a");
    assert!(json["target_groups"][0]["targets"][1].get("name").is_none());
    assert_eq!(Config::from_json(&json).expect("reads back"), c);
}

#[test]
fn an_empty_target_name_is_rejected_at_its_key() {
    let text = config(r#"{ address = "127.0.0.1:9001", name = "" }"#, "");
    let e = one_error(&text);
    assert_eq!(e.path, "target_groups[0].targets[0].name");
    let (line, column) = position(&text, r#""""#);
    assert_eq!((e.line, e.column), (Some(line), Some(column)));
    assert!(e.message.contains("invalid name \"\""), "{}", e.message);
}

#[test]
fn a_target_name_with_spaces_is_rejected() {
    let text = config(r#"{ address = "127.0.0.1:9001", name = "web one" }"#, "");
    let e = one_error(&text);
    assert_eq!(e.path, "target_groups[0].targets[0].name");
    assert!(e.message.contains("allowed: 1 to 64"), "{}", e.message);
}

#[test]
fn a_duplicate_target_name_is_rejected_with_the_first_use() {
    let text = config(
        r#"{ address = "127.0.0.1:9001", name = "a" }, { address = "127.0.0.1:9002", name = "a" }"#,
        "",
    );
    let e = one_error(&text);
    assert_eq!(e.path, "target_groups[0].targets[1].name");
    let second = text.rfind(r#""a""#).expect("second name");
    let (line, column) = position(&text[second..], r#""a""#);
    let (first_line, _) = position(&text, "targets = [");
    assert_eq!(e.line, Some(first_line + line - 1));
    let line_start = text[..second].rfind('\n').map_or(0, |i| i + 1);
    assert_eq!(e.column, Some((second - line_start) as u32 + column));
    assert!(
        e.message
            .contains("duplicate target name \"a\"; already used by target_groups[0].targets[0]"),
        "{}",
        e.message
    );
}

#[test]
fn the_same_name_in_two_groups_is_fine() {
    let text = config(r#"{ address = "127.0.0.1:9001", name = "a" }"#, "")
        + r#"
[[target_groups]]
name = "other"
targets = [{ address = "127.0.0.1:9003", name = "a" }]
"#;
    Config::from_toml(&text).expect("names are unique within a group only");
}

#[test]
fn the_default_timeout_follows_a_short_interval() {
    let timeout_for = |interval: &str| {
        let text = config(
            r#"{ address = "127.0.0.1:9001" }"#,
            &format!("health_check = {{ interval = \"{interval}\" }}\n"),
        );
        let c = Config::from_toml(&text).expect("an unwritten timeout never fails");
        c.target_groups[0].health_check.timeout
    };
    assert_eq!(timeout_for("1s"), Duration::from_millis(500));
    assert_eq!(timeout_for("100ms"), Duration::from_millis(50));
    assert_eq!(timeout_for("4s"), Duration::from_secs(2));
    assert_eq!(timeout_for("30s"), Duration::from_secs(2), "2 s at most");
    let c = Config::from_toml(&config(r#"{ address = "127.0.0.1:9001" }"#, "")).expect("valid");
    assert_eq!(
        c.target_groups[0].health_check,
        HealthCheckConfig::default()
    );
}

#[test]
fn an_explicit_timeout_not_shorter_than_the_interval_is_rejected_at_the_timeout_key() {
    let text = config(
        r#"{ address = "127.0.0.1:9001" }"#,
        "\n[target_groups.health_check]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
    );
    let e = one_error(&text);
    assert_eq!(e.path, "target_groups[0].health_check.timeout");
    let (line, _) = position(&text, "timeout = \"1s\"");
    let column = "timeout = ".len() as u32 + 1;
    assert_eq!((e.line, e.column), (Some(line), Some(column)));
    assert_eq!(e.message, "timeout 1s must be shorter than interval 1s");
}

#[test]
fn an_explicit_timeout_against_the_default_interval_is_rejected_at_the_timeout_key() {
    let text = config(
        r#"{ address = "127.0.0.1:9001" }"#,
        "health_check = { timeout = \"5s\" }\n",
    );
    let e = one_error(&text);
    assert_eq!(e.path, "target_groups[0].health_check.timeout");
    let (line, column) = position(&text, "\"5s\"");
    assert_eq!((e.line, e.column), (Some(line), Some(column)));
    assert!(
        e.message.contains("shorter than interval 5s"),
        "{}",
        e.message
    );
}

//! Config of issue 7: `protocol = "http2"` groups, gRPC health checks and the
//! listeners' `upgrade_idle_timeout`, each valid form read and each misuse rejected
//! with its path and line.

use std::time::Duration;

use super::tests::VALID;
use super::*;
use crate::test_fixture::{assert_error, Fixture};

const F: Fixture = Fixture(VALID);

/// VALID with an http2 group and a gRPC health check in place of the HTTP one.
fn grpc_valid() -> String {
    VALID
        .replace(
            "connect_timeout = \"500ms\"",
            "connect_timeout = \"500ms\"\nprotocol = \"http2\"",
        )
        .replace("path = \"/health\"", "grpc_service = \"ballast.echo.Echo\"")
        .replace("matcher = \"200,204\"", "grpc_matcher = \"0,5\"")
}

#[test]
fn http2_group_with_grpc_check_is_read_and_round_trips() {
    let c = Config::from_toml(&grpc_valid()).expect("valid");
    let g = &c.target_groups[0];
    assert_eq!(g.protocol, TargetProtocol::Http2);
    let grpc = g.health_check.grpc.as_ref().expect("grpc check");
    assert_eq!(grpc.service, "ballast.echo.Echo");
    assert!(grpc.matcher.matches(0) && grpc.matcher.matches(5) && !grpc.matcher.matches(14));
    let json = serde_json::to_value(&c).expect("serialize");
    assert_eq!(
        json["target_groups"][0]["health_check"]["grpc_matcher"],
        "0,5"
    );
    assert!(json["target_groups"][0]["health_check"]
        .get("path")
        .is_none());
    assert_eq!(Config::from_json(&json).expect("reads back"), c);
}

#[test]
fn grpc_check_defaults_to_status_zero_and_the_whole_server() {
    let text = grpc_valid()
        .replace(
            "grpc_service = \"ballast.echo.Echo\"",
            "grpc_service = \"\"",
        )
        .replace("grpc_matcher = \"0,5\"\n", "");
    let c = Config::from_toml(&text).expect("valid");
    let grpc = c.target_groups[0].health_check.grpc.clone().expect("grpc");
    assert_eq!(grpc.service, "");
    assert_eq!(grpc.matcher, StatusMatcher(vec![(0, 0)]));
}

#[test]
fn grpc_service_needs_an_http2_group() {
    let errs = F.broken("path = \"/health\"", "grpc_service = \"x\"");
    assert_error(
        &errs,
        "target_groups[0].health_check.grpc_service",
        F.line_of("path = \"/health\""),
        "needs a target group with protocol = \"http2\"",
    );
    // The HTTP matcher left in place is an error of its own.
    assert_error(
        &errs,
        "target_groups[0].health_check.matcher",
        F.line_of("matcher = \"200,204\""),
        "cannot be combined with grpc_service",
    );
}

#[test]
fn grpc_and_http_keys_do_not_mix() {
    let text = grpc_valid().replace(
        "grpc_matcher = \"0,5\"",
        "grpc_matcher = \"0,5\"\npath = \"/x\"",
    );
    let errs = Config::from_toml(&text).expect_err("rejected");
    assert!(
        errs.iter()
            .any(|e| e.path == "target_groups[0].health_check.path"
                && e.message.contains("a gRPC check uses grpc_service")),
        "{errs}"
    );
    let errs = F.broken("matcher = \"200,204\"", "grpc_matcher = \"0\"");
    assert_error(
        &errs,
        "target_groups[0].health_check.grpc_matcher",
        F.line_of("matcher = \"200,204\""),
        "set grpc_service too",
    );
}

#[test]
fn grpc_matcher_and_service_are_validated() {
    for bad in ["100", "abc", "5-2", ""] {
        let text =
            grpc_valid().replace("grpc_matcher = \"0,5\"", &format!("grpc_matcher = {bad:?}"));
        let errs = Config::from_toml(&text).expect_err("rejected");
        assert!(
            errs.iter()
                .any(|e| e.message.contains("invalid grpc_matcher")),
            "{bad}: {errs}"
        );
    }
    let text = grpc_valid().replace("ballast.echo.Echo", "has space");
    let errs = Config::from_toml(&text).expect_err("rejected");
    assert!(
        errs.iter()
            .any(|e| e.message.contains("invalid gRPC service name")),
        "{errs}"
    );
}

#[test]
fn unknown_group_protocol_lists_both() {
    let errs = F.broken(
        "connect_timeout = \"500ms\"",
        "connect_timeout = \"500ms\"\nprotocol = \"h3\"",
    );
    assert!(
        errs.0[0].message.contains("allowed: \"http1\", \"http2\""),
        "{errs}"
    );
}

#[test]
fn upgrade_idle_timeout_defaults_reads_and_is_bounded() {
    let c = Config::from_toml(VALID).expect("valid");
    assert_eq!(
        c.listeners[0].upgrade_idle_timeout,
        Duration::from_secs(3600)
    );
    let c = Config::from_toml(&VALID.replace(
        "idle_timeout = \"2m\"",
        "idle_timeout = \"2m\"\nupgrade_idle_timeout = \"10m\"",
    ))
    .expect("valid");
    assert_eq!(
        c.listeners[0].upgrade_idle_timeout,
        Duration::from_secs(600)
    );
    let errs = F.broken(
        "idle_timeout = \"2m\"",
        "idle_timeout = \"2m\"\nupgrade_idle_timeout = \"25h\"",
    );
    assert_eq!(errs.0[0].path, "listeners[0].upgrade_idle_timeout");
    assert!(errs.0[0].message.contains("out of range"), "{errs}");
}

#[test]
fn http2_groups_take_tls_with_a_grpc_check_and_it_round_trips() {
    let text = grpc_valid().replace(
        "protocol = \"http2\"",
        "protocol = \"http2\"\ntls = { server_name = \"api.internal\", insecure_skip_verify = true }",
    );
    let c = Config::from_toml(&text).expect("http2 with tls is valid");
    let g = &c.target_groups[0];
    assert_eq!(g.protocol, TargetProtocol::Http2);
    let tls = g.tls.as_ref().expect("tls");
    assert_eq!(tls.server_name.as_deref(), Some("api.internal"));
    assert!(tls.insecure_skip_verify);
    assert!(g.health_check.grpc.is_some());
    let json = serde_json::to_value(&c).expect("serialize");
    assert_eq!(json["target_groups"][0]["protocol"], "http2");
    assert_eq!(Config::from_json(&json).expect("reads back"), c);
    // Disabled, it is plain HTTP/2 (prior knowledge) again.
    let off = text.replace("tls = {", "tls = { enabled = false,");
    let c = Config::from_toml(&off).expect("valid");
    assert!(c.target_groups[0].tls.is_none());
}

#[test]
fn http2_group_tls_keys_are_validated_where_they_stand() {
    let text = grpc_valid().replace(
        "protocol = \"http2\"",
        "protocol = \"http2\"\ntls = { server_name = \"not a name\", insecure_skip_verify = \"yes\", alpn = \"h2\" }",
    );
    let errs = Config::from_toml(&text).expect_err("rejected");
    let line = text[..text.find("tls = {").expect("tls line")]
        .matches('\n')
        .count() as u32
        + 1;
    assert_error(
        &errs,
        "target_groups[0].tls.server_name",
        line,
        "invalid server name",
    );
    assert_error(&errs, "target_groups[0].tls.insecure_skip_verify", line, "");
    assert_error(&errs, "target_groups[0].tls.alpn", line, "unknown field");
    assert!(errs.iter().all(|e| e.column.is_some()), "{errs}");
}

//! The TOML export (`export.rs`): every rich fixture of the config tests written
//! as TOML reads back to an equal `Config`, and writing that again gives the same
//! text, byte for byte.

use std::path::Path;

use super::tests::VALID;
use super::*;

/// parse → export → parse gives an equal config; export again, identical text.
pub(crate) fn assert_round_trips(text: &str) -> String {
    let c = Config::from_toml(text).unwrap_or_else(|e| panic!("fixture invalid: {e}\n{text}"));
    let exported = c.to_toml().expect("export");
    let back = Config::from_toml(&exported)
        .unwrap_or_else(|e| panic!("the export does not read back: {e}\n{exported}"));
    assert_eq!(back, c, "the export reads back differently:\n{exported}");
    assert_eq!(back.to_toml().expect("export again"), exported);
    exported
}

/// VALID with every target-group and listener key the other test files add.
fn richest() -> String {
    VALID
        .replace(
            "connect_timeout = \"500ms\"",
            r#"connect_timeout = "500ms"
anomaly_mitigation = "monitor"
slow_start = "45s"
stickiness = { type = "app_cookie", cookie_name = "SESSIONID", duration = "1h" }
retry = { attempts = 3, on = ["connect_failure", "reset", "503", "timeout"], budget = { ratio = 0.25, min_per_second = 5 } }
circuit_breaker = { max_requests = 100, max_retries = 3 }
load_shedding = { latency_target = "25ms", window = "250ms", min_limit = 2, max_limit = 64 }
shuffle_shard = { key = { header = "X-Tenant" }, size = 2 }"#,
        )
        .replace(
            "idle_timeout = \"2m\"",
            r#"idle_timeout = "2m"
allow = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
deny = ["10.9.0.0/16"]
max_connections = 10000
max_connections_per_client = 100
proxy_protocol = { trusted = ["127.0.0.1/32"] }
request_body_timeout = "5s"
request_body_min_rate = "0B/s"
response_send_timeout = "1500ms""#,
        )
}

#[test]
fn every_rich_fixture_round_trips_exactly() {
    let grpc = VALID
        .replace(
            "connect_timeout = \"500ms\"",
            "connect_timeout = \"500ms\"\nprotocol = \"http2\"",
        )
        .replace("path = \"/health\"", "grpc_service = \"ballast.echo.Echo\"")
        .replace("matcher = \"200,204\"", "grpc_matcher = \"0,5\"");
    let sticky_lb = VALID.replace(
        "connect_timeout = \"500ms\"",
        "connect_timeout = \"500ms\"\nstickiness = { type = \"lb_cookie\", duration = \"30m\" }",
    );
    let shard_ip = VALID.replace(
        "connect_timeout = \"500ms\"",
        "connect_timeout = \"500ms\"\nshuffle_shard = { key = \"client_ip\", size = 1, fail_open = false }",
    );
    for text in [
        VALID.to_string(),
        richest(),
        super::tests_rules::VALID.to_string(),
        super::tests_limits::text(),
        grpc,
        sticky_lb,
        shard_ip,
    ] {
        assert_round_trips(&text);
    }
}

#[test]
fn defaults_stay_defaults_and_unset_options_stay_unset() {
    // A minimal file: every default written as the value in effect, which reads
    // back to the same config; options never set are not written at all.
    let minimal = r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:8080"
default_action = { type = "fixed_response", status = 204 }
"#;
    let text = assert_round_trips(minimal);
    for unset in [
        "stickiness_key_file",
        "load_shedding",
        "shuffle_shard",
        "token_file",
        "max_connections",
    ] {
        assert!(!text.contains(unset), "{unset} written:\n{text}");
    }
    // The access log's three forms: stdout (an empty table), off and a file.
    for log in [
        "",
        "[access_log]\npath = \"off\"\n",
        "[access_log]\npath = \"/var/log/b.log\"\n",
    ] {
        let exported = assert_round_trips(&format!("{log}{minimal}"));
        let back = Config::from_toml(&exported).expect("valid");
        assert_eq!(
            back.access_log,
            Config::from_toml(&format!("{log}{minimal}"))
                .expect("valid")
                .access_log
        );
    }
}

#[test]
fn arrays_of_tables_and_durations_read_as_a_person_writes_them() {
    let text = assert_round_trips(&richest());
    for expected in [
        "[[listeners]]",
        "[[target_groups]]",
        "drain_timeout = \"10s\"",
        "connect_timeout = \"500ms\"",
        "bind = \"127.0.0.1:8080\"",
        "ratio = 0.25",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
}

/// The README's TOML blocks that are whole configs, and the starter kit's
/// `examples/*.toml` where there is one (each read as `ballast check` reads it,
/// relative to its directory; one that needs certificates not made yet is
/// skipped, and said): each exports and reads back exactly.
#[test]
fn the_readme_and_example_configs_round_trip() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let mut whole = 0;
    for block in readme.split("```toml\n").skip(1) {
        let text = block.split("```").next().unwrap_or("");
        if let Ok(c) = Config::from_toml(text) {
            // Only blocks that are a config of their own, not a fragment.
            if !c.listeners.is_empty() {
                assert_round_trips(text);
                whole += 1;
            }
        }
    }
    assert!(whole >= 1, "no whole config among the README's TOML blocks");
    let Ok(entries) = std::fs::read_dir(root.join("examples")) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "toml") {
            match Config::load(&path) {
                Ok(c) => {
                    let text = c.to_toml().expect("export");
                    let back = Config::from_toml(&text)
                        .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
                    assert_eq!(back, c, "{}", path.display());
                    assert_eq!(back.to_toml().expect("again"), text);
                }
                Err(e) => eprintln!("{}: skipped ({e})", path.display()),
            }
        }
    }
}

//! `GET /api/v1/config?format=toml`: the running config as a file that
//! `ballast check` and `serve` read back (`Config::load`) to the same config.

use axum::http::{Method, StatusCode};
use ballast_config::Config;
use ballast_testkit::pki::TempDir;
use ballast_testkit::{backends, group_toml, Setup};
use serde_json::json;

use crate::Admin;

/// A config with nested tables, arrays of tables, rules, rate limits and the
/// resilience keys, so that the export has something of every shape to write.
fn rich(bs: &[ballast_testkit::BackendHandle]) -> Setup {
    let mut setup = Setup::new(&bs[..1]);
    setup.listener_extra = r#"rate_limits = ["per-ip"]
idle_timeout = "45s"
request_body_timeout = "5s"
allow = ["127.0.0.0/8"]
[[listeners.rules]]
priority = 10
conditions = [{ path = ["/api/*"] }, { method = ["GET", "POST"] }]
action = { type = "forward", target_groups = [{ name = "web", weight = 90 }, { name = "canary", weight = 10 }] }
[[listeners.rules]]
priority = 20
conditions = [{ host = ["old.example"] }]
action = { type = "redirect", status = 301, location = "https://new.example#{path}" }
"#
    .to_string();
    setup.group_extra = r#"slow_start = "30s"
stickiness = { type = "lb_cookie", duration = "1h" }
retry = { attempts = 2, on = ["connect_failure", "503"], budget = { ratio = 0.2, min_per_second = 10 } }
load_shedding = { latency_target = "50ms" }
"#
    .to_string();
    setup.extra = format!(
        "{}\n[[rate_limits]]\nname = \"per-ip\"\nkey = \"client_ip\"\nrate = \"100/s\"\nburst = 200\n",
        group_toml("canary", &bs[1..])
    );
    setup
}

async fn toml(admin: &Admin) -> String {
    let (status, text) = admin
        .raw(Method::GET, "/api/v1/config?format=toml", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    text
}

#[tokio::test]
async fn the_toml_export_reads_back_to_the_running_config() {
    let bs = backends(2).await;
    let admin = Admin::start(&rich(&bs)).await;
    let dir = TempDir::new("api-toml");
    let text = toml(&admin).await;
    assert!(text.starts_with("# ballast config, version 1"), "{text}");
    let path = dir.write("exported.toml", &text);
    let back = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, *admin.ballast.server.snapshot().config, "{text}");
    // Serialising what was read back gives the same text.
    assert_eq!(
        back.to_toml().expect("export"),
        text[text.find("\n\n").expect("header") + 2..]
    );

    // A change through the API is in the next export.
    let mut config = admin.get("/api/v1/config").await["config"].clone();
    config["target_groups"][0]["targets"]
        .as_array_mut()
        .expect("targets")
        .push(json!({ "address": "127.0.0.1:9", "weight": 3 }));
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text = toml(&admin).await;
    assert!(text.starts_with("# ballast config, version 2"), "{text}");
    let path = dir.write("exported-2.toml", &text);
    let back = Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, *admin.ballast.server.snapshot().config);
    assert!(back.target_groups[0]
        .targets
        .iter()
        .any(|t| t.address.to_string() == "127.0.0.1:9" && t.weight == 3));
}

#[tokio::test]
async fn json_stays_the_default_and_an_unknown_format_is_400() {
    let bs = backends(1).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    let plain = admin.get("/api/v1/config").await;
    assert_eq!(admin.get("/api/v1/config?format=json").await, plain);
    let (status, body) = admin
        .call(Method::GET, "/api/v1/config?format=yaml", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().expect("error").contains("\"toml\""),
        "{body}"
    );
}

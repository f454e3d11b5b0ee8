//! `/metrics` counts exactly what was sent; the access log has a JSON line per request.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::Method;
use ballast_testkit::{backends, eventually, Client, Setup};

use crate::Admin;

/// `name{labels} value` lines into a map keyed by the series as written.
fn scrape(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_every_request_by_code() {
    let bs = backends(2).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    admin.ballast.all_healthy().await;
    let client = Client::http1();
    for _ in 0..7 {
        assert_eq!(
            client
                .get(&admin.ballast.url("/"))
                .await
                .expect("reply")
                .status,
            200
        );
    }
    for _ in 0..3 {
        let r = client
            .get(&admin.ballast.url("/?status=404"))
            .await
            .expect("reply");
        assert_eq!(r.status, 404);
    }
    let (_, text) = admin.raw(Method::GET, "/metrics", None, None).await;
    let m = scrape(&text);
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in\n{text}"))
    };
    assert_eq!(
        get(r#"ballast_requests_total{listener="public",code="200"}"#),
        7.0
    );
    assert_eq!(
        get(r#"ballast_requests_total{listener="public",code="404"}"#),
        3.0
    );
    assert_eq!(
        get(r#"ballast_request_duration_seconds_count{listener="public"}"#),
        10.0
    );
    assert_eq!(
        get(r#"ballast_request_duration_seconds_bucket{listener="public",le="+Inf"}"#),
        10.0
    );
    let (t0, t1) = (bs[0].addr(), bs[1].addr());
    let per_target = |code: &str| {
        [t0, t1]
            .iter()
            .map(|t| {
                m.get(&format!(r#"ballast_target_requests_total{{target_group="web",target="{t}",code="{code}"}}"#))
                    .copied()
                    .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    assert_eq!(per_target("200"), 7.0);
    assert_eq!(per_target("404"), 3.0);
    let durations: f64 = [t0, t1]
        .iter()
        .map(|t| get(&format!(r#"ballast_target_response_duration_seconds_count{{target_group="web",target="{t}"}}"#)))
        .sum();
    assert_eq!(durations, 10.0);
    assert_eq!(get(r#"ballast_healthy_targets{target_group="web"}"#), 2.0);
    assert_eq!(get(r#"ballast_unhealthy_targets{target_group="web"}"#), 0.0);
    assert_eq!(
        get(r#"ballast_unhealthy_state_routing{target_group="web"}"#),
        0.0
    );
    assert_eq!(
        get(&format!(
            r#"ballast_target_weight{{target_group="web",target="{t0}"}}"#
        )),
        1.0
    );
    assert_eq!(
        get(&format!(
            r#"ballast_target_connection_errors_total{{target_group="web",target="{t0}"}}"#
        )),
        0.0
    );
    assert_eq!(
        get(r#"ballast_rejected_requests_total{listener="public",reason="no_healthy_target"}"#),
        0.0
    );
    assert!(m.contains_key(r#"ballast_active_connections{listener="public"}"#));
    assert_eq!(get("ballast_access_log_dropped_total"), 0.0);
    for family in ["ballast_requests_total", "ballast_request_duration_seconds"] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
    }
}

#[tokio::test]
async fn rejections_and_connection_errors_are_counted() {
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    setup.minimum_healthy_targets = 0; // never fail open: 503 when none is healthy
    let admin = Admin::start(&setup).await;
    admin.ballast.all_healthy().await;
    let dead = bs[0].addr();
    bs[0].kill();
    // The first request may find the target by a failed connect (502, marked
    // down) or, if a health check noticed first, already down (503).
    let client = Client::http1();
    let (mut bad_gateway, mut unavailable) = (0.0, 0.0);
    for _ in 0..5 {
        match client
            .get(&admin.ballast.url("/"))
            .await
            .expect("reply")
            .status
            .as_u16()
        {
            502 => bad_gateway += 1.0,
            503 => unavailable += 1.0,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(bad_gateway <= 1.0 && unavailable >= 4.0);
    let (_, text) = admin.raw(Method::GET, "/metrics", None, None).await;
    let m = scrape(&text);
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        get(r#"ballast_requests_total{listener="public",code="502"}"#),
        bad_gateway
    );
    assert_eq!(
        get(r#"ballast_requests_total{listener="public",code="503"}"#),
        unavailable
    );
    assert_eq!(
        get(r#"ballast_rejected_requests_total{listener="public",reason="no_healthy_target"}"#),
        unavailable
    );
    assert_eq!(
        get(&format!(
            r#"ballast_target_connection_errors_total{{target_group="web",target="{dead}"}}"#
        )),
        bad_gateway
    );
    assert_eq!(m[r#"ballast_unhealthy_targets{target_group="web"}"#], 1.0);
}

#[tokio::test]
async fn access_log_lines_are_json_with_every_field() {
    let bs = backends(1).await;
    let dir = std::env::temp_dir().join(format!("ballast-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("access.log");
    let _ = std::fs::remove_file(&path);
    let mut setup = Setup::new(&bs);
    setup.access_log = path.display().to_string();
    setup.listener_extra = r#"
[[listeners.rules]]
priority = 7
conditions = [{ path = "/upload" }]
action = { type = "forward", target_group = "web" }
"#
    .to_string();
    let admin = Admin::start(&setup).await;
    admin.ballast.all_healthy().await;
    let client = Client::http1();
    let req = http::Request::post(admin.ballast.url("/upload?secret=1"))
        .header("user-agent", "access-log-test")
        .header("x-request-id", "req-42")
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            b'x';
            1000
        ])))
        .expect("request");
    let r = client.send(req).await.expect("reply");
    assert_eq!(r.status, 200);
    let r2 = client
        .get(&admin.ballast.url("/get?bytes=5000"))
        .await
        .expect("reply");
    assert_eq!(r2.body.len(), 5000);
    let lines = || std::fs::read_to_string(&path).unwrap_or_default();
    eventually("two access-log lines", Duration::from_secs(10), || async {
        lines().lines().count() >= 2
    })
    .await;
    let text = lines();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for r in &records {
        for field in [
            "time",
            "listener",
            "client",
            "target_group",
            "target",
            "method",
            "path",
            "status",
            "target_status",
            "request_processing_time",
            "target_processing_time",
            "response_processing_time",
            "bytes_in",
            "bytes_out",
            "user_agent",
            "request_id",
            "error_reason",
            "rule_priority",
        ] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
        assert_eq!(r["listener"], "public");
        assert_eq!(r["target_group"], "web");
        assert_eq!(r["target"], bs[0].addr().to_string());
        assert_eq!(r["status"], 200);
        assert_eq!(r["target_status"], 200);
        assert!(r["time"].as_str().expect("time").ends_with('Z'));
        assert!(r["client"]
            .as_str()
            .expect("client")
            .starts_with("127.0.0.1:"));
        assert!(r["error_reason"].is_null());
        assert!(r["target_processing_time"].as_f64().expect("f64") >= 0.0);
    }
    let post = records
        .iter()
        .find(|r| r["method"] == "POST")
        .expect("POST line");
    assert_eq!(post["path"], "/upload", "no query in the log");
    assert_eq!(post["rule_priority"], 7, "the rule that matched");
    let get = records
        .iter()
        .find(|r| r["method"] == "GET")
        .expect("GET line");
    assert!(get["rule_priority"].is_null(), "the default action: {get}");
    assert_eq!(post["bytes_in"], 1000);
    assert_eq!(post["user_agent"], "access-log-test");
    assert_eq!(post["request_id"], "req-42");
    let get = records
        .iter()
        .find(|r| r["method"] == "GET")
        .expect("GET line");
    assert_eq!(get["bytes_out"], 5000);
    assert_eq!(get["complete"], true);
    assert_eq!(
        get["request_id"].as_str().map(str::len),
        Some(32),
        "generated id"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

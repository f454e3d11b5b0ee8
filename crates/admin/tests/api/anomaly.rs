//! Anomaly detection through the admin API: the per-target `anomaly` object of
//! `/health` (SPEC §13) and the explained decisions of `/anomalies`.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use ballast_testkit::{backend_with, eventually, BackendConfig, Client, Setup};
use serde_json::Value;

use crate::Admin;

#[tokio::test]
async fn health_reports_the_verdict_and_anomalies_explain_the_cut() {
    let mut bs = Vec::new();
    for i in 0..5 {
        let fail_rate = if i == 2 { 1.0 } else { 0.0 };
        bs.push(
            backend_with(BackendConfig {
                fail_rate,
                ..BackendConfig::new(format!("b{i}"))
            })
            .await,
        );
    }
    let mut setup = Setup::new(&bs);
    setup.group_extra = "anomaly_mitigation = \"on\"\n".into();
    let admin = Admin::start(&setup).await;
    admin.ballast.all_healthy().await;
    // Enough requests for a verdict on every target; they stay in the 10 s window.
    let client = Client::http1();
    for _ in 0..250 {
        client
            .get(&admin.ballast.url("/"))
            .await
            .expect("an answer");
    }
    let bad = bs[2].addr().to_string();
    let find = |health: &Value, address: &str| -> Value {
        health["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .find(|t| t["address"] == address)
            .cloned()
            .expect("target")
    };
    eventually(
        "the failing target cut",
        Duration::from_secs(10),
        || async {
            let health = admin.get("/api/v1/target-groups/web/health").await;
            find(&health, &bad)["anomaly"]["mitigation_in_effect"] == true
        },
    )
    .await;
    let health = admin.get("/api/v1/target-groups/web/health").await;
    let t = find(&health, &bad);
    assert_eq!(t["state"], "healthy", "anomalous does not change health");
    assert_eq!(t["anomaly"]["result"], "anomalous");
    assert_eq!(t["anomaly"]["error_rate"].as_f64(), Some(1.0));
    assert_eq!(t["anomaly"]["baseline"].as_f64(), Some(0.0));
    assert!(t["anomaly"]["requests"].as_u64() >= Some(20), "{t}");
    assert_eq!(t["effective_weight"].as_f64(), Some(0.5));
    assert_eq!(t["weight"], 1);
    let good = find(&health, &bs[0].addr().to_string());
    assert_eq!(good["anomaly"]["result"], "normal");
    assert_eq!(good["anomaly"]["mitigation_in_effect"], false);
    assert_eq!(good["effective_weight"].as_f64(), Some(1.0));

    let anomalies = admin.get("/api/v1/target-groups/web/anomalies").await;
    assert_eq!(anomalies["target_group"], "web");
    assert_eq!(anomalies["anomaly_mitigation"], "on");
    let d = &anomalies["decisions"][0];
    assert_eq!(d["target"], bad.as_str());
    assert_eq!(d["why"], "step_down");
    assert_eq!(d["verdict"], "anomalous");
    assert_eq!(d["mode"], "on");
    assert_eq!(d["applied"], true);
    assert_eq!(d["weight_before"].as_f64(), Some(1.0));
    assert_eq!(d["weight_after"].as_f64(), Some(0.5));
    assert_eq!(d["window_seconds"], 10);
    assert!(d["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{d}");
    assert!(
        d["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("error share 100.0%")),
        "{d}"
    );

    let (status, _) = admin
        .call(Method::GET, "/api/v1/target-groups/nope/anomalies", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, text) = admin.raw(Method::GET, "/metrics", None, None).await;
    assert!(text.contains("ballast_mitigated_targets{target_group=\"web\"} 1"));
}

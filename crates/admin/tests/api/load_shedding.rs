//! `load_shedding` through the admin API: written with `PUT /api/v1/config`
//! through the same validation as the file (an invalid one applies nothing),
//! and shown with its figures in `GET /api/v1/target-groups/{name}`.

use axum::http::{Method, StatusCode};
use ballast_testkit::{backends, Client, Setup};
use serde_json::json;

use crate::Admin;

#[tokio::test]
async fn load_shedding_is_validated_written_and_shown_with_its_figures() {
    let bs = backends(1).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    admin.ballast.all_healthy().await;
    let group = admin.get("/api/v1/target-groups/web").await;
    assert_eq!(group["load_shedding"], json!(null), "off by default");

    let before = admin.get("/api/v1/config").await;
    let mut config = before["config"].clone();
    config["target_groups"][0]["load_shedding"] =
        json!({ "latency_target": "50ms", "min_limit": 20, "max_limit": 10 });
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config.clone()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["details"][0]["path"],
        "target_groups[0].load_shedding.min_limit"
    );
    assert_eq!(admin.get("/api/v1/config").await, before, "nothing applied");

    config["target_groups"][0]["load_shedding"] =
        json!({ "latency_target": "50ms", "max_limit": 64 });
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let client = Client::http1();
    for _ in 0..3 {
        let r = client.get(&admin.ballast.url("/")).await.expect("reply");
        assert_eq!(r.status, 200);
    }
    let shedding = admin.get("/api/v1/target-groups/web").await["load_shedding"].clone();
    assert_eq!(shedding["latency_target"], "50ms");
    assert_eq!(shedding["limit"], 64, "starts at max_limit");
    assert_eq!(shedding["min_limit"], 4);
    assert_eq!(shedding["max_limit"], 64);
    // The last response's place may still be on its way back.
    assert!(
        shedding["in_flight"].as_u64().is_some_and(|n| n <= 1),
        "{shedding}"
    );
    assert_eq!(shedding["shed"], 0);
    assert!(shedding["latency_ms"].is_number(), "{shedding}");
}

//! `GET /api/v1/stats/history`: what two samples around known traffic give
//! (rates in the proportions sent, latency within the backend's delay, the
//! group as the sum of its targets) and `?since=`. Its read access is checked
//! with every other read in `access.rs`.

use axum::http::{Method, StatusCode};
use ballast_testkit::{backends, Client, Setup};
use serde_json::Value;

use crate::Admin;

fn first(v: &Value) -> f64 {
    v[0].as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test]
async fn two_samples_give_the_rates_and_latency_of_the_traffic_between_them() {
    let bs = backends(2).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    admin.ballast.all_healthy().await;
    let history = admin.control.history().clone();
    let snapshot = || admin.ballast.server.snapshot();
    history.sample(&snapshot());
    let (status, v) = admin.call(Method::GET, "/api/v1/stats/history", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["interval_s"], 5.0);
    assert_eq!(v["keep"], 180);
    assert_eq!(
        v["listeners"],
        serde_json::json!({}),
        "one reading gives no point"
    );

    // 20 requests: 14 OK after 20 ms at the backend, 4 × 404, 2 × 503.
    let client = Client::http1();
    for i in 0..20 {
        let path = match i % 10 {
            0 => "/?status=503&delay_ms=20",
            1 | 2 => "/?status=404&delay_ms=20",
            _ => "/?delay_ms=20",
        };
        client.get(&admin.ballast.url(path)).await.expect("reply");
    }
    history.sample(&snapshot());
    let (_, v) = admin.call(Method::GET, "/api/v1/stats/history", None).await;
    let public = &v["listeners"]["public"];
    assert_eq!(public["t"].as_array().map(Vec::len), Some(1), "{v}");
    let rps = first(&public["rps"]);
    assert!(rps > 0.0, "{v}");
    // The same interval divides every count: the proportions are exact (but
    // for the rounding to 0.001/s).
    assert!((first(&public["r4xx"]) / rps - 0.2).abs() < 0.01, "{v}");
    assert!((first(&public["r5xx"]) / rps - 0.1).abs() < 0.01, "{v}");
    // Every request took 20 ms or more: the median lies in (10, 25] ms or,
    // on a loaded machine, a later bucket; never below 10 ms.
    let p50 = first(&public["p50_ms"]);
    assert!(p50 > 10.0 && p50 <= 10_000.0, "{v}");
    assert!(first(&public["p99_ms"]) >= p50, "{v}");
    assert!(public["connections"].is_array());

    let web = &v["target_groups"]["web"];
    assert!((first(&web["rps"]) - rps).abs() / rps < 0.01, "{v}");
    let per_target: f64 = bs
        .iter()
        .map(|b| first(&v["targets"]["web"][b.addr().to_string()]["rps"]))
        .sum();
    assert!((per_target - first(&web["rps"])).abs() < 0.01, "{v}");

    // `since` gives only later points; a bad one is refused.
    let t = public["t"][0].as_u64().expect("t");
    let (_, v) = admin
        .call(
            Method::GET,
            &format!("/api/v1/stats/history?since={t}"),
            None,
        )
        .await;
    assert_eq!(v["listeners"]["public"]["t"], serde_json::json!([]), "{v}");
    let (status, v) = admin
        .call(Method::GET, "/api/v1/stats/history?since=yesterday", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("since")),
        "{v}"
    );
}

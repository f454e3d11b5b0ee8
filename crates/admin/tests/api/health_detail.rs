//! The health API's detail (issue 22): target names, each target's last check
//! and its recent transitions, after checks ran against real backends; and the
//! `unused` state of a group no listener forwards to.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use ballast_testkit::{backends, eventually, group_toml, Setup};
use serde_json::{json, Value};

use crate::Admin;

const SOON: Duration = Duration::from_secs(10);

/// The target of group `group` whose address is `address`, from the health API.
async fn target(admin: &Admin, group: &str, address: &str) -> Value {
    let health = admin
        .get(&format!("/api/v1/target-groups/{group}/health"))
        .await;
    health["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["address"] == address)
        .cloned()
        .unwrap_or(Value::Null)
}

fn moves(t: &Value) -> Vec<(String, String)> {
    t["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|tr| {
            let s = |k: &str| tr[k].as_str().unwrap_or("").to_string();
            (s("from"), s("to"))
        })
        .collect()
}

#[tokio::test]
async fn a_failing_then_recovering_target_shows_its_checks_and_transitions() {
    let bs = backends(2).await;
    let (a, b) = (bs[0].addr().to_string(), bs[1].addr().to_string());
    let text = Setup::new(&bs).toml().replace(
        &format!("{{ address = \"{a}\", weight = 1 }}"),
        &format!("{{ address = \"{a}\", weight = 1, name = \"alpha\" }}"),
    );
    let config = ballast_config::Config::from_toml(&text).expect("valid");
    let admin = Admin::start_config(config).await;
    admin.ballast.all_healthy().await;

    let alpha = target(&admin, "web", &a).await;
    assert_eq!(alpha["name"], "alpha");
    let beta = target(&admin, "web", &b).await;
    assert_eq!(
        beta["name"],
        b.as_str(),
        "an unnamed target is called by its address"
    );
    let check = &beta["last_check"];
    assert_eq!(check["result"], "pass", "{beta}");
    assert_eq!(check["status"], 200);
    assert_eq!(check["error"], Value::Null);
    assert!(
        check["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{check}"
    );
    assert!(
        check["at"].as_str().is_some_and(|at| at.ends_with('Z')),
        "{check}"
    );
    assert_eq!(moves(&beta), [("initial".into(), "healthy".into())]);
    assert_eq!(
        beta["transitions"][0]["reason"],
        "Target.HealthChecksPassed"
    );

    bs[1].set_healthy(false);
    eventually("beta turns unhealthy", SOON, || async {
        target(&admin, "web", &b).await["state"] == "unhealthy"
    })
    .await;
    let beta = target(&admin, "web", &b).await;
    let check = &beta["last_check"];
    assert_eq!(check["result"], "fail", "{beta}");
    assert_eq!(check["status"], 503);
    assert!(
        check["error"].as_str().is_some_and(|e| e.contains("503")),
        "{check}"
    );
    let last = beta["transitions"]
        .as_array()
        .and_then(|t| t.last())
        .cloned();
    let last = last.expect("a transition");
    assert_eq!(
        (last["from"].as_str(), last["to"].as_str()),
        (Some("healthy"), Some("unhealthy"))
    );
    assert_eq!(last["reason"], "Target.ResponseCodeMismatch");

    bs[1].set_healthy(true);
    eventually("beta recovers", SOON, || async {
        target(&admin, "web", &b).await["state"] == "healthy"
    })
    .await;
    let beta = target(&admin, "web", &b).await;
    assert_eq!(
        moves(&beta),
        [
            ("initial".into(), "healthy".into()),
            ("healthy".into(), "unhealthy".into()),
            ("unhealthy".into(), "healthy".into()),
        ]
    );
    assert_eq!(beta["last_check"]["result"], "pass");
    let at: Vec<&str> = beta["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .filter_map(|t| t["at"].as_str())
        .collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "newest last: {at:?}");
    // The group API names targets too.
    let group = admin.get("/api/v1/target-groups/web").await;
    assert_eq!(group["targets"][0]["name"], "alpha");
}

#[tokio::test]
async fn a_registration_may_name_the_target_and_names_stay_unique() {
    let bs = backends(3).await;
    let admin = Admin::start(&Setup::new(&bs[..1])).await;
    admin.ballast.all_healthy().await;
    let c = bs[1].addr().to_string();
    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/target-groups/web/targets",
            Some(json!({"address": c, "name": "gamma"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "gamma");
    assert_eq!(target(&admin, "web", &c).await["name"], "gamma");

    // Re-registering without a name keeps it.
    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/target-groups/web/targets",
            Some(json!({"address": c, "weight": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "gamma");

    // The same name on another target is refused, and nothing changes.
    let d = bs[2].addr().to_string();
    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/target-groups/web/targets",
            Some(json!({"address": d, "name": "gamma"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let text = body.to_string();
    assert!(text.contains("targets[2].name"), "{text}");
    assert!(text.contains("duplicate target name"), "{text}");
    assert_eq!(target(&admin, "web", &d).await, Value::Null);
}

#[tokio::test]
async fn a_group_no_listener_uses_is_unused_until_a_listener_forwards_to_it() {
    let bs = backends(2).await;
    let mut setup = Setup::new(&bs[..1]);
    setup.extra = group_toml("spare", &bs[1..]);
    let admin = Admin::start(&setup).await;
    admin.ballast.all_healthy().await;
    let spare = bs[1].addr().to_string();

    let t = target(&admin, "spare", &spare).await;
    assert_eq!(t["state"], "unused", "{t}");
    assert_eq!(t["reason"], "Target.NotInUse");
    assert_eq!(t["last_check"], Value::Null);
    let health = admin.get("/api/v1/target-groups/spare/health").await;
    assert_eq!(health["failing_open"], false, "{health}");
    let metrics = admin.ballast.server.metrics_text();
    assert!(
        metrics.contains("ballast_unused_targets{target_group=\"spare\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("ballast_unused_targets{target_group=\"web\"} 0\n"));
    // Several rounds of checks of `web`, none of `spare`.
    let seen = bs[0].health_checks();
    eventually("web is checked", SOON, || async {
        bs[0].health_checks() >= seen + 3
    })
    .await;
    assert_eq!(bs[1].health_checks(), 0, "an unused group is not checked");

    // A rule forwarding to it: checked from `initial` on, then healthy.
    let mut used = setup.clone();
    used.listener_extra = "[[listeners.rules]]\npriority = 1\nconditions = [{ path = \"/spare/*\" }]\naction = { type = \"forward\", target_group = \"spare\" }\n".to_string();
    admin
        .ballast
        .server
        .apply(used.config())
        .await
        .expect("applies");
    eventually("spare turns healthy", SOON, || async {
        target(&admin, "spare", &spare).await["state"] == "healthy"
    })
    .await;
    let t = target(&admin, "spare", &spare).await;
    let moves = moves(&t);
    assert_eq!(
        moves,
        [
            ("initial".into(), "unused".into()),
            ("unused".into(), "initial".into()),
            ("initial".into(), "healthy".into()),
        ]
    );
    assert_eq!(t["last_check"]["result"], "pass");
}

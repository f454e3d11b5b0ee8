//! GET/PUT of the whole config, validation, optimistic versions, auth, persistence.

use axum::http::{Method, StatusCode};
use ballast_admin::Store;
use ballast_testkit::{backends, Setup};
use serde_json::json;

use crate::Admin;

#[tokio::test]
async fn get_then_put_round_trips_and_bumps_the_version() {
    let bs = backends(2).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    let got = admin.get("/api/v1/config").await;
    assert_eq!(got["version"], 1);
    let mut config = got["config"].clone();
    config["target_groups"][0]["algorithm"] = json!("least_outstanding_requests");
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);
    let snapshot = admin.ballast.server.snapshot();
    assert_eq!(snapshot.version, 2);
    assert_eq!(
        snapshot.group("web").expect("web").config.algorithm,
        ballast_config::Algorithm::LeastOutstandingRequests
    );
    // GET's whole answer is accepted too, guarded by its version.
    let stale = got; // version 1
    let (status, body) = admin.call(Method::PUT, "/api/v1/config", Some(stale)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(admin.ballast.server.snapshot().version, 2);
}

#[tokio::test]
async fn invalid_config_is_400_with_every_error_and_nothing_applied() {
    let bs = backends(1).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    let before = admin.get("/api/v1/config").await;
    let mut config = before["config"].clone();
    config["target_groups"][0]["algorithm"] = json!("fastest");
    config["target_groups"][0]["targets"][0]["weight"] = json!(5000);
    // Forward actions read back in their normal form, `target_groups = [{ name, weight }]`.
    config["listeners"][0]["default_action"]["target_groups"][0]["name"] = json!("nope");
    config["listeners"][0]["bogus"] = json!(1);
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let details = body["details"].as_array().expect("details");
    let paths: Vec<&str> = details.iter().filter_map(|d| d["path"].as_str()).collect();
    for expected in [
        "target_groups[0].algorithm",
        "target_groups[0].targets[0].weight",
        "listeners[0].default_action.target_groups[0].name",
        "listeners[0].bogus",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    assert!(
        body["error"].as_str().expect("error").contains("4 error"),
        "{body}"
    );
    assert_eq!(admin.get("/api/v1/config").await, before, "nothing applied");

    let (status, body) = admin.raw(Method::PUT, "/api/v1/config", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("not JSON"), "{body}");
}

#[tokio::test]
async fn writes_need_the_token_and_reads_do_not() {
    let bs = backends(2).await;
    let admin = Admin::start_with(&Setup::new(&bs), Some("s3cret-token"), None).await;
    let config = admin.get("/api/v1/config").await["config"].clone();
    let target = bs[1].addr().to_string();
    let writes = [
        (Method::PUT, "/api/v1/config".to_string(), Some(config)),
        (
            Method::POST,
            "/api/v1/target-groups/web/targets".to_string(),
            Some(json!({"address": "127.0.0.1:1", "weight": 1})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/target-groups/web/targets/{target}"),
            None,
        ),
    ];
    for (method, path, body) in &writes {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cret-toke"),
            Some("s3cret-token"),
        ] {
            let (status, reply) = admin
                .call_as(method.clone(), path, body.clone(), auth)
                .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}: {reply}"
            );
            assert!(reply["error"].is_string(), "{reply}");
        }
    }
    assert_eq!(
        admin.ballast.server.snapshot().version,
        1,
        "nothing applied"
    );
    for path in [
        "/api/v1/config",
        "/api/v1/target-groups",
        "/api/v1/target-groups/web/health",
    ] {
        let (status, _) = admin.call_as(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _) = admin.raw(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for (method, path, body) in writes {
        let (status, reply) = admin
            .call_as(method.clone(), &path, body, Some("Bearer s3cret-token"))
            .await;
        assert!(status.is_success(), "{method} {path}: {status} {reply}");
    }
}

#[tokio::test]
async fn applied_changes_are_persisted_with_their_version() {
    let bs = backends(1).await;
    let dir = std::env::temp_dir().join(format!("ballast-admin-persist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::new(&dir);
    let admin = Admin::start_with(&Setup::new(&bs), None, Some(store.clone())).await;
    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/target-groups/web/targets",
            Some(json!({"address": "127.0.0.1:9", "weight": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let persisted = store.load().expect("readable").expect("persisted");
    assert_eq!(persisted.version, 2);
    let g = persisted.config.target_group("web").expect("web");
    assert_eq!(
        g.target("127.0.0.1:9".parse().expect("addr"))
            .map(|t| t.weight),
        Some(7)
    );
    assert_eq!(&persisted.config, &*admin.ballast.server.snapshot().config);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `shuffle_shard` written through the API is checked like the file: a shard
/// larger than the group is refused with its path and nothing is applied, and
/// so is a deregistration that would leave the group smaller than its shards.
#[tokio::test]
async fn a_shard_larger_than_the_group_is_refused_and_nothing_applied() {
    let bs = backends(2).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    let before = admin.get("/api/v1/config").await;
    let mut config = before["config"].clone();
    config["target_groups"][0]["shuffle_shard"] =
        json!({ "key": { "header": "X-Tenant" }, "size": 3 });
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config.clone()))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["details"][0]["path"], "target_groups[0].shuffle_shard.size",
        "{body}"
    );
    assert!(
        body["details"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger than the group, which has 2")),
        "{body}"
    );
    assert_eq!(admin.get("/api/v1/config").await, before, "nothing applied");

    config["target_groups"][0]["shuffle_shard"]["size"] = json!(2);
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let applied = admin.get("/api/v1/config").await;
    assert_eq!(
        applied["config"]["target_groups"][0]["shuffle_shard"],
        json!({ "key": { "header": "x-tenant" }, "size": 2, "fail_open": true })
    );
    let path = format!("/api/v1/target-groups/web/targets/{}", bs[0].addr());
    let (status, body) = admin.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["details"][0]["path"],
        "target_groups[0].shuffle_shard.size"
    );
    assert_eq!(
        admin.get("/api/v1/config").await,
        applied,
        "nothing applied"
    );
}

/// A listener's admission keys (issue 21 §3) through the API: a bad range or
/// limit is refused with its path and nothing applied; good ones apply and
/// read back.
#[tokio::test]
async fn admission_keys_are_validated_and_applied_through_the_api() {
    let bs = backends(1).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    let before = admin.get("/api/v1/config").await;
    let mut config = before["config"].clone();
    config["listeners"][0]["allow"] = json!(["10.0.0.1/8"]);
    config["listeners"][0]["max_connections"] = json!(0);
    config["listeners"][0]["proxy_protocol"] = json!({ "trusted": [] });
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let details = body["details"].as_array().expect("details");
    let paths: Vec<&str> = details.iter().filter_map(|d| d["path"].as_str()).collect();
    for expected in [
        "listeners[0].allow[0]",
        "listeners[0].max_connections",
        "listeners[0].proxy_protocol.trusted",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    assert_eq!(admin.get("/api/v1/config").await, before, "nothing applied");

    let mut config = before["config"].clone();
    config["listeners"][0]["deny"] = json!(["192.0.2.0/24", "2001:db8::1"]);
    config["listeners"][0]["max_connections_per_client"] = json!(5);
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = admin.get("/api/v1/config").await;
    assert_eq!(
        after["config"]["listeners"][0]["deny"],
        json!(["192.0.2.0/24", "2001:db8::1/128"])
    );
    assert_eq!(
        after["config"]["listeners"][0]["max_connections_per_client"],
        5
    );
}

/// Rate limits written through the API: a valid one is applied and reads back;
/// a bad one (and a reference to a limit that does not exist) is refused with
/// its path, and nothing is applied.
#[tokio::test]
async fn rate_limits_are_validated_like_the_file() {
    let bs = backends(1).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    let mut config = admin.get("/api/v1/config").await["config"].clone();
    config["rate_limits"] =
        json!([{ "name": "per-ip", "key": "client_ip", "rate": "100/s", "burst": 200 }]);
    config["listeners"][0]["rate_limits"] = json!(["per-ip"]);
    let (status, body) = admin
        .call(Method::PUT, "/api/v1/config", Some(config))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = admin.get("/api/v1/config").await;
    assert_eq!(before["config"]["rate_limits"][0]["rate"], "100/s");
    assert_eq!(before["config"]["rate_limits"][0]["scope"], "local");

    let mut bad = before["config"].clone();
    bad["rate_limits"][0]["rate"] = json!("100/fortnight");
    bad["rate_limits"][0]["scope"] = json!("global");
    bad["listeners"][0]["rate_limits"] = json!(["per-ip", "nope"]);
    let (status, body) = admin.call(Method::PUT, "/api/v1/config", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let details = body["details"].as_array().expect("details");
    let paths: Vec<&str> = details.iter().filter_map(|d| d["path"].as_str()).collect();
    for expected in [
        "rate_limits[0].rate",
        "rate_limits[0].scope",
        "listeners[0].rate_limits[1]",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    assert_eq!(admin.get("/api/v1/config").await, before, "nothing applied");
}

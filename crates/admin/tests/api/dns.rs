//! Registering a target by DNS name, and the health API's `"dns"` field.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use ballast_testkit::dns::{loopback, loopback_backends, DnsServer, Mode};
use ballast_testkit::{backends, eventually, Setup};
use serde_json::json;

use crate::Admin;

const SOON: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_name_registered_by_the_api_resolves_and_says_how() {
    let dns = DnsServer::start().await;
    dns.set_ttl(0);
    let (port, named) = loopback_backends(&[2]).await;
    dns.set("app.test", &[loopback(2)]);
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    setup.server_extra = format!("dns_servers = [\"{}\"]", dns.addr);
    setup.group_extra = "dns = { min_ttl = \"200ms\" }\n".into();
    let admin = Admin::start(&setup).await;
    let health = admin.get("/api/v1/target-groups/web/health").await;
    assert_eq!(health["dns"], json!(null), "no DNS name yet");

    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/target-groups/web/targets",
            Some(json!({"address": "app..test:80"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        admin.ballast.server.snapshot().version,
        1,
        "nothing applied"
    );

    let name = format!("app.test:{port}");
    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/target-groups/web/targets",
            Some(json!({"address": name, "weight": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["address"], name);
    let address = format!("127.0.0.2:{port}");
    eventually("the resolved target turns healthy", SOON, || async {
        admin.target_state(&address).await.as_deref() == Some("healthy")
    })
    .await;
    let health = admin.get("/api/v1/target-groups/web/health").await;
    let entry = &health["dns"][0];
    assert_eq!(entry["name"], name);
    assert_eq!(entry["addresses"], json!([address]));
    assert_eq!(entry["error"], json!(null));
    assert!(entry["resolved_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(entry["next_refresh_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let config = admin.get("/api/v1/config").await;
    assert_eq!(
        config["config"]["target_groups"][0]["targets"][1],
        json!({"address": name, "weight": 2}),
        "{config}"
    );

    dns.set_mode(Mode::ServFail);
    eventually("the failure shows in the health API", SOON, || async {
        let health = admin.get("/api/v1/target-groups/web/health").await;
        health["dns"][0]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("servfail"))
            && health["dns"][0]["addresses"] == json!([address])
    })
    .await;
    dns.set_mode(Mode::Answer);

    let (status, body) = admin
        .call(
            Method::DELETE,
            &format!("/api/v1/target-groups/web/targets/{name}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    eventually("the name's target is removed", SOON, || async {
        admin.target_state(&address).await.is_none()
    })
    .await;
    let health = admin.get("/api/v1/target-groups/web/health").await;
    assert_eq!(health["dns"], json!(null));
    assert!(named[0].health_checks() > 0);
}

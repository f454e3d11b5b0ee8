//! The audit trail (issue 25): every write — applied, invalid, refused for
//! authentication — recorded with its client, token id, changes, version and
//! outcome; listed by `GET /api/v1/audit`; kept across a restart.

use axum::http::{Method, StatusCode};
use ballast_admin::{Control, Outcome, Store};
use ballast_testkit::pki::TempDir;
use ballast_testkit::{backends, Setup};
use serde_json::{json, Value};

use crate::Admin;

/// Five writes: applied, invalid, not JSON, no token, a wrong token.
async fn five_writes(admin: &Admin) {
    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/target-groups/web/targets",
            Some(json!({"address": "127.0.0.1:9", "weight": 3})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut config = admin.get("/api/v1/config").await["config"].clone();
    config["target_groups"][0]["algorithm"] = json!("fastest");
    let (status, _) = admin
        .call(Method::PUT, "/api/v1/config", Some(config))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin
        .raw(
            Method::PUT,
            "/api/v1/config",
            None,
            Some("Bearer s3cret-token"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let path = "/api/v1/target-groups/web/targets/127.0.0.1:9";
    let (status, _) = admin.call_as(Method::DELETE, path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = admin
        .call_as(Method::DELETE, path, None, Some("Bearer guess-123"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        admin.ballast.server.snapshot().version,
        2,
        "one write applied"
    );
}

#[tokio::test]
async fn every_write_is_audited_with_its_outcome_and_listed() {
    let bs = backends(1).await;
    let mut admin = Admin::start_with(&Setup::new(&bs), Some("s3cret-token"), None).await;
    admin.client = Some("10.9.8.7:4321".parse().expect("addr"));
    five_writes(&admin).await;

    let (status, body) = admin.call(Method::GET, "/api/v1/audit", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 5, "{body}");
    for e in entries {
        assert_eq!(e["client"], "10.9.8.7:4321", "{e}");
        let time = e["time"].as_str().expect("time");
        assert!(
            time.len() == 24 && time.ends_with('Z') && &time[10..11] == "T",
            "{time}"
        );
    }
    let [ok, invalid, not_json, anonymous, guess] = &entries[..] else {
        unreachable!()
    };
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["token"], "write");
    assert_eq!(ok["action"], "POST /api/v1/target-groups/web/targets");
    assert_eq!(ok["changes"], json!([format!("+target web/127.0.0.1:9")]));
    assert_eq!(ok["version"], 2);
    assert!(ok.get("error").is_none(), "{ok}");

    assert_eq!(invalid["outcome"], "error");
    assert_eq!(invalid["version"], 2);
    assert_eq!(invalid["changes"], json!([]));
    let error = invalid["error"].as_str().expect("error");
    assert!(
        error.contains("invalid config") && error.contains("target_groups[0].algorithm"),
        "{error}"
    );
    assert!(not_json["error"]
        .as_str()
        .expect("error")
        .contains("not JSON"));

    for (e, token) in [(anonymous, "none"), (guess, "")] {
        assert_eq!(e["outcome"], "unauthorized", "{e}");
        assert_eq!(
            e["action"],
            "DELETE /api/v1/target-groups/web/targets/127.0.0.1:9"
        );
        assert_eq!(e["version"], 2);
        if !token.is_empty() {
            assert_eq!(e["token"], token);
        }
    }
    // An unknown token is named by a digest prefix, never by itself.
    let id = guess["token"].as_str().expect("token");
    assert!(id.starts_with("sha256:") && id.len() == 15, "{id}");
    assert!(!body.to_string().contains("guess-123"), "{body}");
    assert!(!body.to_string().contains("s3cret-token"), "{body}");

    let (_, last) = admin.call(Method::GET, "/api/v1/audit?limit=2", None).await;
    assert_eq!(
        last["entries"].as_array().expect("entries")[..],
        entries[3..]
    );
    for bad in ["0", "1001", "x"] {
        let (status, body) = admin
            .call(Method::GET, &format!("/api/v1/audit?limit={bad}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn the_trail_is_kept_in_the_state_dir_across_a_restart() {
    let bs = backends(1).await;
    let dir = TempDir::new("admin-audit");
    let store = Store::new(&dir.path);
    let admin = Admin::start_with(&Setup::new(&bs), Some("s3cret-token"), Some(store)).await;
    five_writes(&admin).await;
    let before = admin.control.audit().last(100);
    assert_eq!(before.len(), 5);

    let text = std::fs::read_to_string(dir.file("audit.jsonl")).expect("audit.jsonl");
    assert_eq!(text.lines().count(), 5);
    assert!(!text.contains("s3cret-token") && !text.contains("guess-123"));
    for line in text.lines() {
        serde_json::from_str::<Value>(line).expect("one JSON object a line");
    }
    // A new control plane over the same state dir (a restart) sees the same trail.
    let restarted = Control::new(admin.ballast.server.clone(), Some(Store::new(&dir.path)));
    assert_eq!(restarted.audit().last(100), before);
    let outcomes: Vec<Outcome> = before.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Ok,
            Outcome::Error,
            Outcome::Error,
            Outcome::Unauthorized,
            Outcome::Unauthorized
        ]
    );
}

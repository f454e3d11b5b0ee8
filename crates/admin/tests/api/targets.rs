//! Registering and deregistering targets while traffic flows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use ballast_testkit::{backend, backends, eventually, Client, Setup};
use serde_json::json;

use crate::Admin;

const SOON: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_registered_target_takes_traffic_only_once_healthy() {
    let bs = backends(2).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    admin.ballast.all_healthy().await;
    let new = backend("new").await;
    new.set_healthy(false);
    let address = new.addr().to_string();
    let (status, body) = admin
        .call(
            Method::POST,
            "/api/v1/target-groups/web/targets",
            Some(json!({"address": address, "weight": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], 2);
    let state = admin.target_state(&address).await;
    assert!(
        matches!(state.as_deref(), Some("initial" | "unhealthy")),
        "{state:?}"
    );
    // Wait until its health check has run (and failed) twice.
    eventually("the new target was checked", SOON, || async {
        new.health_checks() >= 2
    })
    .await;
    let client = Client::http1();
    for _ in 0..20 {
        let r = client.get(&admin.ballast.url("/")).await.expect("reply");
        assert_eq!(r.status, 200);
    }
    assert_eq!(new.requests(), 0, "no traffic before the target is healthy");

    new.set_healthy(true);
    eventually("the new target turns healthy", SOON, || async {
        admin.target_state(&address).await.as_deref() == Some("healthy")
    })
    .await;
    for _ in 0..30 {
        let r = client.get(&admin.ballast.url("/")).await.expect("reply");
        assert_eq!(r.status, 200);
    }
    let share = new.requests();
    assert!(
        (8..=12).contains(&share),
        "about a third of 30 requests, got {share}"
    );
}

/// Deregistering under continuous load: no client sees an error, the slow request
/// in flight on the target completes, nothing new goes to the target once the
/// API answered, and the target is removed as soon as its last request ends.
#[tokio::test]
async fn deregistration_drains_under_load_without_errors() {
    let bs = backends(2).await;
    let mut setup = Setup::new(&bs);
    setup.group_extra = "deregistration_delay = \"30s\"".to_string();
    let admin = Arc::new(Admin::start(&setup).await);
    admin.ballast.all_healthy().await;
    let (a, b) = (bs[0].name().to_string(), bs[1].addr().to_string());
    let client = Client::http1();

    // One slow request on each target (round robin alternates).
    let slow_url = admin.ballast.url("/slow?delay_ms=1500");
    let snapshot = admin.ballast.server.snapshot();
    let group = snapshot.group("web").expect("web").clone();
    let slow1 = tokio::spawn({
        let (c, u) = (client.clone(), slow_url.clone());
        async move { c.get(&u).await }
    });
    eventually("first slow request in flight", SOON, || async {
        group.targets.iter().map(|t| t.in_flight()).sum::<u32>() == 1
    })
    .await;
    let slow2 = tokio::spawn({
        let (c, u) = (client.clone(), slow_url.clone());
        async move { c.get(&u).await }
    });
    eventually("a slow request on each target", SOON, || async {
        group.targets.iter().all(|t| t.in_flight() == 1)
    })
    .await;

    // Continuous load; each reply is recorded with when its request started.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let mut load = Vec::new();
    for _ in 0..4 {
        let (c, url) = (client.clone(), admin.ballast.url("/"));
        let (stop, failures, seen) = (stop.clone(), failures.clone(), seen.clone());
        load.push(tokio::spawn(async move {
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let started = Instant::now();
                match c.get(&url).await {
                    Ok(r) if r.status == 200 => {
                        seen.lock().expect("lock").push((started, r.backend()))
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    eventually("load flows", SOON, || async {
        seen.lock().expect("lock").len() > 50
    })
    .await;

    let (status, body) = admin
        .call(
            Method::DELETE,
            &format!("/api/v1/target-groups/web/targets/{b}"),
            None,
        )
        .await;
    let acked = Instant::now();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "draining");
    let health = admin.get("/api/v1/target-groups/web/health").await;
    let draining = health["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["address"] == b.as_str())
        .expect("still listed while draining")
        .clone();
    assert_eq!(draining["state"], "draining");
    assert_eq!(draining["reason"], "Target.DeregistrationInProgress");
    assert!(draining["in_flight"].as_u64() >= Some(1), "{draining}");
    assert_eq!(draining["effective_weight"].as_f64(), Some(0.0));

    for slow in [slow1, slow2] {
        let r = slow.await.expect("task").expect("slow request completes");
        assert_eq!(r.status, 200);
    }
    eventually("the drained target is removed", SOON, || async {
        admin.target_state(&b).await.is_none()
    })
    .await;
    // Some more load after the removal, then stop.
    let after = seen.lock().expect("lock").len();
    eventually("load goes on", SOON, || async {
        seen.lock().expect("lock").len() > after + 50
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.expect("load task");
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no client saw an error"
    );
    let seen = seen.lock().expect("lock");
    let late: Vec<_> = seen
        .iter()
        .filter(|(t, who)| *t > acked && who != &a)
        .collect();
    assert!(
        late.is_empty(),
        "{} requests started after the deregistration went elsewhere than {a}",
        late.len()
    );
    assert!(seen.iter().any(|(t, _)| *t > acked));
}

/// When the delay runs out first, the target is removed while its slow request is
/// still running, and that request still completes (it holds its own target).
#[tokio::test]
async fn deregistration_delay_bounds_the_drain() {
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    setup.group_extra = "deregistration_delay = \"100ms\"".to_string();
    let admin = Admin::start(&setup).await;
    admin.ballast.all_healthy().await;
    let b = bs[0].addr().to_string();
    let client = Client::http1();
    let url = admin.ballast.url("/slow?delay_ms=2000");
    let slow = tokio::spawn(async move { client.get(&url).await });
    let snapshot = admin.ballast.server.snapshot();
    let target = snapshot.group("web").expect("web").targets[0].clone();
    eventually("slow request in flight", SOON, || async {
        target.in_flight() == 1
    })
    .await;
    let (status, _) = admin
        .call(
            Method::DELETE,
            &format!("/api/v1/target-groups/web/targets/{b}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually("removed after the delay", SOON, || async {
        admin.target_state(&b).await.is_none()
    })
    .await;
    assert!(
        !slow.is_finished(),
        "removed while its request was still in flight"
    );
    let r = slow.await.expect("task").expect("completes");
    assert_eq!(r.status, 200);
    let (status, body) = admin
        .call(
            Method::DELETE,
            &format!("/api/v1/target-groups/web/targets/{b}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

//! Targets dying and coming back; connect failures; failing open.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ballast_proxy::{HealthReason, HealthState};
use ballast_testkit::{backend, backends, eventually, BackendConfig, Ballast, Client, Setup};

use crate::SOON;

/// `workers` clients sending GETs until `stop` is set; returns (ok, failed) counts.
fn load(
    url: String,
    workers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let ok = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..workers {
            let (url, stop, ok) = (url.clone(), stop.clone(), ok.clone());
            tasks.push(tokio::spawn(async move {
                let client = Client::http1();
                let mut failures = Vec::new();
                // Bounded: at most 20,000 requests per worker even if `stop` never comes.
                for _ in 0..20_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match client.get(&url).await {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failures.push(format!("{} {}", r.status, r.text())),
                        Err(e) => failures.push(e),
                    }
                }
                failures
            }));
        }
        let mut failures = Vec::new();
        for t in tasks {
            failures.extend(t.await.expect("join"));
        }
        (ok.load(Ordering::Relaxed), failures)
    })
}

#[tokio::test]
async fn killing_a_target_mid_traffic_fails_no_request_and_it_recovers() {
    let bs = backends(3).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    ballast.all_healthy().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Requests that take a moment, so some are in flight on the target when it dies.
    let running = load(ballast.url("/?delay_ms=5"), 6, stop.clone());

    eventually("traffic on b0", SOON, || async { bs[0].requests() > 50 }).await;
    let dead = bs[0].addr();
    bs[0].kill();
    let snap = ballast.server.snapshot();
    let group = snap.group("web").expect("group");
    let t0 = group
        .targets
        .iter()
        .find(|t| t.addr == dead)
        .expect("target")
        .clone();
    eventually("b0 marked down", SOON, || async {
        t0.state() == HealthState::Unhealthy
    })
    .await;
    let served_by_others = bs[1].requests() + bs[2].requests();
    eventually("traffic continues on the others", SOON, || async {
        bs[1].requests() + bs[2].requests() > served_by_others + 100
    })
    .await;

    // It comes back on the same address and is used again.
    let listener = tokio::net::TcpListener::bind(dead)
        .await
        .expect("rebind the dead target's port");
    let revived = ballast_testkit::spawn_backend(listener, BackendConfig::new("b0-again"));
    eventually("b0 healthy again", SOON, || async { t0.is_healthy() }).await;
    eventually("b0 serves again", SOON, || async {
        revived.requests() > 10
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = running.await.expect("load");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 200, "only {ok} requests were sent");
}

#[tokio::test]
async fn connect_failure_marks_down_at_once_and_retries_elsewhere() {
    let live = backend("live").await;
    // An address nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut setup = Setup::new(std::slice::from_ref(&live));
    setup.targets.insert(0, (dead, 1));
    // Health checks far apart and a threshold they cannot reach in this test: only
    // the data path can mark the dead target down.
    setup.interval = "60s";
    setup.hc_timeout = "1s";
    setup.unhealthy_threshold = 10;
    let ballast = Ballast::start(&setup).await;
    let client = Client::http1();
    for _ in 0..10 {
        let r = client.get(&ballast.url("/")).await.expect("request");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.backend(), "live");
    }
    let snap = ballast.server.snapshot();
    let t = snap.group("web").expect("group").targets[0].clone();
    let (state, reason) = t.health();
    assert_eq!(state, HealthState::Unhealthy);
    // The first probe may land after the data path's mark and update the reason.
    assert!(
        matches!(
            reason,
            HealthReason::ConnectionFailed | HealthReason::FailedHealthChecks
        ),
        "{reason:?}"
    );
}

#[tokio::test]
async fn below_minimum_healthy_the_group_fails_open() {
    let bs = backends(2).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    ballast.all_healthy().await;
    for b in &bs {
        b.set_healthy(false);
    }
    let snap = ballast.server.snapshot();
    let group = snap.group("web").expect("group").clone();
    eventually("both unhealthy", SOON, || async {
        group.healthy_count() == 0
    })
    .await;
    assert!(group.is_failing_open());
    let client = Client::http1();
    let before: Vec<u64> = bs.iter().map(|b| b.requests()).collect();
    for _ in 0..10 {
        assert_eq!(
            client.get(&ballast.url("/")).await.expect("request").status,
            200
        );
    }
    for (b, n) in bs.iter().zip(before) {
        assert!(b.requests() >= n + 5, "fail open routes to every target");
    }
    // One recovers: routing goes back to healthy targets only.
    bs[1].set_healthy(true);
    eventually("fail open ends", SOON, || async {
        !group.is_failing_open()
    })
    .await;
    for _ in 0..10 {
        assert_eq!(
            client
                .get(&ballast.url("/"))
                .await
                .expect("request")
                .backend(),
            "b1"
        );
    }
}

#[tokio::test]
async fn no_routable_target_is_a_503() {
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    setup.minimum_healthy_targets = 0; // never fail open
    setup.unhealthy_threshold = 1;
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    bs[0].set_healthy(false);
    let snap = ballast.server.snapshot();
    let group = snap.group("web").expect("group").clone();
    eventually("unhealthy", SOON, || async { group.healthy_count() == 0 }).await;
    let r = Client::http1()
        .get(&ballast.url("/"))
        .await
        .expect("request");
    assert_eq!(r.status, 503);
    assert!(r.text().contains("no_healthy_target"), "{}", r.text());
    assert_eq!(bs[0].requests(), 0);
}

//! Adaptive load shedding (`load_shedding = { latency_target, ... }` on a target
//! group): above the group's concurrency limit a request is answered at once,
//! 503 `shed` with `Retry-After`, counted and logged; the limit follows a
//! capacity-bounded target's latency down from its maximum under overload, so
//! the requests admitted stay fast; health checks never pass the gate.

use std::time::{Duration, Instant};

use ballast_testkit::{
    backend_with, eventually, BackendConfig, BackendHandle, Ballast, Client, Setup,
};

use crate::retries::metric;
use crate::SOON;

struct Rig {
    ballast: Ballast,
    backend: BackendHandle,
    log: std::path::PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One target (`backend`) behind group `web` with `load_shedding = shedding`.
async fn start(backend: BackendConfig, shedding: &str, test: &str) -> Rig {
    let backend = backend_with(backend).await;
    let log = std::env::temp_dir().join(format!("ballast-shed-{}-{test}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut setup = Setup::new(std::slice::from_ref(&backend));
    setup.group_extra = format!("load_shedding = {shedding}\n");
    setup.access_log = log.display().to_string();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    Rig {
        ballast,
        backend,
        log,
    }
}

impl Rig {
    fn metric(&self, series: &str) -> u64 {
        metric(&self.ballast, series)
    }

    /// The access log's error reasons, once it has `n` lines.
    async fn reasons(&self, n: usize) -> Vec<String> {
        let read = || std::fs::read_to_string(&self.log).unwrap_or_default();
        eventually(&format!("{n} access-log lines"), SOON, || async {
            read().lines().count() >= n
        })
        .await;
        read()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                v["error_reason"].as_str().unwrap_or("").to_string()
            })
            .collect()
    }
}

fn slow() -> BackendConfig {
    BackendConfig {
        latency: Duration::from_secs(3),
        ..BackendConfig::new("slow")
    }
}

/// A limit pinned at 2 (`min_limit = max_limit`): two requests in flight, the
/// eight after them answered at once with 503 shed and `Retry-After`, the
/// target never seeing them; the reason is in the access log and in
/// `ballast_rejected_requests_total`, the figures in the group's metrics.
#[tokio::test]
async fn over_the_limit_requests_are_shed_at_once_with_503_and_retry_after() {
    let rig = start(
        slow(),
        "{ latency_target = \"5s\", min_limit = 2, max_limit = 2 }",
        "pinned",
    )
    .await;
    assert_eq!(
        rig.metric("ballast_concurrency_limit{target_group=\"web\"}"),
        2
    );
    let url = rig.ballast.url("/");
    let get = |url: String| {
        tokio::spawn(async move { Client::http1().get(&url).await.expect("response") })
    };
    let first: Vec<_> = (0..2).map(|_| get(url.clone())).collect();
    eventually("two requests at the target", SOON, || async {
        rig.backend.requests() == 2
    })
    .await;
    assert_eq!(
        rig.metric("ballast_concurrency_in_flight{target_group=\"web\"}"),
        2
    );
    let started = Instant::now();
    let rest: Vec<_> = (0..8).map(|_| get(url.clone())).collect();
    for r in rest {
        let r = r.await.expect("join");
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.text(), "503 Service Unavailable: shed\n");
        assert_eq!(r.headers["retry-after"], "1");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shed at once, not after the 3 s the admitted ones take"
    );
    assert_eq!(rig.backend.requests(), 2, "the target never saw them");
    for r in first {
        assert_eq!(r.await.expect("join").status, 200);
    }
    assert_eq!(
        rig.metric("ballast_rejected_requests_total{listener=\"public\",reason=\"shed\"}"),
        8
    );
    assert_eq!(
        rig.metric("ballast_shed_requests_total{target_group=\"web\"}"),
        8
    );
    let reasons = rig.reasons(10).await;
    assert_eq!(
        reasons.iter().filter(|r| *r == "shed").count(),
        8,
        "{reasons:?}"
    );
    eventually("places given back", SOON, || async {
        rig.metric("ballast_concurrency_in_flight{target_group=\"web\"}") == 0
    })
    .await;
}

/// While the only target's every place is taken and requests are being shed,
/// its health checks go on (they never pass the gate) and it stays healthy.
#[tokio::test]
async fn health_checks_continue_while_shedding() {
    let rig = start(
        slow(),
        "{ latency_target = \"5s\", min_limit = 1, max_limit = 1 }",
        "health",
    )
    .await;
    let url = rig.ballast.url("/");
    let held = tokio::spawn({
        let url = url.clone();
        async move { Client::http1().get(&url).await.expect("response") }
    });
    eventually("one request at the target", SOON, || async {
        rig.backend.requests() == 1
    })
    .await;
    let checks = rig.backend.health_checks();
    let client = Client::http1();
    // Shedding now, and health checks (every 200 ms) keep arriving meanwhile.
    eventually("two more health checks while shedding", SOON, || async {
        let r = client.get(&url).await.expect("response");
        assert_eq!(r.status, 503, "{}", r.text());
        rig.backend.health_checks() >= checks + 2
    })
    .await;
    let snapshot = rig.ballast.server.snapshot();
    let group = snapshot.group("web").expect("group web");
    assert!(group.targets.iter().all(|t| t.is_healthy()));
    assert_eq!(
        rig.backend.requests(),
        1,
        "only the held request reached it"
    );
    assert_eq!(held.await.expect("join").status, 200);
}

/// The adaptive part: a target that serves 2 requests at once in 50 ms each
/// (40 requests a second; more wait in its queue), offered 12 clients in a
/// closed loop. Without shedding each would wait for 6 turns (300 ms). With a
/// 75 ms latency target the limit falls from its maximum of 100 towards the
/// target's capacity: requests are shed, the target stays busy, and the
/// requests admitted once the limit has settled take about a turn or two, not
/// six.
#[tokio::test]
async fn under_overload_the_limit_falls_and_admitted_requests_stay_fast() {
    let rig = start(
        BackendConfig {
            latency: Duration::from_millis(50),
            capacity: Some(2),
            ..BackendConfig::new("bounded")
        },
        "{ latency_target = \"75ms\", window = \"50ms\", min_limit = 1, max_limit = 100 }",
        "adaptive",
    )
    .await;
    let url = rig.ballast.url("/");
    let run_for = Duration::from_secs(4);
    let started = Instant::now();
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = Client::http1();
                // (when it was sent, status, latency) of each request.
                let mut seen = Vec::new();
                while started.elapsed() < run_for && seen.len() < 2000 {
                    let sent = Instant::now();
                    let r = client.get(&url).await.expect("response");
                    seen.push((sent - started, r.status, sent.elapsed()));
                    if r.status == 503 {
                        // As a client that honours Retry-After a little sooner.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                seen
            })
        })
        .collect();
    let mut seen = Vec::new();
    for c in clients {
        seen.extend(c.await.expect("join"));
    }
    let shed = seen.iter().filter(|(_, s, _)| *s == 503).count() as u64;
    assert!(shed > 0, "overload was shed");
    assert!(
        seen.iter().all(|(_, s, _)| *s == 200 || *s == 503),
        "only served or shed"
    );
    assert_eq!(
        rig.metric("ballast_shed_requests_total{target_group=\"web\"}"),
        shed
    );
    // Settled: the second half of the run.
    let mut admitted: Vec<Duration> = seen
        .iter()
        .filter(|(at, s, _)| *s == 200 && *at >= run_for / 2)
        .map(|(_, _, latency)| *latency)
        .collect();
    admitted.sort();
    assert!(
        admitted.len() >= 20,
        "the target kept serving: {admitted:?}"
    );
    let median = admitted[admitted.len() / 2];
    let p99 = admitted[admitted.len() * 99 / 100];
    let served = seen.iter().filter(|(_, s, _)| *s == 200).count();
    eprintln!(
        "load shedding: {served} served ({:.1}/s; capacity 40/s), {shed} shed of {}; \
         settled: {} admitted, median {median:?}, p99 {p99:?}",
        served as f64 / run_for.as_secs_f64(),
        seen.len(),
        admitted.len(),
    );
    assert!(
        median < Duration::from_millis(200),
        "admitted median {median:?} (unshed: ~300 ms)"
    );
    let limit = rig.metric("ballast_concurrency_limit{target_group=\"web\"}");
    assert!((1..=8).contains(&limit), "limit {limit}");
    let view =
        ballast_proxy::shedding_view(rig.ballast.server.snapshot().group("web").expect("web"))
            .expect("shedding on");
    assert_eq!(view.shed, shed);
    assert!(view.latency > Duration::ZERO);
}

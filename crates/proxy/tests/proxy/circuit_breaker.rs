//! Circuit breakers (`circuit_breaker = { max_connections, max_pending_requests,
//! max_requests, max_retries }` on a target group): over a limit, 503
//! `circuit_open` at once, and the target never sees the request.

use std::time::Duration;

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

/// One slow target (every answer takes 3 s) behind a group with `breaker`.
async fn start(breaker: &str, test: &str) -> Rig {
    let backend = backend_with(BackendConfig {
        latency: Duration::from_secs(3),
        ..BackendConfig::new("slow")
    })
    .await;
    let log =
        std::env::temp_dir().join(format!("ballast-breaker-{}-{test}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut setup = Setup::new(std::slice::from_ref(&backend));
    setup.group_extra = format!("circuit_breaker = {breaker}\n");
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
    /// Two requests in flight on the target, then eight more at once: the two
    /// are served, the eight are refused without reaching it.
    async fn two_in_flight_and_eight_refused(&self, limit: &str) {
        let url = self.ballast.url("/");
        let get = |url: String| {
            tokio::spawn(async move { Client::http1().get(&url).await.expect("response") })
        };
        let first: Vec<_> = (0..2).map(|_| get(url.clone())).collect();
        eventually("two requests at the target", SOON, || async {
            self.backend.requests() == 2
        })
        .await;
        let usage =
            format!("ballast_circuit_breaker_usage{{target_group=\"web\",limit=\"{limit}\"}}");
        assert_eq!(metric(&self.ballast, &usage), 2);
        let rest: Vec<_> = (0..8).map(|_| get(url.clone())).collect();
        for r in rest {
            let r = r.await.expect("join");
            assert_eq!(r.status, 503, "{}", r.text());
            assert_eq!(r.text(), "503 Service Unavailable: circuit_open\n");
            assert_eq!(r.headers["retry-after"], "1");
        }
        assert_eq!(self.backend.requests(), 2, "the target never saw them");
        for r in first {
            assert_eq!(r.await.expect("join").status, 200);
        }
        assert_eq!(self.backend.requests(), 2);
        assert_eq!(
            metric(
                &self.ballast,
                "ballast_rejected_requests_total{listener=\"public\",reason=\"circuit_open\"}"
            ),
            8
        );
        let open =
            format!("ballast_circuit_breaker_open_total{{target_group=\"web\",limit=\"{limit}\"}}");
        assert_eq!(metric(&self.ballast, &open), 8);
        let reasons = self.reasons(10).await;
        assert_eq!(
            reasons.iter().filter(|r| *r == "circuit_open").count(),
            8,
            "{reasons:?}"
        );
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

#[tokio::test]
async fn beyond_max_requests_requests_are_refused_at_once() {
    let rig = start("{ max_requests = 2 }", "requests").await;
    let limit = "ballast_circuit_breaker_limit{target_group=\"web\",limit=\"requests\"}";
    assert_eq!(metric(&rig.ballast, limit), 2);
    rig.two_in_flight_and_eight_refused("requests").await;
    let usage = "ballast_circuit_breaker_usage{target_group=\"web\",limit=\"requests\"}";
    eventually("places given back", SOON, || async {
        metric(&rig.ballast, usage) == 0
    })
    .await;
}

/// Connections: two open and busy, a third is not opened; once the two are
/// back in the pool, requests reuse them.
#[tokio::test]
async fn beyond_max_connections_no_connection_is_opened() {
    let rig = start("{ max_connections = 2 }", "connections").await;
    rig.two_in_flight_and_eight_refused("connections").await;
    rig.backend.set_latency(Duration::ZERO);
    let client = Client::http1();
    for _ in 0..5 {
        let r = client.get(&rig.ballast.url("/")).await.expect("response");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let usage = "ballast_circuit_breaker_usage{target_group=\"web\",limit=\"connections\"}";
    assert!(metric(&rig.ballast, usage) <= 2);
}

/// `max_retries = 1`: while one request's retry is in flight (each attempt takes
/// 1.5 s), another request's retry is not made, and its failure stands; the first
/// request goes on retrying once its retry is answered.
#[tokio::test]
async fn beyond_max_retries_a_retry_is_not_made() {
    let bs = ballast_testkit::backends(3).await;
    let mut setup = Setup::new(&bs);
    setup.group_extra = "retry = { attempts = 2, on = [\"503\"], budget = { ratio = 1.0, min_per_second = 100 } }\ncircuit_breaker = { max_retries = 1 }\n".into();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    let total = || bs.iter().map(|b| b.requests()).sum::<u64>();
    let slow = ballast.url("/?status=503&delay_ms=1500");
    let a = tokio::spawn(async move { Client::http1().get(&slow).await.expect("response") });
    eventually("the first request's retry at a target", SOON, || async {
        total() == 2
    })
    .await;
    let r = Client::http1()
        .get(&ballast.url("/?status=503"))
        .await
        .expect("response");
    assert_eq!(r.status, 503);
    assert_eq!(total(), 3, "the second request was tried once");
    let open = "ballast_circuit_breaker_open_total{target_group=\"web\",limit=\"retries\"}";
    assert_eq!(metric(&ballast, open), 1);
    let r = a.await.expect("join");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["headers"]["x-ballast-attempt"], "3");
    assert_eq!(total(), 4, "the first request made both its retries");
}

//! Retries within a budget (`retry = { attempts, on, budget }` on a target group):
//! what is retried, where, how often, and what never is.

use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use ballast_testkit::{
    backend_with, backends, BackendConfig, BackendHandle, Ballast, Client, Setup,
};

/// A sample of `GET /metrics`, 0 when absent.
pub fn metric(ballast: &Ballast, series: &str) -> u64 {
    let prefix = format!("{series} ");
    ballast
        .server
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0)
}

fn total(bs: &[BackendHandle]) -> u64 {
    bs.iter().map(|b| b.requests()).sum()
}

async fn start(bs: &[BackendHandle], retry: &str) -> Ballast {
    let mut setup = Setup::new(bs);
    setup.group_extra = format!("retry = {retry}\n");
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    ballast
}

/// One target of three answers 500 to 30% of requests: with 500 retried, no GET
/// sees it, each failure is retried once on another target, and the counters
/// survive a reload.
#[tokio::test]
async fn a_target_answering_500_is_invisible_to_gets() {
    let mut bs = vec![
        backend_with(BackendConfig {
            fail_rate: 0.3,
            ..BackendConfig::new("flaky")
        })
        .await,
    ];
    bs.extend(backends(2).await);
    let retry = r#"{ attempts = 2, on = ["500", "502", "503"], budget = { ratio = 0.5, min_per_second = 50 } }"#;
    let ballast = start(&bs, retry).await;
    let client = Client::http1();
    for i in 0..300 {
        let r = client.get(&ballast.url("/")).await.expect("response");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    let retried = metric(
        &ballast,
        "ballast_retries_total{target_group=\"web\",reason=\"500\"}",
    );
    // About 100 requests land on the flaky target first, 30% of them fail.
    assert!((10..=60).contains(&retried), "{retried} retries");
    assert_eq!(total(&bs), 300 + retried, "one extra attempt per retry");
    assert_eq!(
        metric(
            &ballast,
            "ballast_retry_budget_exhausted_total{target_group=\"web\"}"
        ),
        0
    );
    // A reload keeps the group's cells.
    let mut setup = Setup::new(&bs);
    setup.group_extra = format!("retry = {retry}\n");
    ballast.server.apply(setup.config()).await.expect("apply");
    assert_eq!(
        metric(
            &ballast,
            "ballast_retries_total{target_group=\"web\",reason=\"500\"}"
        ),
        retried
    );
}

/// Every target answers 503 (`?status=503`): a GET is tried 1 + attempts times,
/// each attempt numbered in `X-Ballast-Attempt`, and the client gets the last
/// attempt's response; a POST is tried once; so is a GET that arrives with
/// `X-Ballast-Attempt` (an upstream ballast retries it), and a status not in
/// `on`. Over HTTP/1.1 and HTTP/2 to the targets.
#[tokio::test]
async fn only_idempotent_unmarked_requests_are_retried_on_listed_statuses() {
    for protocol in ["http1", "http2"] {
        let bs = backends(3).await;
        let mut setup = Setup::new(&bs);
        setup.group_extra = format!(
            "protocol = \"{protocol}\"\nretry = {{ attempts = 2, on = [\"503\"], budget = {{ ratio = 1.0, min_per_second = 100 }} }}\n"
        );
        let ballast = Ballast::start(&setup).await;
        ballast.all_healthy().await;
        let client = Client::http1();

        let r = client
            .send(
                Request::get(ballast.url("/?status=503"))
                    .header("x-ballast-attempt", "7")
                    .body(Full::new(Bytes::new()))
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(r.status, 503, "{protocol}");
        assert_eq!(total(&bs), 1, "{protocol}: a marked request is not retried");
        assert_eq!(
            r.json()["headers"]["x-ballast-attempt"],
            "1",
            "{protocol}: the client's header is replaced"
        );

        let r = client
            .get(&ballast.url("/?status=503"))
            .await
            .expect("response");
        assert_eq!(r.status, 503, "{protocol}");
        assert_eq!(total(&bs), 1 + 3, "{protocol}: three targets tried");
        assert!(
            bs.iter().all(|b| b.requests() >= 1),
            "{protocol}: each once"
        );
        assert_eq!(
            r.json()["headers"]["x-ballast-attempt"],
            "3",
            "{protocol}: the last attempt's response"
        );

        let post = Request::post(ballast.url("/?status=503"))
            .body(Full::new(Bytes::from_static(b"hello")))
            .expect("request");
        let r = client.send(post).await.expect("response");
        assert_eq!(r.status, 503, "{protocol}");
        assert_eq!(total(&bs), 5, "{protocol}: a POST is tried once");

        let r = client
            .get(&ballast.url("/?status=500"))
            .await
            .expect("response");
        assert_eq!(r.status, 500, "{protocol}");
        assert_eq!(total(&bs), 6, "{protocol}: 500 is not in `on`");
        assert_eq!(
            metric(
                &ballast,
                "ballast_retries_total{target_group=\"web\",reason=\"503\"}"
            ),
            2,
            "{protocol}"
        );
    }
}

/// Every target failing: N client requests cost the targets at most
/// (1 + ratio) × N + min_per_second × seconds attempts, not (1 + attempts) × N,
/// and the budget says it ran out.
#[tokio::test]
async fn the_budget_keeps_a_fleet_wide_failure_from_multiplying_the_load() {
    let mut bs = Vec::new();
    for i in 0..3 {
        let config = BackendConfig {
            fail_rate: 1.0,
            ..BackendConfig::new(format!("b{i}"))
        };
        bs.push(backend_with(config).await);
    }
    let (ratio, floor) = (0.2, 5.0);
    let retry = format!(
        "{{ attempts = 2, on = [\"500\"], budget = {{ ratio = {ratio}, min_per_second = {floor} }} }}"
    );
    let ballast = start(&bs, &retry).await;
    let begin = Instant::now();
    let n: u64 = 600;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = ballast.url("/");
        tasks.push(tokio::spawn(async move {
            let client = Client::http1();
            // Paced over about 3 s, so the window turns under the load.
            let mut pace = tokio::time::interval(std::time::Duration::from_millis(20));
            for _ in 0..n / 4 {
                pace.tick().await;
                let r = client.get(&url).await.expect("response");
                assert_eq!(r.status, 500, "the last attempt's answer");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let seconds = begin.elapsed().as_secs_f64().ceil() + 1.0;
    let attempts = total(&bs);
    let bound = (1.0 + ratio) * n as f64 + floor * seconds;
    assert!(
        attempts as f64 <= bound,
        "{attempts} attempts for {n} requests in {seconds} s; bound {bound}"
    );
    let retries = attempts - n;
    eprintln!(
        "budget: {n} requests, {attempts} attempts in {seconds} s (bound {bound}, 3 × N = {})",
        3 * n
    );
    assert!(retries >= 60, "the budget allows some retries: {retries}");
    assert_eq!(
        metric(
            &ballast,
            "ballast_retries_total{target_group=\"web\",reason=\"500\"}"
        ),
        retries
    );
    assert!(
        metric(
            &ballast,
            "ballast_retry_budget_exhausted_total{target_group=\"web\"}"
        ) > 0,
        "the budget ran out"
    );
}

/// A timed-out GET is retried only where `on` lists `timeout`: never without a
/// policy (HTTP/2 groups used to resend it), once per attempt with one.
#[tokio::test]
async fn a_timeout_is_retried_only_when_listed() {
    for (protocol, retry, tried) in [
        ("http1", "", 1),
        ("http2", "", 1),
        ("http2", "retry = { attempts = 1, on = [\"timeout\"] }", 2),
        ("http1", "retry = { attempts = 1, on = [\"timeout\"] }", 2),
    ] {
        let bs = backends(2).await;
        let mut setup = Setup::new(&bs);
        setup.group_extra =
            format!("protocol = \"{protocol}\"\nresponse_timeout = \"300ms\"\n{retry}\n");
        let ballast = Ballast::start(&setup).await;
        ballast.all_healthy().await;
        let r = Client::http1()
            .get(&ballast.url("/?delay_ms=2000"))
            .await
            .expect("response");
        assert_eq!(r.status, 504, "{protocol} {retry}");
        assert_eq!(total(&bs), tried, "{protocol} {retry}");
        let timeouts = "ballast_retries_total{target_group=\"web\",reason=\"timeout\"}";
        assert_eq!(metric(&ballast, timeouts), tried - 1, "{protocol} {retry}");
    }
}

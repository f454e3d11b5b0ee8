//! Rate limits (`[[rate_limits]]`, attached with `rate_limits = [..]` to the
//! listener or a rule): over a limit, 429 at once with `Retry-After`,
//! `RateLimit-Policy` and `RateLimit`, reason `rate_limited` in the access log
//! and the metrics, and the target never sees the request. Rates are per minute
//! so that no token comes back while a test runs, whatever the machine's load.

use ballast_testkit::grpc::tonic::{self, Code};
use ballast_testkit::grpc::{client, EchoRequest, GrpcBackend};
use ballast_testkit::{backends, eventually, BackendHandle, Ballast, Client, Reply, Setup};
use http::Request;
use http_body_util::Full;

use crate::retries::metric;
use crate::SOON;

/// `[[rate_limits]]` named `name`.
fn limit(name: &str, key: &str, rate: &str, burst: u32) -> String {
    format!(
        "[[rate_limits]]\nname = \"{name}\"\nkey = {key}\nrate = \"{rate}\"\nburst = {burst}\n\n"
    )
}

async fn start(bs: &[BackendHandle], limits: &str, listener: &str, log: Option<&str>) -> Ballast {
    let mut setup = Setup::new(bs);
    setup.top_extra = limits.to_string();
    setup.listener_extra = listener.to_string();
    if let Some(log) = log {
        setup.access_log = log.to_string();
    }
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    ballast
}

async fn get(ballast: &Ballast, path: &str, api_key: Option<&str>) -> Reply {
    let mut req = Request::get(ballast.url(path));
    if let Some(k) = api_key {
        req = req.header("x-api-key", k);
    }
    Client::http1()
        .send(req.body(Full::default()).expect("request"))
        .await
        .expect("response")
}

async fn statuses(ballast: &Ballast, path: &str, api_key: Option<&str>, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(ballast, path, api_key).await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn over_the_limit_is_a_429_with_the_limits_headers_reason_and_metrics() {
    let bs = backends(1).await;
    let log = std::env::temp_dir().join(format!("ballast-ratelimit-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let ballast = start(
        &bs,
        &limit("per-ip", "\"client_ip\"", "1/m", 3),
        "rate_limits = [\"per-ip\"]",
        Some(&log.display().to_string()),
    )
    .await;
    let before = bs[0].requests();
    assert_eq!(statuses(&ballast, "/", None, 3).await, [200, 200, 200]);
    let r = get(&ballast, "/", None).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.text(), "429 Too Many Requests: rate_limited\n");
    // One token a minute: the next one is due in just under 60 s, less the
    // time the three took (whole seconds, rounded up).
    let retry: u64 = r.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!((50..=60).contains(&retry), "{retry}");
    assert_eq!(r.headers["ratelimit-policy"], "\"per-ip\";q=1;w=60");
    assert_eq!(
        r.headers["ratelimit"],
        format!("\"per-ip\";r=0;t={retry}").as_str()
    );
    assert_eq!(bs[0].requests() - before, 3, "the target never saw the 4th");

    let rejected = "ballast_rejected_requests_total{listener=\"public\",reason=\"rate_limited\"}";
    assert_eq!(metric(&ballast, rejected), 1);
    assert_eq!(
        metric(
            &ballast,
            "ballast_rate_limited_requests_total{rate_limit=\"per-ip\"}"
        ),
        1
    );
    assert_eq!(
        metric(&ballast, "ballast_rate_limit_keys{rate_limit=\"per-ip\"}"),
        1
    );
    assert_eq!(
        metric(
            &ballast,
            "ballast_rate_limit_max_keys{rate_limit=\"per-ip\"}"
        ),
        65_536
    );
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually("4 access-log lines", SOON, || async {
        read().lines().count() >= 4
    })
    .await;
    let reasons: Vec<String> = read()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            v["error_reason"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(reasons, ["", "", "", "rate_limited"]);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn each_header_value_has_its_own_bucket_and_no_header_is_not_limited() {
    let bs = backends(1).await;
    let ballast = start(
        &bs,
        &limit("per-key", "{ header = \"X-Api-Key\" }", "1/m", 2),
        "rate_limits = [\"per-key\"]",
        None,
    )
    .await;
    assert_eq!(statuses(&ballast, "/", Some("a"), 3).await, [200, 200, 429]);
    assert_eq!(statuses(&ballast, "/", Some("b"), 3).await, [200, 200, 429]);
    assert_eq!(statuses(&ballast, "/", None, 5).await, [200; 5]);
    assert_eq!(
        metric(&ballast, "ballast_rate_limit_keys{rate_limit=\"per-key\"}"),
        2
    );
}

#[tokio::test]
async fn a_rules_limit_counts_that_rules_requests_and_the_listeners_all() {
    let bs = backends(1).await;
    let limits = format!(
        "{}{}",
        limit("per-rule", "\"rule\"", "1/m", 2),
        limit("per-ip", "\"client_ip\"", "1/m", 6)
    );
    let rules = "rate_limits = [\"per-ip\"]\nrules = [{ priority = 5, conditions = [{ path = \"/limited*\" }], \
                 action = { type = \"forward\", target_group = \"web\" }, rate_limits = [\"per-rule\"] }]";
    let ballast = start(&bs, &limits, rules, None).await;
    assert_eq!(
        statuses(&ballast, "/limited", None, 3).await,
        [200, 200, 429]
    );
    let r = get(&ballast, "/limited", None).await;
    assert_eq!(r.headers["ratelimit-policy"], "\"per-rule\";q=1;w=60");
    // Other paths are not the rule's; the listener's limit counted all four
    // (the refused ones too, having admitted them first) and leaves two.
    assert_eq!(statuses(&ballast, "/", None, 3).await, [200, 200, 429]);
    let r = get(&ballast, "/", None).await;
    assert_eq!(r.headers["ratelimit-policy"], "\"per-ip\";q=1;w=60");
}

#[tokio::test]
async fn a_grpc_request_over_the_limit_gets_resource_exhausted() {
    let backend = GrpcBackend::start().await;
    let mut setup = Setup::with_targets(&[backend.addr]).grpc();
    setup.top_extra = limit("per-ip", "\"client_ip\"", "1/m", 1);
    setup.listener_extra = "rate_limits = [\"per-ip\"]".into();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    let mut c = client(&ballast.url("")).await;
    let req = || {
        tonic::Request::new(EchoRequest {
            message: "hi".into(),
            ..Default::default()
        })
    };
    c.unary(req()).await.expect("the first is admitted");
    let status = c.unary(req()).await.expect_err("the second is over");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("rate_limited"),
        "{}",
        status.message()
    );
    assert!(status.metadata().get("retry-after").is_some(), "{status:?}");
}

#[tokio::test]
async fn a_reload_keeps_an_unchanged_limits_state_and_a_changed_one_starts_afresh() {
    let bs = backends(1).await;
    let mut setup = Setup::new(&bs);
    setup.top_extra = limit("per-ip", "\"client_ip\"", "1/m", 2);
    setup.listener_extra = "rate_limits = [\"per-ip\"]".into();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    assert_eq!(statuses(&ballast, "/", None, 3).await, [200, 200, 429]);

    // Something else changes: the limit's table is the same, still empty.
    setup.group_extra.push_str("connect_timeout = \"2s\"\n");
    ballast.server.apply(setup.config()).await.expect("apply");
    assert_eq!(statuses(&ballast, "/", None, 1).await, [429]);
    let limited = "ballast_rate_limited_requests_total{rate_limit=\"per-ip\"}";
    assert_eq!(metric(&ballast, limited), 2);

    // The limit itself changes: a new table, full buckets.
    setup.top_extra = limit("per-ip", "\"client_ip\"", "1/m", 3);
    ballast.server.apply(setup.config()).await.expect("apply");
    assert_eq!(statuses(&ballast, "/", None, 4).await, [200, 200, 200, 429]);
    assert_eq!(metric(&ballast, limited), 1);
}

//! Global rate limits (`scope = "global"`, `[cluster] redis`): several real
//! ballast nodes count one limit through one real `redis-server`. The fleet
//! admits what the limit allows (not that times the nodes), a node stopped
//! halfway changes nothing, and with Redis gone each node admits or refuses by
//! `on_redis_error`, says so in its metrics, and counts globally again once
//! Redis is back.
//!
//! Load is paced by the clock and bounded in time; the admitted count is
//! compared with GCRA's `burst + rate × elapsed` for the time the load really
//! ran, so a slow machine changes the offered rate, not the verdict.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_testkit::{backends, eventually, BackendHandle, Ballast, Client, RedisServer, Setup};

use crate::retries::metric;
use crate::SOON;

/// A node named `name` with the global limit `fleet` on its listener.
async fn node(
    bs: &[BackendHandle],
    redis: &RedisServer,
    name: &str,
    rate: &str,
    burst: u32,
    on_error: &str,
    key: &str,
) -> Ballast {
    let mut setup = Setup::new(bs);
    setup.top_extra = format!(
        "[[rate_limits]]\nname = \"fleet\"\nkey = {key}\nrate = \"{rate}\"\nburst = {burst}\nscope = \"global\"\n\n\
         [cluster]\nnode_name = \"{name}\"\nredis = \"{}\"\non_redis_error = \"{on_error}\"\n",
        redis.url()
    );
    setup.listener_extra = "rate_limits = [\"fleet\"]".to_string();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    ballast
}

async fn fleet(bs: &[BackendHandle], redis: &RedisServer, rate: u32, burst: u32) -> Vec<Ballast> {
    let mut nodes = Vec::new();
    for i in 0..3 {
        let name = format!("node-{i}");
        let rate = format!("{rate}/s");
        nodes.push(node(bs, redis, &name, &rate, burst, "allow", "\"client_ip\"").await);
    }
    nodes
}

/// What a load run saw.
#[derive(Debug)]
struct Load {
    admitted: u64,
    limited: u64,
    elapsed: Duration,
}

/// Offer `per_node` requests/s to each node (two paced clients each) for
/// `length`; node `stop.0`'s clients stop after `stop.1` and the node shuts
/// down.
async fn offer(
    nodes: &[Ballast],
    per_node: u32,
    length: Duration,
    stop: Option<(usize, Duration)>,
) -> Load {
    let admitted = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (mut tasks, mut stopping) = (Vec::new(), Vec::new());
    for (i, n) in nodes.iter().enumerate() {
        let until = match stop {
            Some((s, at)) if s == i => at,
            _ => length,
        };
        let tasks = if until < length {
            &mut stopping
        } else {
            &mut tasks
        };
        for _ in 0..2 {
            let url = n.url("/");
            let (admitted, limited) = (admitted.clone(), limited.clone());
            tasks.push(tokio::spawn(async move {
                let client = Client::http1();
                let mut tick = tokio::time::interval(Duration::from_secs(2) / per_node);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while start.elapsed() < until {
                    tick.tick().await;
                    match client.get(&url).await.map(|r| r.status.as_u16()) {
                        Ok(200) => admitted.fetch_add(1, Ordering::Relaxed),
                        Ok(429) => limited.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected answer {other:?}"),
                    };
                }
            }));
        }
    }
    if let Some((s, _)) = stop {
        // Its clients stop first: a request cut by the shutdown is not a finding.
        for t in stopping {
            t.await.expect("load task");
        }
        nodes[s].server.shutdown().await;
    }
    for t in tasks {
        t.await.expect("load task");
    }
    Load {
        admitted: admitted.load(Ordering::Relaxed),
        limited: limited.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    }
}

/// Admitted against `burst + rate × elapsed`, as a fraction off.
///
/// The suite's bound, −6% to +8%: the design admits at most the other two
/// nodes' admissions of one settlement window more (2 × 100/s × (50 ms + the
/// lateness of a tick)): 2.5% of these 620 with ticks 25 ms late, 8% with
/// ticks 150 ms late, as on a machine busy with the rest of the suite. Below
/// the limit only a load that fell below it could err. Alone, five runs were
/// within −0.03% and +1.23%; the 20 s proof holds to 2%.
const SUITE_BOUND: std::ops::RangeInclusive<f64> = -0.06..=0.08;
fn error(load: &Load, rate: u32, burst: u32) -> f64 {
    let allowed = f64::from(burst) + f64::from(rate) * load.elapsed.as_secs_f64();
    (load.admitted as f64 - allowed) / allowed
}

/// The proof, shortened for the suite: three nodes, a global 100/s,
/// three times that offered; the fleet admits the limit, not three times it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_admit_one_global_limit_between_them() {
    let redis = RedisServer::start();
    let bs = backends(1).await;
    let (rate, burst) = (100, 20);
    let nodes = fleet(&bs, &redis, rate, burst).await;
    let load = offer(&nodes, rate, Duration::from_secs(6), None).await;
    let off = error(&load, rate, burst);
    eprintln!("three nodes, {rate}/s: {load:?}, {:+.2}%", off * 100.0);
    assert!(load.limited > load.admitted, "{load:?}");
    assert!(SUITE_BOUND.contains(&off), "{load:?}: {:+.2}%", off * 100.0);
    // Redis holds the one key in debt; each node counted through it.
    assert_eq!(redis.command(&["DBSIZE"]), "1");
    for n in &nodes {
        assert_eq!(metric(n, "ballast_redis_up"), 1);
        assert_eq!(
            metric(
                n,
                "ballast_rate_limit_redis_fallbacks_total{rate_limit=\"fleet\"}"
            ),
            0
        );
    }
}

/// The same with a node stopped halfway: the other two go on sharing the one
/// limit (what the stopped node admitted stays charged in Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_halfway_changes_nothing_for_the_fleet() {
    let redis = RedisServer::start();
    let bs = backends(1).await;
    let (rate, burst) = (100, 20);
    let nodes = fleet(&bs, &redis, rate, burst).await;
    let stop = Some((2, Duration::from_secs(3)));
    let load = offer(&nodes, rate, Duration::from_secs(6), stop).await;
    let off = error(&load, rate, burst);
    eprintln!("a node stopped at 3 s: {load:?}, {:+.2}%", off * 100.0);
    assert!(SUITE_BOUND.contains(&off), "{load:?}: {:+.2}%", off * 100.0);
}

/// The figure: 300/s, 900/s offered over three nodes for 20 s, within
/// 2% of 300 × 20 + burst; and the same with a node stopped at 10 s. Run by
/// hand (`cargo test -p ballast-proxy --test proxy global_limits -- --ignored
/// --nocapture`): 40 s of load is too long for the suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn proof_three_nodes_300_per_second_for_20_seconds() {
    for stop in [None, Some((2, Duration::from_secs(10)))] {
        let redis = RedisServer::start();
        let bs = backends(1).await;
        let (rate, burst) = (300, 300);
        let nodes = fleet(&bs, &redis, rate, burst).await;
        let commands = || redis.info("total_commands_processed").unwrap_or(0);
        let (before, calls_before) = (commands(), evalsha_calls(&redis));
        let load = offer(&nodes, rate, Duration::from_secs(20), stop).await;
        let per_node = |n: u64| n as f64 / load.elapsed.as_secs_f64() / 3.0;
        let calls = per_node(evalsha_calls(&redis) - calls_before);
        // Each call's TIME, GET and SET count as commands too.
        let per_node = per_node(commands() - before);
        let off = error(&load, rate, burst);
        eprintln!(
            "proof (node stopped: {stop:?}): admitted {} of {} offered in {:?}; allowed {:.0}; \
             {:+.2}%; Redis: {calls:.1} EVALSHA/s ({per_node:.1} commands/s) per node",
            load.admitted,
            load.admitted + load.limited,
            load.elapsed,
            f64::from(burst) + f64::from(rate) * load.elapsed.as_secs_f64(),
            off * 100.0
        );
        assert!(off.abs() <= 0.02, "{load:?}: {:+.2}%", off * 100.0);
    }
}

/// EVALSHA calls Redis has served (`INFO commandstats`).
fn evalsha_calls(redis: &RedisServer) -> u64 {
    let stats = redis.command(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls=")?.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn status(ballast: &Ballast, key: &str) -> u16 {
    let req = http::Request::get(ballast.url("/"))
        .header("x-api-key", key)
        .body(http_body_util::Full::default())
        .expect("request");
    Client::http1()
        .send(req)
        .await
        .expect("response")
        .status
        .as_u16()
}

async fn statuses(ballast: &Ballast, key: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(status(ballast, key).await);
    }
    out
}

async fn redis_up(ballast: &Ballast, up: u64) {
    eventually("ballast_redis_up changes", SOON, || async {
        metric(ballast, "ballast_redis_up") == up
    })
    .await;
}

/// Redis stopped: `allow` admits (and counts the fallbacks), a local limit
/// beside it still refuses; Redis back: the global limit counts again.
#[tokio::test]
async fn redis_down_fails_open_by_default_and_recovers() {
    let mut redis = RedisServer::start();
    let bs = backends(1).await;
    let ballast = node(
        &bs,
        &redis,
        "solo",
        "1/m",
        2,
        "allow",
        "{ header = \"x-api-key\" }",
    )
    .await;
    redis_up(&ballast, 1).await;
    assert_eq!(statuses(&ballast, "k1", 3).await, [200, 200, 429]);

    redis.stop();
    redis_up(&ballast, 0).await;
    // The first exchange to fail flips the node to its fallback.
    assert_eq!(statuses(&ballast, "k1", 3).await, [200, 200, 200]);
    let fallbacks = "ballast_rate_limit_redis_fallbacks_total{rate_limit=\"fleet\"}";
    assert_eq!(metric(&ballast, fallbacks), 3);
    assert!(metric(&ballast, "ballast_redis_errors_total") >= 1);

    redis.start_again();
    redis_up(&ballast, 1).await;
    // A fresh key: two admitted and charged to the (new, empty) Redis, then 429.
    assert_eq!(statuses(&ballast, "k2", 3).await, [200, 200, 429]);
    eventually("the key reaches Redis", SOON, || async {
        redis.command(&["DBSIZE"]) == "1"
    })
    .await;
    assert_eq!(metric(&ballast, fallbacks), 3);
}

/// `on_redis_error = "deny"`: with Redis stopped every request of the global
/// limit is a 429 (reason `rate_limited`, counted as a fallback), and the node
/// admits again once Redis is back.
#[tokio::test]
async fn redis_down_fails_closed_with_deny() {
    let mut redis = RedisServer::start();
    let bs = backends(1).await;
    let ballast = node(
        &bs,
        &redis,
        "solo",
        "100/s",
        100,
        "deny",
        "{ header = \"x-api-key\" }",
    )
    .await;
    redis_up(&ballast, 1).await;
    assert_eq!(statuses(&ballast, "k1", 2).await, [200, 200]);

    redis.stop();
    redis_up(&ballast, 0).await;
    let reply = Client::http1()
        .send(
            http::Request::get(ballast.url("/"))
                .header("x-api-key", "k1")
                .body(http_body_util::Full::default())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(reply.status, 429);
    assert_eq!(reply.text(), "429 Too Many Requests: rate_limited\n");
    assert_eq!(reply.headers["retry-after"], "1");
    assert_eq!(statuses(&ballast, "k2", 2).await, [429, 429]);
    let fallbacks = "ballast_rate_limit_redis_fallbacks_total{rate_limit=\"fleet\"}";
    assert_eq!(metric(&ballast, fallbacks), 3);

    redis.start_again();
    redis_up(&ballast, 1).await;
    assert_eq!(statuses(&ballast, "k3", 2).await, [200, 200]);
}

/// A reload that leaves `[cluster]` and the limit as they were keeps the
/// limit's state and its Redis link: the key over its limit stays over it.
#[tokio::test]
async fn a_reload_keeps_a_global_limit_and_its_link() {
    let redis = RedisServer::start();
    let bs = backends(1).await;
    let ballast = node(
        &bs,
        &redis,
        "solo",
        "1/m",
        2,
        "allow",
        "{ header = \"x-api-key\" }",
    )
    .await;
    assert_eq!(statuses(&ballast, "k1", 3).await, [200, 200, 429]);
    let config = ballast.server.snapshot().config.as_ref().clone();
    ballast.server.apply(config).await.expect("apply");
    assert_eq!(statuses(&ballast, "k1", 2).await, [429, 429]);
    assert_eq!(metric(&ballast, "ballast_redis_errors_total"), 0);
}

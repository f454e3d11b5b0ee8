//! Anomaly detection and mitigation end to end: five real backends, one of them a
//! gray failure (`fail_rate` 0.3 while passing its health check), a real ballast,
//! and a paced client load. The arithmetic (thresholds, ladder, cap, the 2-minute
//! no-false-verdict property) is unit-tested in `resilience/tests.rs`; these
//! tests check what a client and an operator see, within the real 10 s window and
//! 5 s steps.

use std::sync::Arc;
use std::time::Duration;

use ballast_proxy::{AnomalyWhy, Server, Target};
use ballast_testkit::{backend_with, eventually, BackendConfig, BackendHandle};
use ballast_testkit::{Ballast, Client, Setup};
use tokio::time::Instant;

/// Five backends; `b2` answers 500 to a share `bad` of requests, the others to
/// a share `rest`.
async fn five(bad: f64, rest: f64) -> Vec<BackendHandle> {
    let mut bs = Vec::new();
    for i in 0..5 {
        let fail_rate = if i == 2 { bad } else { rest };
        bs.push(
            backend_with(BackendConfig {
                fail_rate,
                ..BackendConfig::new(format!("b{i}"))
            })
            .await,
        );
    }
    bs
}

/// A weighted-random group over `bs` with `anomaly_mitigation = mode`, reached by
/// paths under `/{name}/`.
fn group(name: &str, mode: &str, bs: &[BackendHandle]) -> (String, String) {
    let targets: Vec<String> = bs
        .iter()
        .map(|b| format!("{{ address = \"{}\" }}", b.addr()))
        .collect();
    let table = format!(
        "[[target_groups]]\nname = \"{name}\"\nalgorithm = \"weighted_random\"\nanomaly_mitigation = \"{mode}\"\ntargets = [{}]\n[target_groups.health_check]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nhealthy_threshold = 2\n\n",
        targets.join(", ")
    );
    let rule = format!(
        "[[listeners.rules]]\npriority = {}\nconditions = [{{ path = \"/{name}/*\" }}]\naction = {{ type = \"forward\", target_group = \"{name}\" }}\n",
        name.len()
    );
    (table, rule)
}

/// Start a ballast whose group `web` has `anomaly_mitigation = mode`, plus the
/// `others` groups (name, mode) over the same backends; wait until all are healthy.
async fn start(bs: &[BackendHandle], mode: &str, others: &[(&str, &str)]) -> Ballast {
    let mut setup = Setup::new(bs).algorithm("weighted_random");
    setup.group_extra = format!("anomaly_mitigation = \"{mode}\"\n");
    for (name, mode) in others {
        let (table, rule) = group(name, mode, bs);
        setup.extra.push_str(&table);
        setup.listener_extra.push_str(&rule);
    }
    let ballast = Ballast::start(&setup).await;
    let server = ballast.server.clone();
    let names: Vec<String> = std::iter::once("web".to_string())
        .chain(others.iter().map(|(n, _)| n.to_string()))
        .collect();
    eventually("every group healthy", Duration::from_secs(10), || {
        let snapshot = server.snapshot();
        let ok = names.iter().all(|n| {
            snapshot
                .group(n)
                .is_some_and(|g| g.targets.iter().all(|t| t.is_healthy()))
        });
        async move { ok }
    })
    .await;
    ballast
}

/// One answer: when (since the load began), and whether it was a 5xx.
type Outcome = (Duration, bool);

/// Paced load on `url` for `length`: `workers` clients, each sending one request
/// every 10 ms at most (so at most 100 × `workers` a second, whatever the
/// machine's speed). Every answer is recorded.
async fn load(url: String, workers: usize, length: Duration) -> Vec<Outcome> {
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = Client::http1();
            let mut pace = tokio::time::interval(Duration::from_millis(10));
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen = Vec::new();
            while begin.elapsed() < length {
                pace.tick().await;
                let r = client.get(&url).await.expect("an answer");
                seen.push((begin.elapsed(), r.status.is_server_error()));
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("load task"));
    }
    all
}

/// Answers and 5xx among the outcomes from `from` on.
fn tally(outcomes: &[Outcome], from: Duration) -> (usize, usize) {
    let late: Vec<_> = outcomes.iter().filter(|(at, _)| *at >= from).collect();
    (late.len(), late.iter().filter(|(_, e)| *e).count())
}

fn target(server: &Server, group: &str, addr: std::net::SocketAddr) -> Arc<Target> {
    let snapshot = server.snapshot();
    let g = snapshot.group(group).expect("group");
    g.targets
        .iter()
        .find(|t| t.addr == addr)
        .expect("target")
        .clone()
}

/// The gray failure: with mitigation on, within 30 s of the failure
/// starting, the client-visible 5xx share is at most a fifth of what it is with
/// mitigation off, under the same load at the same time (two groups over the
/// same five backends). The target is reported anomalous in both groups, its cut
/// is explained, and only the group with mitigation on cuts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gray_failure_is_cut_to_a_fifth_of_its_errors_within_30s() {
    let bs = five(0.3, 0.0).await;
    let ballast = start(&bs, "on", &[("off", "off")]).await;
    let length = Duration::from_secs(30);
    let (on, off) = tokio::join!(
        load(ballast.url("/"), 2, length),
        load(ballast.url("/off/"), 2, length),
    );
    // The last 12 s of the 30: the cut has had 18 s (detection, then 3-4 steps).
    let from = Duration::from_secs(18);
    let (on_n, on_5xx) = tally(&on, from);
    let (off_n, off_5xx) = tally(&off, from);
    let on_share = on_5xx as f64 / on_n as f64;
    let off_share = off_5xx as f64 / off_n as f64;
    eprintln!(
        "last 12 s: mitigation on {on_5xx}/{on_n} = {:.2}% 5xx, off {off_5xx}/{off_n} = {:.2}%",
        on_share * 100.0,
        off_share * 100.0
    );
    assert!(
        on_n >= 600 && off_n >= 600,
        "load too thin: {on_n}, {off_n}"
    );
    // Off: a fifth of the requests reach a target failing 30%: about 6%.
    assert!((0.03..=0.10).contains(&off_share), "off: {off_5xx}/{off_n}");
    assert!(
        on_share <= off_share / 5.0,
        "on {on_5xx}/{on_n} against off {off_5xx}/{off_n}"
    );

    let bad = bs[2].addr();
    let server = &ballast.server;
    let t = target(server, "web", bad);
    let verdict = t.anomaly.load();
    assert!(verdict.anomalous, "{verdict:?}");
    assert!(t.is_mitigated() && t.mitigation_factor() <= 125);
    assert!(t.is_healthy(), "anomalous does not change health");
    let off_t = target(server, "off", bad);
    assert!(off_t.anomaly.load().anomalous, "off still detects");
    assert!(!off_t.is_mitigated());
    assert!(server.anomalies("off").is_empty(), "off explains no cut");
    let good = target(server, "web", bs[0].addr());
    assert!(!good.anomaly.load().anomalous && !good.is_mitigated());

    let decisions = server.anomalies("web");
    let first = decisions
        .iter()
        .find(|d| d.target == bad.to_string())
        .expect("the cut is explained");
    eprintln!("{}", serde_json::to_string_pretty(first).expect("json"));
    assert_eq!(first.why, AnomalyWhy::StepDown);
    assert_eq!((first.weight_before, first.weight_after), (1.0, 0.5));
    assert!(first.applied && first.verdict == "anomalous");
    assert!(first.error_rate > first.threshold && first.requests >= 20);
    assert!(decisions.iter().all(|d| d.target == bad.to_string()));

    let metrics = server.metrics_text();
    for line in [
        "ballast_anomalous_targets{target_group=\"web\"} 1",
        "ballast_anomalous_targets{target_group=\"off\"} 1",
        "ballast_mitigated_targets{target_group=\"web\"} 1",
        "ballast_mitigated_targets{target_group=\"off\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing");
    }
}

/// `monitor`: the failing target is reported anomalous and the cuts mitigation
/// would make are explained, but no effective weight ever changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_explains_but_never_changes_a_weight() {
    let bs = five(0.3, 0.0).await;
    let ballast = start(&bs, "monitor", &[]).await;
    let server = ballast.server.clone();
    let bad = bs[2].addr();
    let watch = tokio::spawn({
        let server = server.clone();
        async move {
            let begin = Instant::now();
            let mut looked = 0;
            while begin.elapsed() < Duration::from_secs(12) {
                let snapshot = server.snapshot();
                let g = snapshot.group("web").expect("group");
                for t in &g.targets {
                    assert_eq!(t.effective_weight(), u64::from(Target::FULL), "{}", t.addr);
                }
                looked += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            looked
        }
    });
    let outcomes = load(ballast.url("/"), 2, Duration::from_secs(12)).await;
    assert!(watch.await.expect("watcher") > 100);
    let (n, errors) = tally(&outcomes, Duration::ZERO);
    assert!(errors > 0 && n > 500, "{errors}/{n}");

    let t = target(&server, "web", bad);
    assert!(t.anomaly.load().anomalous);
    assert!(!t.is_mitigated());
    let decisions = server.anomalies("web");
    assert!(decisions.len() >= 2, "{decisions:?}");
    let whys: Vec<AnomalyWhy> = decisions.iter().map(|d| d.why).collect();
    assert_eq!(&whys[..2], [AnomalyWhy::StepDown, AnomalyWhy::StepDown]);
    assert_eq!(
        (decisions[1].weight_before, decisions[1].weight_after),
        (0.5, 0.25),
        "the would-be factor is followed"
    );
    assert!(decisions
        .iter()
        .all(|d| !d.applied && d.mode == "monitor" && d.target == bad.to_string()));
    assert!(server
        .metrics_text()
        .contains("ballast_mitigated_targets{target_group=\"web\"} 0"));
}

/// A cut target that recovers gets its full weight back within 60 s; a reload
/// in between keeps the cut and the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_target_is_back_at_full_weight_within_60s() {
    let bs = five(0.3, 0.0).await;
    let ballast = start(&bs, "on", &[]).await;
    let server = ballast.server.clone();
    let bad = bs[2].addr();
    let t = target(&server, "web", bad);
    let url = ballast.url("/");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let stop = stop.clone();
        async move {
            let client = Client::http1();
            let mut pace = tokio::time::interval(Duration::from_millis(5));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                pace.tick().await;
                client.get(&url).await.expect("an answer");
            }
        }
    });
    let cut = t.clone();
    eventually(
        "the failing target cut twice",
        Duration::from_secs(20),
        || {
            let f = cut.mitigation_factor();
            async move { f <= 250 }
        },
    )
    .await;
    // A reload keeps the cut (it lives in the target), the window and the history.
    let explained = server.anomalies("web").len();
    let config = server.snapshot().config.as_ref().clone();
    server.apply(config).await.expect("reload");
    assert!(server.anomalies("web").len() >= explained);
    let t = target(&server, "web", bad);
    assert!(t.mitigation_factor() <= 250, "the cut survives the reload");
    bs[2].set_fail_rate(0.0);
    let healed = Instant::now();
    let back = t.clone();
    eventually("full weight again", Duration::from_secs(60), || {
        let f = back.mitigation_factor();
        async move { f == Target::FULL }
    })
    .await;
    eprintln!(
        "back to full weight {:?} after the recovery",
        healed.elapsed()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.expect("load");
    assert!(!t.anomaly.load().anomalous);
    let decisions = server.anomalies("web");
    let last = decisions.last().expect("decisions");
    assert_eq!(last.why, AnomalyWhy::Recovered);
    assert_eq!(last.weight_after, 1.0);
    assert!(decisions.iter().any(|d| d.why == AnomalyWhy::StepUp));
}

/// No false verdicts: five targets failing the same 1% of requests, under load
/// for 15 s, are never anomalous and never cut (the 2-minute property is
/// unit-tested on synthetic counters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_targets_at_one_percent_are_never_anomalous() {
    let bs = five(0.01, 0.01).await;
    let ballast = start(&bs, "on", &[]).await;
    let server = ballast.server.clone();
    let watch = tokio::spawn({
        let server = server.clone();
        async move {
            let begin = Instant::now();
            let mut most = 0;
            while begin.elapsed() < Duration::from_secs(15) {
                let snapshot = server.snapshot();
                for t in &snapshot.group("web").expect("group").targets {
                    let v = t.anomaly.load();
                    assert!(!v.anomalous && !t.is_mitigated(), "{}: {v:?}", t.addr);
                    most = most.max(v.requests);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            most
        }
    });
    let outcomes = load(ballast.url("/"), 2, Duration::from_secs(15)).await;
    let most = watch.await.expect("watcher");
    assert!(
        most >= 100,
        "targets were judged: {most} requests in a window"
    );
    let (n, errors) = tally(&outcomes, Duration::ZERO);
    assert!(errors > 0 && n > 1000, "{errors}/{n}");
    assert!(server.anomalies("web").is_empty());
}

//! Hostile HTTP/2 clients against a real `ballast serve` process: its memory
//! while each attack runs (a test), and the benchmark behind the README's
//! figures (`bench/h2-attacks.sh`: each attack for 10 s, the well-behaved
//! client's p99 and ballast's RSS before and during, as a table).
//!
//! The attacks are testkit's `h2_hostile` (raw frames over h2c); the test in
//! `crates/proxy/tests/proxy/h2_attacks.rs` checks the GOAWAY, the counter and
//! the latency of each in process.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_testkit::h2_hostile::{Attack, Closed, CALM};
use ballast_testkit::{backends, BallastProcess, Client, Setup};

use super::BIN;

/// Run `attack` from `attackers` threads, each a round after another on fresh
/// connections (`pace` apart; zero: flat out), until `stop` is set or `time` has
/// passed: how each connection was closed.
fn attack_for(
    attack: Attack,
    addr: SocketAddr,
    attackers: usize,
    time: Duration,
    pace: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Closed>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..attackers {
                let stop = stop.clone();
                tasks.push(tokio::spawn(async move {
                    let mut closes = Vec::new();
                    while started.elapsed() < time && !stop.load(Ordering::Relaxed) {
                        closes.push(attack.round(addr, closes.len()).await);
                        if !pace.is_zero() {
                            tokio::time::sleep(pace).await;
                        }
                    }
                    closes
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.expect("attacker"));
            }
            all
        })
    })
}

fn config(bs: &[ballast_testkit::BackendHandle]) -> String {
    let mut setup = Setup::new(bs);
    // The zero-window stall limit: closed a second after its window shut.
    setup.listener_extra.push_str("idle_timeout = \"1s\"\n");
    setup.toml()
}

/// Every attack in turn, four connections at a time for a second each (four
/// zero-window clients hold 100 streams each for a second): ballast's resident
/// memory grows by less than 64 MiB. The bound: the zero-window clients' response
/// buffers, 100 streams × 64 KiB = 6.25 MiB each, 25 MiB for four; the rest
/// is per-connection state and allocator slack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_http2_attacks() {
    let bs = backends(1).await;
    let p = BallastProcess::spawn(std::path::Path::new(BIN), &config(&bs));
    let good = Client::h2c();
    let url = p.url("/");
    for _ in 0..20 {
        assert_eq!(good.get(&url).await.expect("warm-up").status, 200);
    }
    let baseline = p.rss_kib();
    for attack in Attack::ALL {
        let stop = Arc::new(AtomicBool::new(false));
        let attackers = attack_for(
            attack,
            p.addr,
            4,
            Duration::from_secs(1),
            Duration::ZERO,
            stop,
        );
        let closes = tokio::task::spawn_blocking(move || attackers.join().expect("join"))
            .await
            .expect("join");
        assert!(
            closes.iter().all(|c| matches!(c, Some((CALM, _)))),
            "{}: {closes:?}",
            attack.name()
        );
        // A new client: the last one's connection was idle through the attack
        // and closed at `idle_timeout`.
        let after = Client::h2c().get(&url).await.expect("served");
        assert_eq!(after.status, 200, "{} then served", attack.name());
    }
    let peak = p.peak_rss_kib();
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!("HTTP/2 attacks: RSS {baseline} KiB before, peak {peak} KiB");
    assert!(
        growth_mib < 64,
        "peak RSS grew by {growth_mib} MiB (baseline {baseline} KiB, peak {peak} KiB)"
    );
}

/// p99 of sequential requests over one h2c connection for `time`, and how many.
async fn p99_for(client: &Client, url: &str, time: Duration) -> (Duration, usize) {
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed() < time {
        let t = Instant::now();
        let r = client.get(url).await.expect("the good client is served");
        assert_eq!(r.status, 200);
        times.push(t.elapsed());
    }
    times.sort();
    let i = (times.len() * 99 / 100).saturating_sub(1);
    (times[i], times.len())
}

/// The benchmark (`bench/h2-attacks.sh` runs it on a release build): for each
/// attack, the good client's p99 over 3 s unloaded, then over 10 s while two
/// attackers repeat the attack; ballast's RSS before and at most during
/// (sampled every 100 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: bench/h2-attacks.sh"]
async fn h2_attacks_benchmark() {
    let secs: u64 = std::env::var("H2_ATTACK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    // Milliseconds each attacker waits between connections (0: flat out, when
    // the attackers' own CPU competes with ballast's on a small machine).
    let pace = Duration::from_millis(
        std::env::var("H2_ATTACK_PACE_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    );
    let bs = backends(1).await;
    let p = BallastProcess::spawn(std::path::Path::new(BIN), &config(&bs));
    let good = Client::h2c();
    let url = p.url("/");
    p99_for(&good, &url, Duration::from_secs(1)).await; // warm-up
    println!(
        "{:<22} {:>8} {:>30} {:>11} {:>11} {:>6} {:>10} {:>10}",
        "attack", "closed", "GOAWAY", "p99 before", "p99 during", "ratio", "RSS before", "RSS max"
    );
    for attack in Attack::ALL {
        let (before, _) = p99_for(&good, &url, Duration::from_secs(3)).await;
        let rss_before = p.rss_kib();
        let stop = Arc::new(AtomicBool::new(false));
        let time = Duration::from_secs(secs);
        let attackers = attack_for(attack, p.addr, 2, time, pace, stop.clone());
        let sampling = Arc::new(AtomicBool::new(true));
        let pid = p.pid();
        let sampler = {
            let sampling = sampling.clone();
            std::thread::spawn(move || {
                let mut max = 0;
                while sampling.load(Ordering::Relaxed) {
                    max = max.max(rss_kib(pid));
                    std::thread::sleep(Duration::from_millis(100));
                }
                max
            })
        };
        let (during, _) = p99_for(&good, &url, time).await;
        stop.store(true, Ordering::Relaxed);
        let closes = tokio::task::spawn_blocking(move || attackers.join().expect("join"))
            .await
            .expect("join");
        sampling.store(false, Ordering::Relaxed);
        let rss_max = sampler.join().expect("sampler");
        let calm = closes
            .iter()
            .filter(|c| matches!(c, Some((CALM, _))))
            .count();
        let goaway = match closes.first() {
            Some(Some((code, debug))) if calm == closes.len() => format!("{code:#x} {debug}"),
            _ => format!("{calm}/{} calm", closes.len()),
        };
        println!(
            "{:<22} {:>8} {:>30} {:>9.2}ms {:>9.2}ms {:>6.2} {:>7} MiB {:>6} MiB",
            attack.name(),
            closes.len(),
            goaway,
            before.as_secs_f64() * 1e3,
            during.as_secs_f64() * 1e3,
            during.as_secs_f64() / before.as_secs_f64(),
            rss_before / 1024,
            rss_max / 1024,
        );
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

//! Each algorithm spreads requests by weight.

use std::collections::HashMap;

use ballast_testkit::{backends, Ballast, Client, Setup};

async fn spread(ballast: &Ballast, n: usize) -> HashMap<String, usize> {
    let client = Client::http1();
    let mut counts = HashMap::new();
    for _ in 0..n {
        let r = client.get(&ballast.url("/")).await.expect("request");
        assert_eq!(r.status, 200);
        *counts.entry(r.backend()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn round_robin_is_exact_by_weight() {
    let bs = backends(3).await;
    let ballast = Ballast::start(&Setup::new(&bs).weights(&[1, 2, 3])).await;
    ballast.all_healthy().await;
    let c = spread(&ballast, 600).await;
    // Smooth weighted round robin is exact over whole cycles (6 requests each).
    assert_eq!((c["b0"], c["b1"], c["b2"]), (100, 200, 300), "{c:?}");
}

#[tokio::test]
async fn weighted_random_follows_weights() {
    let bs = backends(2).await;
    let ballast = Ballast::start(
        &Setup::new(&bs)
            .algorithm("weighted_random")
            .weights(&[1, 3]),
    )
    .await;
    ballast.all_healthy().await;
    let n = 2000;
    let c = spread(&ballast, n).await;
    let share = c["b1"] as f64 / n as f64;
    // Binomial sd is ~1%; 5 points is far outside chance.
    assert!((share - 0.75).abs() < 0.05, "b1 share {share:.3}, {c:?}");
}

#[tokio::test]
async fn least_outstanding_avoids_the_busy_target() {
    let bs = backends(2).await;
    let ballast = Ballast::start(&Setup::new(&bs).algorithm("least_outstanding_requests")).await;
    ballast.all_healthy().await;
    let client = Client::http1();
    // Hold requests open on whichever targets they land on, until both are busy.
    let slow_url = ballast.url("/?delay_ms=3000");
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.get(&slow_url).await }
    });
    ballast_testkit::eventually(
        "the slow request reaches a backend",
        crate::SOON,
        || async { bs.iter().map(|b| b.requests()).sum::<u64>() == 1 },
    )
    .await;
    let busy = if bs[0].requests() == 1 { "b0" } else { "b1" };
    let c = spread(&ballast, 20).await;
    assert_eq!(
        c.get(busy),
        None,
        "no request may go to the busy target: {c:?}"
    );
    assert_eq!(slow.await.expect("join").expect("slow request").status, 200);
}

#[tokio::test]
async fn zero_weight_gets_nothing() {
    let bs = backends(2).await;
    let ballast = Ballast::start(&Setup::new(&bs).weights(&[0, 1])).await;
    ballast.all_healthy().await;
    let c = spread(&ballast, 50).await;
    assert_eq!(c.get("b0"), None, "{c:?}");
}

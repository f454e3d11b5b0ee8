//! Shuffle sharding (`shuffle_shard` on a target group): each tenant lands on its
//! own two of eight targets, a poison tenant breaks only its own two, a request
//! without the key uses all eight, and a shard whose targets are all down fails
//! open to the rest of the group.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::Full;

use ballast_testkit::{
    backend_with, eventually, BackendConfig, BackendHandle, Ballast, Client, Poison, Reply, Setup,
};

use crate::retries::metric;
use crate::SOON;

const POISON: &str = "X-Tenant: poison";

/// Eight backends `b0`..`b7`, each poisoned for good by a request of tenant
/// `poison`.
async fn eight() -> Vec<BackendHandle> {
    let mut bs = Vec::new();
    for i in 0..8 {
        let poison = Poison::parse(POISON).expect("poison");
        bs.push(
            backend_with(BackendConfig {
                poison: Some(poison),
                ..BackendConfig::new(format!("b{i}"))
            })
            .await,
        );
    }
    bs
}

/// Group `web` over `bs`, shards of 2 by `X-Tenant`; `extra` adds keys to `shuffle_shard`.
async fn start(bs: &[BackendHandle], algorithm: &'static str, extra: &str) -> Ballast {
    let mut setup = Setup::new(bs).algorithm(algorithm);
    setup.group_extra =
        format!("shuffle_shard = {{ key = {{ header = \"X-Tenant\" }}, size = 2{extra} }}\n");
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    ballast
}

async fn get(client: &Client, ballast: &Ballast, tenant: Option<&str>) -> Reply {
    let mut req = Request::get(ballast.url("/"));
    if let Some(t) = tenant {
        req = req.header("x-tenant", t);
    }
    client
        .send(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("response")
}

/// The backends ballast's group says a tenant's shard holds.
fn shard_of(ballast: &Ballast, bs: &[BackendHandle], tenant: &str) -> BTreeSet<String> {
    let snapshot = ballast.server.snapshot();
    let group = snapshot.group("web").expect("group web");
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", HeaderValue::from_str(tenant).expect("value"));
    let shard = group.shard_for(&headers, b"127.0.0.1").expect("a shard");
    shard
        .members()
        .iter()
        .map(|&i| {
            let addr = group.targets[usize::from(i)].addr;
            let b = bs.iter().find(|b| b.addr() == addr).expect("a backend");
            b.name().to_string()
        })
        .collect()
}

/// A tenant always lands on the same two targets (the ones its shard names),
/// whatever the algorithm; a request without the key spreads over all eight.
#[tokio::test]
async fn a_tenant_always_lands_on_its_own_two_targets() {
    for algorithm in [
        "round_robin",
        "least_outstanding_requests",
        "weighted_random",
    ] {
        let bs = eight().await;
        let ballast = start(&bs, algorithm, "").await;
        let client = Client::http1();
        let mut seen_shards = BTreeSet::new();
        for t in 0..12 {
            let tenant = format!("tenant-{t}");
            let shard = shard_of(&ballast, &bs, &tenant);
            assert_eq!(shard.len(), 2);
            let mut served = BTreeSet::new();
            for _ in 0..24 {
                let r = get(&client, &ballast, Some(&tenant)).await;
                assert_eq!(r.status, 200, "{algorithm} {tenant}: {}", r.text());
                served.insert(r.backend());
            }
            // 24 requests over two targets: both serve (a miss is 2 × 2^-24).
            assert_eq!(served, shard, "{algorithm} {tenant}");
            seen_shards.insert(shard);
        }
        assert!(
            seen_shards.len() >= 6,
            "{algorithm}: shards differ by tenant: {seen_shards:?}"
        );
        let mut served = BTreeMap::new();
        for _ in 0..160 {
            let r = get(&client, &ballast, None).await;
            assert_eq!(r.status, 200);
            *served.entry(r.backend()).or_insert(0) += 1;
        }
        assert_eq!(
            served.len(),
            8,
            "{algorithm}: no key, all targets: {served:?}"
        );
        let unavailable = "ballast_shuffle_shard_unavailable_total{target_group=\"web\"}";
        assert_eq!(metric(&ballast, unavailable), 0);
    }
}

/// The proof of issue 21 §4: one tenant's requests poison the targets they
/// reach. With `fail_open = false` and retries on 500, the poison never leaves
/// its shard: exactly its two targets are poisoned, every tenant sharing at
/// most one of them sees no error (a retry moves to the shard's other target,
/// then health checks take the poisoned one out), and only tenants with the
/// same two targets (1 in 28 of them) fail.
#[tokio::test]
async fn a_poison_tenant_breaks_only_its_own_shard() {
    let bs = eight().await;
    let mut setup = Setup::new(&bs).algorithm("round_robin");
    setup.group_extra = "shuffle_shard = { key = { header = \"X-Tenant\" }, size = 2, fail_open = false }\n\
         retry = { attempts = 2, on = [\"500\"], budget = { ratio = 1.0, min_per_second = 1000 } }\n"
        .to_string();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    let client = Client::http1();

    let poisoned = shard_of(&ballast, &bs, "poison");
    let poisoned_addrs: BTreeSet<_> = bs
        .iter()
        .filter(|b| poisoned.contains(b.name()))
        .map(|b| b.addr())
        .collect();
    let tenants: Vec<(String, usize)> = (0..40)
        .map(|t| {
            let tenant = format!("tenant-{t}");
            let shared = shard_of(&ballast, &bs, &tenant)
                .intersection(&poisoned)
                .count();
            (tenant, shared)
        })
        .collect();
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    let mut poison_errors = 0;
    // Rounds of one request per tenant, the poison tenant first in each, until
    // health checks have seen the poisoned targets fail (and a few rounds more).
    let mut after_down = 0;
    for round in 0..400 {
        // Counted before the round: the poison never wears off, so every request
        // of a round that starts with its targets out finds its shard down.
        let snapshot = ballast.server.snapshot();
        let group = snapshot.group("web").expect("web");
        let down = group
            .targets
            .iter()
            .filter(|t| !t.is_healthy())
            .all(|t| poisoned_addrs.contains(&t.addr))
            && group.healthy_count() == 6;
        if down {
            after_down += 1;
        }
        if after_down > 5 && round >= 10 {
            break;
        }
        let r = get(&client, &ballast, Some("poison")).await;
        if r.status != 200 {
            poison_errors += 1;
        }
        for (tenant, _) in &tenants {
            let r = get(&client, &ballast, Some(tenant)).await;
            if r.status != 200 {
                *errors.entry(tenant.as_str()).or_insert(0) += 1;
            }
        }
    }
    assert!(
        after_down >= 5,
        "health checks took the poisoned targets out"
    );
    let poisoned_now: BTreeSet<String> = bs
        .iter()
        .filter(|b| b.is_poisoned())
        .map(|b| b.name().to_string())
        .collect();
    assert_eq!(poisoned_now, poisoned, "the poison reached its shard only");
    assert!(poison_errors > 0);
    let by_overlap = |n: usize| tenants.iter().filter(|(_, s)| *s == n).count();
    eprintln!(
        "tenants sharing 0/1/2 targets with the poison: {}/{}/{}; errors {errors:?}; poison errors {poison_errors}",
        by_overlap(0),
        by_overlap(1),
        by_overlap(2)
    );
    for (tenant, shared) in &tenants {
        let failed = errors.get(tenant.as_str()).copied().unwrap_or(0);
        if *shared < 2 {
            assert_eq!(
                failed, 0,
                "{tenant} shares {shared} target(s) with the poison"
            );
        } else {
            assert!(failed > 0, "{tenant} has the poison's shard");
        }
    }
    // The poison tenant's shard has no healthy target; it keeps to it.
    let unavailable = "ballast_shuffle_shard_unavailable_total{target_group=\"web\"}";
    let failed_open = "ballast_shuffle_shard_fail_open_total{target_group=\"web\"}";
    assert!(
        metric(&ballast, unavailable) >= 5,
        "one per poison request once down"
    );
    assert_eq!(metric(&ballast, failed_open), 0);
}

/// A shard whose two targets are down fails open (the default) to the healthy
/// rest of the group, counted; once they recover the tenant is back on them.
#[tokio::test]
async fn a_shard_with_every_target_down_fails_open_to_the_rest() {
    let bs = eight().await;
    let ballast = start(&bs, "round_robin", "").await;
    let client = Client::http1();
    let shard = shard_of(&ballast, &bs, "acme");
    for b in bs.iter().filter(|b| shard.contains(b.name())) {
        b.set_healthy(false);
    }
    let server = ballast.server.clone();
    eventually("the shard's targets marked down", SOON, || {
        let server = server.clone();
        async move { server.snapshot().group("web").expect("web").healthy_count() == 6 }
    })
    .await;
    let mut served = BTreeSet::new();
    for _ in 0..60 {
        let r = get(&client, &ballast, Some("acme")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        served.insert(r.backend());
    }
    assert!(served.is_disjoint(&shard), "{served:?} avoids {shard:?}");
    assert!(
        served.len() >= 4,
        "spread over the healthy rest: {served:?}"
    );
    let failed_open = "ballast_shuffle_shard_fail_open_total{target_group=\"web\"}";
    assert_eq!(metric(&ballast, failed_open), 60);

    for b in &bs {
        b.set_healthy(true);
    }
    ballast.all_healthy().await;
    for _ in 0..20 {
        let r = get(&client, &ballast, Some("acme")).await;
        assert!(shard.contains(&r.backend()), "back on its shard");
    }
    assert_eq!(metric(&ballast, failed_open), 60);
}

//! The parts of a global limit that need no Redis: charging the fleet's debt
//! to a node's table, the fleet's hash, and the decisions while Redis fails
//! (a link to a port nobody listens on). The exchange with a real Redis is
//! tested end to end in `tests/proxy/global_limits.rs`.

use std::time::Duration;

use ballast_config::cluster::OnRedisError;
use ballast_config::Config;

use super::*;

fn limit(rate: &str, burst: u32) -> RateLimitConfig {
    let text = format!(
        "[[rate_limits]]\nname = \"fleet\"\nkey = \"client_ip\"\nrate = \"{rate}\"\nburst = {burst}\n\
         scope = \"global\"\n[cluster]\nnode_name = \"n\"\nredis = \"redis://127.0.0.1:1\"\n\
         [[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n\
         default_action = {{ type = \"fixed_response\", status = 200 }}\n"
    );
    Config::from_toml(&text).expect("valid").rate_limits[0].clone()
}

#[test]
fn the_fleets_debt_raises_a_nodes_tat() {
    let table = Table::new(Gcra::new(Duration::from_millis(100), 5), 64);
    let now = rate_limit::ticks(Instant::now());
    let (take, slot) = table.take_slot(7, now);
    assert_eq!(take, Take::Admitted { remaining: 4 });
    let index = slot.expect("a slot");
    assert!(table.holds(index, 7));
    assert!(!table.holds(index, 8));
    // The fleet is 2 s in debt: nothing is admitted until 1.5 s of it is paid.
    let debt = rate_limit::to_ticks(Duration::from_secs(2));
    table.raise(index, 7, now + debt);
    match table.take_slot(7, now).0 {
        Take::Limited { wait } => assert_eq!(wait, Duration::from_millis(1600)),
        other => panic!("{other:?}"),
    }
    // A lower figure changes nothing (the node knows more than Redis said).
    table.raise(index, 7, now);
    assert!(matches!(table.take_slot(7, now).0, Take::Limited { .. }));
    // Another key's slot is not touched.
    table.raise(index, 8, now + debt * 10);
    assert!(table.holds(index, 7));
}

#[tokio::test]
async fn every_node_hashes_a_client_alike_and_each_limit_apart() {
    let a = RedisLink::start("redis://127.0.0.1:1", OnRedisError::Allow, "/ballast/");
    let b = RedisLink::start("redis://127.0.0.1:1", OnRedisError::Deny, "/ballast/");
    let other = RedisLink::start("redis://127.0.0.1:1", OnRedisError::Allow, "/other/");
    let hash = |s: FleetSeed| s.hash_one("10.0.0.1");
    assert_eq!(
        hash(FleetSeed::new(&a, "fleet")),
        hash(FleetSeed::new(&b, "fleet"))
    );
    assert_ne!(
        hash(FleetSeed::new(&a, "fleet")),
        hash(FleetSeed::new(&a, "per-key"))
    );
    assert_ne!(
        hash(FleetSeed::new(&a, "fleet")),
        hash(FleetSeed::new(&other, "fleet"))
    );
}

async fn failing_counter(on_error: OnRedisError) -> GlobalCounter {
    let link = RedisLink::start("redis://127.0.0.1:1", on_error, "/ballast/");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !link.failing() {
        assert!(Instant::now() < deadline, "the keeper never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    GlobalCounter::new(&limit("1/m", 1), link)
}

#[tokio::test]
async fn without_redis_allow_admits_and_deny_refuses_and_both_count() {
    let now = rate_limit::ticks(Instant::now());
    let open = failing_counter(OnRedisError::Allow).await;
    for _ in 0..3 {
        assert!(matches!(open.take(1, now), Take::Admitted { .. }));
    }
    assert_eq!(open.fallbacks(), Some(3));
    let closed = failing_counter(OnRedisError::Deny).await;
    assert_eq!(
        closed.take(1, now),
        Take::Limited {
            wait: Duration::from_secs(1)
        }
    );
    assert_eq!(closed.fallbacks(), Some(1));
    // Nothing was counted locally: the table never saw the key.
    assert_eq!(closed.keys(), 0);
}

#[test]
fn a_keys_first_admission_of_a_period_queues_it_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Built inside a runtime that never runs the tasks: the queue is read by
    // hand, as the settling task would.
    let _inside = runtime.enter();
    let link = RedisLink::start("redis://127.0.0.1:1", OnRedisError::Allow, "/ballast/");
    let counter = GlobalCounter::new(&limit("100/s", 10), link);
    let now = rate_limit::ticks(Instant::now());
    for _ in 0..3 {
        counter.take(42, now);
    }
    let index = counter.local.table.take_slot(42, now).1.expect("a slot");
    let count = counter.local.counts[index].load(Ordering::Relaxed);
    assert_eq!(count & !QUEUED, 3);
    assert_ne!(count & QUEUED, 0);
    assert_eq!(counter.queue.capacity(), counter.queue.max_capacity() - 1);
}

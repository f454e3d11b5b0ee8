//! The load-shedding controller against simulated latencies: each step alone,
//! the bounds, and whole runs against a model of a target that queues.

use std::time::Duration;

use ballast_config::shedding::LoadShedding;

use super::shedding::{Gradient, Step};
use crate::observe::shedding::Sample;

fn config(min: u32, max: u32) -> LoadShedding {
    LoadShedding {
        latency_target: Duration::from_millis(25),
        window: Duration::from_millis(100),
        min_limit: min,
        max_limit: max,
    }
}

fn window(latency_ms: f64, peak: u32) -> Sample {
    Sample {
        latency: Duration::from_secs_f64(latency_ms / 1e3),
        requests: 40,
        peak,
    }
}

/// A target serving `capacity` requests at once in `service_ms` each, the rest
/// waiting in a FIFO queue: by Little's law, with `n` in flight the mean latency
/// is `service_ms × max(1, n / capacity)`. Offered more than the limit, the
/// group runs at its limit.
fn saturated(limit: u32, capacity: u32, service_ms: f64) -> Sample {
    let n = f64::from(limit);
    window(service_ms * (n / f64::from(capacity)).max(1.0), limit)
}

#[test]
fn over_the_target_the_limit_falls_in_proportion_at_most_by_half() {
    let mut g = Gradient::new(config(4, 1000), 100);
    // 50 ms against 25: gradient 0.5, from the 100 in use.
    assert_eq!(g.step(window(50.0, 100)), Step::Decrease);
    assert_eq!(g.limit(), 50);
    // 400 ms: still only halved.
    g.step(window(400.0, 50));
    assert_eq!(g.limit(), 25);
    // Slightly over: a slight cut.
    g.step(window(27.5, 25));
    assert_eq!(g.limit(), 23);
}

#[test]
fn a_limit_far_above_use_is_cut_from_what_is_in_use() {
    let mut g = Gradient::new(config(4, 1000), 1000);
    g.step(window(50.0, 90));
    assert_eq!(g.limit(), 45);
}

#[test]
fn under_the_target_the_limit_rises_only_while_it_is_used() {
    let mut g = Gradient::new(config(4, 1000), 16);
    assert_eq!(g.step(window(20.0, 16)), Step::Increase);
    assert_eq!(g.limit(), 20);
    assert_eq!(g.step(window(20.0, 10)), Step::Increase);
    assert_eq!(g.limit(), 24);
    // A quarter in use: low latency says nothing about a higher limit.
    assert_eq!(g.step(window(5.0, 6)), Step::Hold);
    assert_eq!(g.limit(), 24);
}

#[test]
fn the_limit_stays_within_its_bounds() {
    let mut g = Gradient::new(config(4, 64), 1000);
    assert_eq!(g.limit(), 64, "resumed within the bounds");
    for _ in 0..50 {
        g.step(window(500.0, 64));
        assert!(g.limit() >= 4);
    }
    assert_eq!(g.limit(), 4);
    for _ in 0..200 {
        let peak = g.limit();
        g.step(window(1.0, peak));
        assert!(g.limit() <= 64);
    }
    assert_eq!(g.limit(), 64);
}

#[test]
fn against_a_queueing_target_it_settles_just_above_capacity() {
    // 8 at once, 20 ms each: 400 req/s; target 25 ms. Start from the max, as
    // when shedding is turned on under overload.
    let (capacity, service) = (8, 20.0);
    let mut g = Gradient::new(config(4, 1000), 1000);
    let mut first = window(200.0, 240);
    for _ in 0..20 {
        g.step(first);
        first = saturated(g.limit(), capacity, service);
    }
    for _ in 0..200 {
        g.step(saturated(g.limit(), capacity, service));
        let limit = g.limit();
        // Full (all the goodput), and a queue of at most one service time
        // (at most twice the unloaded latency).
        assert!((capacity..=2 * capacity).contains(&limit), "limit {limit}");
    }
}

#[test]
fn it_recovers_once_the_target_is_fast_again() {
    let (capacity, mut service) = (8, 20.0);
    let mut g = Gradient::new(config(2, 1000), 12);
    // The target slows down fivefold: the limit falls to the floor.
    service *= 5.0;
    for _ in 0..20 {
        g.step(saturated(g.limit(), capacity, service));
    }
    assert_eq!(g.limit(), 2);
    // Back to normal: within a second of 100 ms windows it is at capacity again.
    service /= 5.0;
    let mut steps = 0;
    while g.limit() < capacity {
        g.step(saturated(g.limit(), capacity, service));
        steps += 1;
        assert!(steps <= 10, "still at {} after {steps} windows", g.limit());
    }
}

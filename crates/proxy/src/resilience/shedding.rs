//! Adaptive load shedding: a concurrency limit per target group that follows the
//! targets' latency, and the gate that answers 503 `shed` above it (SPEC §5, §13).
//!
//! Why a limit on concurrency and not on rate: by Little's law the requests in
//! flight are throughput × latency. While the targets keep up, latency stays
//! near what they need unloaded; once they are offered more than they can serve,
//! throughput stays flat and every extra request in flight is a request queued
//! somewhere (a target's accept queue, its thread pool), which adds to every
//! request's latency and buys no throughput. A limit just above the point where
//! the targets are full keeps their throughput and cuts the queue: the requests
//! over it are answered at once, 503 with `Retry-After`, and the ones admitted
//! see the latency of a target that is busy but not drowning.
//!
//! The controller (in the spirit of Envoy's adaptive concurrency filter and
//! Netflix's concurrency-limits gradient, with the operator's `latency_target`
//! in place of a sampled minimum RTT):
//! - Signal: the mean latency of the requests answered in the window, from
//!   admission to response head (or failure) — the time a target's queue adds
//!   to; the body's transfer is the client's pace, not the target's.
//! - Window: `window` (100 ms by default), and at least `MIN_SAMPLES` answers:
//!   a quiet group's window simply lasts longer, so no decision rests on two or
//!   three requests. Also the peak in-flight count of the window.
//! - Step, over the target: `limit = min(limit, peak) × gradient` with
//!   `gradient = latency_target / latency`, at least 0.5 — the cut is
//!   proportional to the overshoot and halves the limit at most per window.
//!   Starting from the peak rather than the limit matters when the limit was
//!   never reached: a limit of 1000 with 90 in flight is cut from 90.
//! - Step, at or under the target: `limit += sqrt(limit)` (Envoy's and
//!   Netflix's headroom), but only if the window used at least half the limit.
//!   A group that is not using its limit learns nothing about a higher one
//!   from low latency, so its limit does not drift up to the maximum.
//! - Bounds: `min_limit..=max_limit`; it starts at `max_limit`, so turning
//!   shedding on sheds nothing until latency first rises over the target, and
//!   a reload keeps the limit learnt (the cells live in the group's
//!   `GroupMetrics`, kept by name).
//!
//! The pair is additive increase, multiplicative decrease: it settles where the
//! mean latency crosses the target and oscillates there by about
//! `sqrt(limit)` requests. With a target that queues, that point is a little
//! above its capacity: enough to keep it full (the goodput), not enough to let a
//! queue build (the latency). Set `latency_target` a little above the targets'
//! unloaded latency: below it every window is over target and the limit sits at
//! `min_limit`.
//!
//! Both paths. The controller is a task per group (started with the group's
//! other control loops for each snapshot, `resilience::spawn`) that reads and
//! empties the window's atomics and stores the limit; the data path
//! (`admit`) is one compare-and-swap against that limit and two atomic adds per
//! request (`observe/shedding.rs`), and nothing at all in a group without
//! `load_shedding`. Health checks and the admin API never pass the gate.

use std::sync::Arc;
use std::time::Duration;

use ballast_config::shedding::LoadShedding;

use crate::observe::shedding::{Admitted, Sample};
use crate::upstream::target_group::TargetGroup;

/// Answers a window needs before the controller decides on it.
pub const MIN_SAMPLES: u64 = 10;

/// Why a step moved the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Latency over the target: cut by the gradient.
    Decrease,
    /// Latency under the target with the limit in use: headroom added.
    Increase,
    /// Latency under the target, but less than half the limit in use.
    Hold,
}

/// The gradient controller's state: the limit, kept fractional between steps
/// so that small increments add up.
#[derive(Clone, Debug)]
pub struct Gradient {
    config: LoadShedding,
    limit: f64,
}

impl Gradient {
    /// Resume from `limit` (the cells' current one; within the bounds).
    pub fn new(config: LoadShedding, limit: u32) -> Self {
        let limit = f64::from(limit.clamp(config.min_limit, config.max_limit));
        Gradient { config, limit }
    }

    /// The limit the data path should use.
    pub fn limit(&self) -> u32 {
        self.limit.round() as u32
    }

    /// One window's decision.
    pub fn step(&mut self, w: Sample) -> Step {
        let target = self.config.latency_target.as_secs_f64();
        let measured = w.latency.as_secs_f64();
        let (next, step) = if measured > target {
            let gradient = (target / measured).max(0.5);
            (self.limit.min(f64::from(w.peak)) * gradient, Step::Decrease)
        } else if f64::from(w.peak) * 2.0 >= self.limit {
            (self.limit + self.limit.sqrt().max(1.0), Step::Increase)
        } else {
            (self.limit, Step::Hold)
        };
        let (lo, hi) = (self.config.min_limit, self.config.max_limit);
        self.limit = next.clamp(f64::from(lo), f64::from(hi));
        step
    }
}

/// The gate: a place among the group's requests in flight. `Ok(None)` when the
/// group has no `load_shedding` (nothing counted); `Err(())` when it is at its
/// limit (the request is shed, and counted).
#[allow(clippy::result_unit_err)]
pub fn admit(group: &TargetGroup) -> Result<Option<Admitted>, ()> {
    if group.config.load_shedding.is_none() {
        return Ok(None);
    }
    group.metrics.shedding.admit().map(Some).ok_or(())
}

/// The group's controller: one step per window until the task is aborted (its
/// snapshot replaced). Never returns for a group without `load_shedding`, so it
/// can be joined with the group's other loops.
pub async fn run(group: Arc<TargetGroup>) {
    let Some(config) = group.config.load_shedding else {
        return std::future::pending().await;
    };
    let cells = group.metrics.shedding.clone();
    let mut controller = Gradient::new(config, cells.limit());
    let mut tick = tokio::time::interval(config.window);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(window) = cells.take_window(MIN_SAMPLES) else {
            continue;
        };
        let before = controller.limit();
        let step = controller.step(window);
        cells.publish(controller.limit(), window.latency);
        if before != controller.limit() {
            tracing::debug!(
                target_group = group.name(),
                latency_ms = window.latency.as_secs_f64() * 1e3,
                target_ms = config.latency_target.as_secs_f64() * 1e3,
                peak = window.peak,
                requests = window.requests,
                ?step,
                before,
                after = controller.limit(),
                "concurrency limit changed"
            );
        }
    }
}

/// What the controller's figures look like at one moment (the admin API).
pub struct View {
    pub limit: u32,
    pub in_flight: u32,
    pub shed: u64,
    pub latency: Duration,
}

pub fn view(group: &TargetGroup) -> Option<View> {
    group.config.load_shedding?;
    let cells = &group.metrics.shedding;
    Some(View {
        limit: cells.limit(),
        in_flight: cells.in_flight(),
        shed: cells.shed(),
        latency: cells.measured(),
    })
}

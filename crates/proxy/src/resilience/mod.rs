//! Resilience: what keeps one bad target, or too much load, from hurting the rest.
//! Control loops that shape targets' effective weights (slow start, anomaly
//! mitigation) or a group's concurrency limit (load shedding, on its own
//! `window`), and the gates the request path asks (retry budgets, circuit
//! breakers, the shedding limit).
//!
//! Both paths. The loops run off the data path, one task per target group
//! (`spawn`, started with the group's health checker for each snapshot): they read
//! the counters the data path keeps anyway (per-target atomics), decide, and
//! publish through per-target atomics (`upstream/target.rs`) that the balancers
//! read with one load. May use `upstream/` and `observe/`; `forward/` asks it.
//!
//! Anomaly detection (`anomaly.rs`) and mitigation (`mitigation.rs`) keep their
//! windows and history in the server's `registry.rs`, so a reload, which replaces
//! the tasks, keeps them.

pub mod anomaly;
pub mod breaker;
pub mod budget;
pub mod mitigation;
pub mod registry;
pub mod shedding;
pub mod slow_start;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_shedding;
#[cfg(test)]
mod tests_tick;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::upstream::target_group::TargetGroup;

/// How often a group's controllers look at their signals.
pub const TICK: Duration = Duration::from_secs(1);

/// Start the control loops of one group; the task runs until aborted (when its
/// snapshot is replaced). `anomalies` is the group's state in the server's
/// registry.
pub fn spawn(group: Arc<TargetGroup>, anomalies: registry::SharedState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shedding = shedding::run(group.clone());
        let weights = async {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let now = tick.tick().await;
                slow_start::step(&group);
                mitigation::tick(&group, &mut registry::lock(&anomalies), now.into_std());
            }
        };
        tokio::join!(weights, shedding);
    })
}

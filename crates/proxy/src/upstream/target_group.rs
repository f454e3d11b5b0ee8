//! A target group as the data path sees it: its targets, its balancer and whether it
//! is failing open.
//!
//! Data path. Built once per snapshot by the control path, then read-only apart
//! from atomics. Unhealthy state routing (SPEC §4): while fewer than
//! `minimum_healthy_targets` targets are healthy, the group routes to all of its
//! targets that are not draining, and says so in the log when that starts and ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ballast_config::TargetGroupConfig;

use crate::observe::group::GroupMetrics;
use crate::upstream::balance::Balancer;
use crate::upstream::sticky::Sticky;
use crate::upstream::target::{HealthState, Target};

pub struct TargetGroup {
    pub config: TargetGroupConfig,
    pub targets: Vec<Arc<Target>>,
    balancer: Balancer,
    fail_open: AtomicBool,
    /// TLS towards the targets, when the group has `tls`.
    pub tls: Option<Arc<crate::tls::Connector>>,
    /// The group's own cells (circuit-breaker usage, the retry budget's window,
    /// retries), kept by name across reloads (`snapshot.rs`).
    pub metrics: Arc<GroupMetrics>,
    /// Sticky sessions to a target, when the group has `stickiness`.
    pub sticky: Option<Sticky>,
}

/// The targets already tried for one request; attempts are few, so a short array.
#[derive(Default)]
pub struct Tried {
    indices: [usize; Tried::MAX],
    len: usize,
}

impl Tried {
    /// The first attempt and up to 5 retries (`retry.attempts`).
    pub const MAX: usize = 6;

    pub fn add(&mut self, i: usize) {
        if self.len < Self::MAX {
            self.indices[self.len] = i;
            self.len += 1;
        }
    }

    pub fn contains(&self, i: usize) -> bool {
        self.indices[..self.len].contains(&i)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The target tried last: the one that served, once a request succeeded.
    pub fn last(&self) -> Option<usize> {
        self.len.checked_sub(1).map(|i| self.indices[i])
    }
}

impl TargetGroup {
    pub fn new(config: TargetGroupConfig, targets: Vec<Arc<Target>>) -> Self {
        let balancer = Balancer::new(config.algorithm, &targets);
        let group = TargetGroup {
            config,
            targets,
            balancer,
            fail_open: AtomicBool::new(false),
            tls: None,
            metrics: Arc::default(),
            sticky: None,
        };
        group.configure_shedding();
        group
            .fail_open
            .store(group.should_fail_open(), Ordering::Relaxed);
        group
    }

    pub fn with_tls(mut self, tls: Option<Arc<crate::tls::Connector>>) -> Self {
        self.tls = tls;
        self
    }

    /// Keep the cells of the group this one replaces.
    pub fn with_metrics(mut self, metrics: Arc<GroupMetrics>) -> Self {
        self.metrics = metrics;
        self.configure_shedding();
        self
    }

    /// Bring the kept concurrency limit within this config's bounds before any
    /// request can read it (`load_shedding`).
    fn configure_shedding(&self) {
        if let Some(config) = &self.config.load_shedding {
            self.metrics.shedding.configure(config);
        }
    }

    pub fn with_sticky(mut self, sticky: Option<Sticky>) -> Self {
        self.sticky = sticky;
        self
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Choose a target for a request, skipping those already tried.
    pub fn pick(&self, tried: &Tried) -> Option<usize> {
        let fail_open = self.fail_open.load(Ordering::Relaxed);
        self.balancer
            .pick(&self.targets, |i| self.eligible(i, tried, fail_open))
    }

    /// Whether target `i` may take this request as a pick could give it to it: a
    /// sticky client's target (with a configured weight above 0: a target set to
    /// 0 is drained of new and sticky clients alike).
    pub fn takes(&self, i: usize, tried: &Tried) -> bool {
        let fail_open = self.fail_open.load(Ordering::Relaxed);
        self.targets.get(i).is_some_and(|t| t.weight() > 0) && self.eligible(i, tried, fail_open)
    }

    fn eligible(&self, i: usize, tried: &Tried, fail_open: bool) -> bool {
        if tried.contains(i) {
            return false;
        }
        match self.targets[i].state() {
            HealthState::Healthy => true,
            HealthState::Initial | HealthState::Unhealthy => fail_open,
            HealthState::Draining | HealthState::Unused => false,
        }
    }

    pub fn healthy_count(&self) -> usize {
        self.targets.iter().filter(|t| t.is_healthy()).count()
    }

    pub fn is_failing_open(&self) -> bool {
        self.fail_open.load(Ordering::Relaxed)
    }

    fn should_fail_open(&self) -> bool {
        !self.targets.is_empty()
            && self.healthy_count()
                < self.config.unhealthy_state_routing.minimum_healthy_targets as usize
    }

    /// Re-evaluate unhealthy state routing after a health change; logs a transition.
    pub fn refresh_routing(&self) {
        let fail_open = self.should_fail_open();
        if self.fail_open.swap(fail_open, Ordering::Relaxed) != fail_open {
            let healthy = self.healthy_count();
            let minimum = self.config.unhealthy_state_routing.minimum_healthy_targets;
            if fail_open {
                tracing::warn!(
                    target_group = %self.name(), healthy, minimum,
                    "fewer healthy targets than minimum_healthy_targets: failing open, routing to all targets"
                );
            } else {
                tracing::info!(
                    target_group = %self.name(), healthy, minimum,
                    "enough healthy targets again: routing to healthy targets only"
                );
            }
        }
    }
}

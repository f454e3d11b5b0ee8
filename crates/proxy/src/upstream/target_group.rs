//! A target group as the data path sees it: its targets, its balancer and whether it
//! is failing open.
//!
//! Data path. Built once per snapshot by the control path, then read-only apart
//! from atomics. Unhealthy state routing (SPEC §4): while fewer than
//! `minimum_healthy_targets` targets are healthy, the group routes to all of its
//! targets that are not draining. The log says so once when that starts and once
//! when it ends, judged after health checks ran: a group whose targets are still
//! being checked for the first time routes to them all without a warning, and a
//! group that turns out healthy logs nothing. What the log last said is carried
//! across reloads (`announced`), so each transition is logged exactly once.
//!
//! A group no listener forwards to is `unused` (as ALB shows it): its targets are
//! not checked and show the state `unused` until a reload makes a listener use it.
//!
//! Shuffle sharding (`shard.rs`): a request whose key names a shard is picked
//! among the shard's members only, by the group's own balancer and rules (health,
//! effective weight, unhealthy state routing). A shard is *available* while at
//! least one member could take a request now: routable by those rules (healthy,
//! or any state but draining while the group fails open) with an effective
//! weight above 0. An unavailable shard fails open to the healthy rest of the
//! group (`fail_open = true`, the default) or, with `fail_open = false`, keeps to
//! its own members whatever their health; either is counted, and logged at most
//! once per `SHARD_WARN_EVERY_S` seconds per group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ballast_config::TargetGroupConfig;

use crate::observe::group::GroupMetrics;
use crate::upstream::balance::Balancer;
use crate::upstream::shard::{Shard, Sharding};
use crate::upstream::sticky::Sticky;
use crate::upstream::target::{HealthState, Target};

/// At most one warning per group this often about shards without a target.
pub const SHARD_WARN_EVERY_S: u64 = 10;

pub struct TargetGroup {
    pub config: TargetGroupConfig,
    /// The group's name, shared with the access-log records of its requests.
    pub name: Arc<str>,
    pub targets: Vec<Arc<Target>>,
    balancer: Balancer,
    fail_open: AtomicBool,
    /// Whether the log last said the group fails open.
    announced: AtomicBool,
    /// No listener forwards to the group.
    unused: bool,
    /// TLS towards the targets, when the group has `tls`.
    pub tls: Option<Arc<crate::tls::Connector>>,
    /// The group's own cells (circuit-breaker usage, the retry budget's window,
    /// retries), kept by name across reloads (`snapshot.rs`).
    pub metrics: Arc<GroupMetrics>,
    /// Sticky sessions to a target, when the group has `stickiness`.
    pub sticky: Option<Sticky>,
    /// Each key's shard of the targets, when the group has `shuffle_shard`.
    sharding: Option<Sharding>,
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
        let sharding = config
            .shuffle_shard
            .as_ref()
            .map(|s| Sharding::new(s, &targets, |t| t.state() != HealthState::Draining));
        let group = TargetGroup {
            name: Arc::from(config.name.as_str()),
            config,
            targets,
            balancer,
            fail_open: AtomicBool::new(false),
            announced: AtomicBool::new(false),
            unused: false,
            tls: None,
            metrics: Arc::default(),
            sticky: None,
            sharding,
        };
        group.configure_shedding();
        group
            .fail_open
            .store(group.should_fail_open(), Ordering::Relaxed);
        group
    }

    /// Mark the group used by a listener or not, and its targets with it; keep
    /// what the log last said of the group it replaces.
    pub fn with_use(mut self, used: bool, announced: bool) -> Self {
        self.unused = !used;
        for t in &self.targets {
            match used {
                true => t.set_used(),
                false if t.state() != HealthState::Draining => t.set_unused(),
                false => {}
            }
        }
        self.announced.store(announced && used, Ordering::Relaxed);
        self.fail_open
            .store(self.should_fail_open(), Ordering::Relaxed);
        self
    }

    /// No listener forwards to the group: it is not checked.
    pub fn is_unused(&self) -> bool {
        self.unused
    }

    /// Whether the log last said the group fails open.
    pub fn announced_fail_open(&self) -> bool {
        self.announced.load(Ordering::Relaxed)
    }

    /// What the log and the API call a target: its config `name`, else its address.
    pub fn target_name(&self, target: &Target) -> String {
        self.config
            .target(target.addr)
            .and_then(|t| t.name.clone())
            .unwrap_or_else(|| target.addr.to_string())
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

    /// Choose a target for a request, skipping those already tried; with a
    /// shard, among its members only.
    pub fn pick(&self, tried: &Tried, shard: Option<&Shard>) -> Option<usize> {
        let fail_open = self.fail_open.load(Ordering::Relaxed);
        self.balancer
            .pick(&self.targets, |i| self.eligible(i, tried, fail_open, shard))
    }

    /// Whether target `i` may take this request as a pick could give it to it: a
    /// sticky client's target (with a configured weight above 0: a target set to
    /// 0 is drained of new and sticky clients alike), within the request's shard.
    pub fn takes(&self, i: usize, tried: &Tried, shard: Option<&Shard>) -> bool {
        let fail_open = self.fail_open.load(Ordering::Relaxed);
        self.targets.get(i).is_some_and(|t| t.weight() > 0)
            && self.eligible(i, tried, fail_open, shard)
    }

    fn eligible(&self, i: usize, tried: &Tried, fail_open: bool, shard: Option<&Shard>) -> bool {
        let mut fail_open = fail_open;
        if let Some(shard) = shard {
            if !shard.contains(i) {
                return false;
            }
            fail_open |= shard.any_health;
        }
        if tried.contains(i) {
            return false;
        }
        match self.targets[i].state() {
            HealthState::Healthy => true,
            HealthState::Initial | HealthState::Unhealthy => fail_open,
            HealthState::Draining | HealthState::Unused => false,
        }
    }

    /// The shard a request's attempts keep to (`None`: the whole group): its
    /// key's shard while available; otherwise the whole group (fail open) or the
    /// shard whatever its members' health (`fail_open = false`). `client_ip` is
    /// the client address as text, for `key = "client_ip"`.
    #[inline]
    pub fn shard_for(&self, headers: &http::HeaderMap, client_ip: &[u8]) -> Option<Shard> {
        let sharding = self.sharding.as_ref()?;
        let mut shard = sharding.shard(sharding.key_hash(headers, client_ip)?);
        let fail_open = self.fail_open.load(Ordering::Relaxed);
        let available = shard.members().iter().any(|&m| {
            let i = usize::from(m);
            self.eligible(i, &Tried::default(), fail_open, None)
                && self.targets[i].effective_weight() > 0
        });
        if available {
            return Some(shard);
        }
        let now_s = crate::runtime::now_ms() / 1000;
        if self
            .metrics
            .shard_unavailable(sharding.fail_open, now_s, SHARD_WARN_EVERY_S)
        {
            let members: Vec<String> = shard
                .members()
                .iter()
                .map(|&m| self.targets[usize::from(m)].addr.to_string())
                .collect();
            let routed_to = if sharding.fail_open {
                "the healthy rest of the group (fail_open = true)"
            } else {
                "the shard's own targets whatever their health (fail_open = false)"
            };
            tracing::warn!(
                target_group = %self.name(), shard = ?members,
                "a shuffle shard has no target that can take requests; routing them to {routed_to} \
                 (logged at most once every {SHARD_WARN_EVERY_S} s; see ballast_shuffle_shard_*_total)"
            );
        }
        if sharding.fail_open {
            None
        } else {
            shard.any_health = true;
            Some(shard)
        }
    }

    /// Whether the group has `shuffle_shard`.
    pub fn is_sharded(&self) -> bool {
        self.sharding.is_some()
    }

    pub fn healthy_count(&self) -> usize {
        self.targets.iter().filter(|t| t.is_healthy()).count()
    }

    pub fn is_failing_open(&self) -> bool {
        self.fail_open.load(Ordering::Relaxed)
    }

    fn should_fail_open(&self) -> bool {
        !self.unused
            && !self.targets.is_empty()
            && self.healthy_count()
                < self.config.unhealthy_state_routing.minimum_healthy_targets as usize
    }

    /// Re-evaluate unhealthy state routing after health checks or a health
    /// change; logs a transition of what the log last said, once.
    pub fn refresh_routing(&self) {
        let fail_open = self.should_fail_open();
        self.fail_open.store(fail_open, Ordering::Relaxed);
        if self.announced.swap(fail_open, Ordering::Relaxed) == fail_open {
            return;
        }
        let healthy = self.healthy_count();
        let minimum = self.config.unhealthy_state_routing.minimum_healthy_targets;
        let name = self.name();
        if !fail_open {
            tracing::info!(
                target_group = %name, healthy, minimum,
                "target group {name:?}: enough healthy targets again, routing to healthy targets only"
            );
        } else if healthy == 0 {
            tracing::warn!(
                target_group = %name, healthy, minimum,
                "target group {name:?} has no healthy target: failing open, routing to all of its targets"
            );
        } else {
            tracing::warn!(
                target_group = %name, healthy, minimum,
                "target group {name:?} has fewer healthy targets than minimum_healthy_targets: \
                 failing open, routing to all of its targets"
            );
        }
    }
}

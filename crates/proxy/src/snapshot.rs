//! The immutable snapshot the data path reads: one per applied config.
//!
//! Built off the data path by the control path and published through a single
//! `ArcSwap`, so a request sees one consistent config from start to end and an
//! update is atomic (STYLE: pingora keeps three swaps and a TODO to make them one;
//! this starts with one). Building reuses each `Target` of the previous snapshot
//! with the same group and address, so health, in-flight counts and pooled
//! connections survive a reload. So do each listener's metric cells (by name).
//!
//! Deregistration: a target of the previous snapshot that the new config no longer
//! has is not dropped at once. It turns `draining` (no new requests) and stays in
//! its group, visible to the API and metrics, while requests are in flight on it
//! and its `deregistration_delay` runs; `server.rs` rebuilds the snapshot when that
//! ends (`Snapshot::drain_done`). Requests in flight never depend on this: each
//! holds its own `Arc<Target>`.
//!
//! A group no listener forwards to is built `unused` (its targets too, and it is
//! not checked); a reload that makes a listener use it starts its targets over
//! at `initial`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ballast_config::{Action, Config, ListenerConfig};

use crate::admission::policy::Policy;
use crate::admission::rate_limits::{RateLimiter, RateLimits};
use crate::discovery::{NameStatus, Names};
use crate::observe::access_log::AccessLog;
use crate::observe::exposition::{self, GroupView, ListenerView, TargetView};
use crate::observe::group::{self, GroupCells};
use crate::observe::metrics::ListenerMetrics;
use crate::observe::rule_hits::{self, RuleHits};
use crate::routing::action::RouteAction;
use crate::routing::{RequestView, Router};
use crate::upstream::sticky::{Key, Sticky};
use crate::upstream::target::{HealthState, Target};
use crate::upstream::target_group::TargetGroup;

/// How long a pooled connection to a target may sit idle and still be reused.
/// Below the common keep-alive timeouts of servers (nginx 75 s, Apache 5 s is the
/// outlier: a request racing its close is retried by `forward.rs` when unsent).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(55);

/// A group's targets: its literal entries, then the addresses of its DNS names
/// in entry order (an address already listed keeps its first entry). A name's
/// addresses take the entry's weight; an SRV name's take their records' weights,
/// unless the entry's weight is 0 (out of rotation, as for any entry).
fn wanted_targets(g: &ballast_config::TargetGroupConfig, names: &Names) -> Vec<(SocketAddr, u32)> {
    let mut wanted: Vec<(SocketAddr, u32)> = g
        .targets
        .iter()
        .filter_map(|t| Some((t.address.socket()?, t.weight)))
        .collect();
    for t in g.targets.iter().filter(|t| t.address.is_dns()) {
        let srv = matches!(t.address, ballast_config::TargetAddress::Srv(_));
        for (address, record_weight) in names.addresses(&g.name, &t.address) {
            if wanted.iter().any(|(a, _)| *a == address) {
                continue;
            }
            let weight = if srv && t.weight > 0 {
                record_weight
            } else {
                t.weight
            };
            wanted.push((address, weight));
        }
    }
    wanted
}

/// What the data path shares: the current snapshot, loaded once per request.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
}

pub struct Snapshot {
    pub version: u64,
    pub config: Arc<Config>,
    listeners: HashMap<Arc<str>, ListenerRoute>,
    groups: HashMap<String, Arc<TargetGroup>>,
    /// Named rate limits; kept across reloads while their definition holds.
    rate_limits: RateLimits,
    pub access_log: Option<Arc<AccessLog>>,
    /// The key of sticky-session cookies, when a group is sticky.
    pub sticky_key: Option<Arc<Key>>,
}

/// What a listener does with a request: its rules, compiled, and the actions.
pub struct ListenerRoute {
    pub config: ListenerConfig,
    pub metrics: Arc<ListenerMetrics>,
    /// The compiled allow/deny lists and PROXY protocol sources; `None` when
    /// the listener has none (`admission/policy.rs`).
    pub admission: Option<Arc<Policy>>,
    router: Router,
    /// One per rule, in the router's (priority) order.
    actions: Vec<RouteAction>,
    default_action: RouteAction,
    /// Requests each rule and the default action chose.
    pub hits: RuleHits,
    /// The listener's rate limits, then each rule's (in the router's order).
    pub limits: Box<[Arc<RateLimiter>]>,
    rule_limits: Vec<Box<[Arc<RateLimiter>]>>,
    /// Whether the listener or any rule has a rate limit: the one branch a
    /// request without limits takes.
    pub limited: bool,
}

/// The rule a request matched, or the default action.
pub struct Routed<'a> {
    /// `None` for the default action.
    pub priority: Option<u32>,
    pub action: &'a RouteAction,
    /// The matched rule's rate limits.
    pub rule_limits: &'a [Arc<RateLimiter>],
}

impl ListenerRoute {
    fn build(
        l: &ListenerConfig,
        groups: &HashMap<String, Arc<TargetGroup>>,
        metrics: Arc<ListenerMetrics>,
        rate_limits: &RateLimits,
        previous: Option<&ListenerRoute>,
    ) -> Option<Self> {
        let limits = rate_limits.attach(&l.rate_limits);
        let rule_limits: Vec<_> = l
            .rules
            .iter()
            .map(|r| rate_limits.attach(&r.rate_limits))
            .collect();
        Some(ListenerRoute {
            limited: !limits.is_empty() || rule_limits.iter().any(|r| !r.is_empty()),
            limits,
            rule_limits,
            config: l.clone(),
            metrics,
            admission: Policy::build(&l.admission),
            router: Router::new(&l.rules),
            hits: RuleHits::new(
                l.rules.iter().map(|r| r.priority).collect(),
                previous.map(|p| &p.hits),
            ),
            actions: l
                .rules
                .iter()
                .map(|r| RouteAction::build(&r.action, groups))
                .collect::<Option<_>>()?,
            default_action: RouteAction::build(&l.default_action, groups)?,
        })
    }

    /// The action for a request, the priority of the rule that chose it (`None`
    /// for the default action) and that rule's rate limits; counts the hit.
    pub fn route(&self, req: &RequestView<'_>) -> Routed<'_> {
        let matched = self.router.route(req).and_then(|m| {
            let action = self.actions.get(m.index)?;
            let limits = self.rule_limits.get(m.index).map_or(&[][..], |l| &l[..]);
            Some((m.index, m.priority, action, limits))
        });
        match matched {
            Some((index, priority, action, rule_limits)) => {
                self.hits.rule_hit(index);
                Routed {
                    priority: Some(priority),
                    action,
                    rule_limits,
                }
            }
            None => {
                self.hits.default_hit();
                Routed {
                    priority: None,
                    action: &self.default_action,
                    rule_limits: &[],
                }
            }
        }
    }
}

/// The groups some listener's rule or default action forwards to.
fn used_groups(config: &Config) -> HashSet<&str> {
    let actions = config
        .listeners
        .iter()
        .flat_map(|l| std::iter::once(&l.default_action).chain(l.rules.iter().map(|r| &r.action)));
    let mut used = HashSet::new();
    for action in actions {
        if let Action::Forward(f) = action {
            used.extend(f.target_groups.iter().map(|g| g.name.as_str()));
        }
    }
    used
}

impl Snapshot {
    /// Build a snapshot from a validated config, reusing the targets and metric
    /// cells of `previous` and keeping its draining targets until they are done.
    /// `tls` holds the TLS connectors of the groups that have `tls`; `sticky_key`
    /// is there when a group is sticky (`upstream/sticky_key.rs`). `names` holds
    /// the addresses the group's DNS names resolve to now (`discovery/`).
    pub fn build(
        config: Arc<Config>,
        version: u64,
        previous: Option<&Snapshot>,
        access_log: Option<Arc<AccessLog>>,
        tls: &HashMap<String, Arc<crate::tls::Connector>>,
        sticky_key: Option<Arc<Key>>,
        names: &Names,
    ) -> Snapshot {
        let used = used_groups(&config);
        let mut groups = HashMap::new();
        for g in &config.target_groups {
            let previous_group = previous.and_then(|p| p.groups.get(&g.name));
            // Pooled connections of a group whose TLS settings changed are not reused.
            let old = previous_group.filter(|old| old.config.tls == g.tls);
            let wanted = wanted_targets(g, names);
            let mut targets: Vec<Arc<Target>> = wanted
                .iter()
                .map(|&(address, weight)| {
                    let reused = old.and_then(|old| old.targets.iter().find(|o| o.addr == address));
                    match reused {
                        Some(existing) => {
                            existing.set_weight(weight);
                            existing.stop_draining();
                            existing.clone()
                        }
                        None => Arc::new(Target::new(&g.name, address, weight, POOL_IDLE_TIMEOUT)),
                    }
                })
                .collect();
            for gone in previous_group
                .iter()
                .flat_map(|old| old.targets.iter())
                .filter(|o| !wanted.iter().any(|(a, _)| *a == o.addr))
            {
                gone.start_draining(g.deregistration_delay);
                if gone.drain_finished() {
                    tracing::info!(target_group = %g.name, target = %gone.addr, "deregistered target removed");
                } else {
                    targets.push(gone.clone());
                }
            }
            // The group's own cells (breaker usage, the retry budget's window) stay
            // with its name, like its targets' and the listeners' cells.
            let metrics = previous_group.map(|old| old.metrics.clone());
            let sticky = g
                .stickiness
                .as_ref()
                .zip(sticky_key.as_ref())
                .map(|(s, key)| Sticky::new(s, &g.name, key.clone()));
            let announced = previous_group.is_some_and(|old| old.announced_fail_open());
            let group = TargetGroup::new(g.clone(), targets)
                .with_use(used.contains(g.name.as_str()), announced)
                .with_tls(tls.get(&g.name).cloned())
                .with_metrics(metrics.unwrap_or_default())
                .with_sticky(sticky);
            groups.insert(g.name.clone(), Arc::new(group));
        }
        let rate_limits = RateLimits::build(&config, previous.map(|p| &p.rate_limits));
        let listeners = config
            .listeners
            .iter()
            .filter_map(|l| {
                let old = previous.and_then(|p| p.listeners.get(l.name.as_str()));
                let metrics = old.map(|r| r.metrics.clone()).unwrap_or_default();
                // Validation guarantees every group an action names exists.
                let route = ListenerRoute::build(l, &groups, metrics, &rate_limits, old)?;
                Some((Arc::from(l.name.as_str()), route))
            })
            .collect();
        Snapshot {
            version,
            config,
            listeners,
            groups,
            rate_limits,
            access_log,
            sticky_key,
        }
    }

    /// The names of group `name` as the health API shows them (`"dns"`).
    pub fn dns_status(&self, names: &Names, group: &str) -> Option<Vec<NameStatus>> {
        names.status(&self.config, group)
    }

    /// Targets deregistered and still draining.
    pub fn draining(&self) -> impl Iterator<Item = &Arc<Target>> {
        self.groups()
            .flat_map(|g| g.targets.iter())
            .filter(|t| t.state() == HealthState::Draining)
    }

    /// Whether a draining target is done, so that a rebuild would remove it.
    pub fn drain_done(&self) -> bool {
        self.draining().any(|t| t.drain_finished())
    }

    /// Listener routes, sorted by name.
    pub fn listeners(&self) -> Vec<(&str, &ListenerRoute)> {
        let mut v: Vec<_> = self
            .listeners
            .iter()
            .map(|(k, r)| (k.as_ref(), r))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    pub fn listener(&self, name: &str) -> Option<&ListenerRoute> {
        self.listeners.get(name)
    }

    pub fn group(&self, name: &str) -> Option<&Arc<TargetGroup>> {
        self.groups.get(name)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Arc<TargetGroup>> {
        self.groups.values()
    }

    /// The metric cells of this snapshot's listeners and groups (targets
    /// included), each sorted by name: what a scrape renders and what the
    /// dashboard's history samples (`ballast-admin`), read from the same cells.
    pub fn metric_views(&self) -> (Vec<ListenerView<'_>>, Vec<GroupView<'_>>) {
        let listeners: Vec<_> = self
            .listeners()
            .into_iter()
            .map(|(name, route)| ListenerView {
                name,
                metrics: &route.metrics,
            })
            .collect();
        let mut groups: Vec<_> = self
            .groups()
            .map(|g| GroupView {
                name: g.name(),
                healthy: g.healthy_count(),
                unhealthy: g
                    .targets
                    .iter()
                    .filter(|t| t.state() == HealthState::Unhealthy)
                    .count(),
                unused: g
                    .targets
                    .iter()
                    .filter(|t| t.state() == HealthState::Unused)
                    .count(),
                failing_open: g.is_failing_open(),
                anomalous: g
                    .targets
                    .iter()
                    .filter(|t| t.anomaly.is_anomalous())
                    .count(),
                mitigated: g.targets.iter().filter(|t| t.is_mitigated()).count(),
                targets: g
                    .targets
                    .iter()
                    .map(|t| TargetView {
                        address: t.addr.to_string(),
                        weight: t.effective_weight() as f64 / f64::from(Target::FULL),
                        metrics: &t.metrics,
                    })
                    .collect(),
            })
            .collect();
        groups.sort_by(|a, b| a.name.cmp(b.name));
        (listeners, groups)
    }

    /// `GET /metrics` (but the TLS counters): the listeners and groups of this
    /// snapshot, sorted by name, as the exposition shows them.
    pub fn render_metrics(&self) -> String {
        let (listeners, groups) = self.metric_views();
        let mut out = exposition::render(&listeners, &groups);
        let hits: Vec<_> = self
            .listeners()
            .into_iter()
            .map(|(name, route)| (name, &route.hits))
            .collect();
        rule_hits::render(&mut out, &hits);
        let mut cells: Vec<_> = self
            .groups()
            .map(|g| GroupCells {
                name: g.name(),
                cells: &g.metrics,
                retry: g.config.retry.as_ref(),
                breaker: &g.config.circuit_breaker,
                sharded: g.is_sharded(),
            })
            .collect();
        cells.sort_by(|a, b| a.name.cmp(b.name));
        group::render(&mut out, &cells);
        let mut shedding: Vec<_> = self
            .groups()
            .filter(|g| g.config.load_shedding.is_some())
            .map(|g| (g.name(), &*g.metrics.shedding))
            .collect();
        shedding.sort_by_key(|(name, _)| *name);
        crate::observe::shedding::render(&mut out, &shedding);
        if self.rate_limits.shows() {
            self.rate_limits.render(&mut out);
        }
        out
    }
}

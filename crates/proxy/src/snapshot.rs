//! The immutable snapshot the data path reads: one per applied config.
//!
//! Built off the data path by the control path and published through a single
//! `ArcSwap`, so a request sees one consistent config from start to end and an
//! update is atomic (STYLE: pingora keeps three swaps and a TODO to make them one;
//! this starts with one). Building reuses each `Target` of the previous snapshot
//! with the same group and address, so health, in-flight counts and pooled
//! connections survive a reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ballast_config::{Action, Config, ListenerConfig};

use crate::target::Target;
use crate::target_group::TargetGroup;

/// How long a pooled connection to a target may sit idle and still be reused.
/// Below the common keep-alive timeouts of servers (nginx 75 s, Apache 5 s is the
/// outlier: a request racing its close is retried by `forward.rs` when unsent).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(55);

pub struct Snapshot {
    pub version: u64,
    pub config: Arc<Config>,
    listeners: HashMap<Arc<str>, ListenerRoute>,
    groups: HashMap<String, Arc<TargetGroup>>,
}

/// What a listener does with a request.
pub struct ListenerRoute {
    pub config: ListenerConfig,
    pub default_group: Arc<TargetGroup>,
}

impl Snapshot {
    /// Build a snapshot from a validated config, reusing the targets of `previous`.
    /// `tls` holds the TLS connectors of the groups that have `tls`.
    pub fn build(
        config: Arc<Config>,
        version: u64,
        previous: Option<&Snapshot>,
        tls: &HashMap<String, Arc<crate::tls::Connector>>,
    ) -> Snapshot {
        let mut groups = HashMap::new();
        for g in &config.target_groups {
            // Pooled connections of a group whose TLS settings changed are not reused.
            let old = previous
                .and_then(|p| p.groups.get(&g.name))
                .filter(|old| old.config.tls == g.tls);
            let targets = g
                .targets
                .iter()
                .map(|t| {
                    let reused =
                        old.and_then(|old| old.targets.iter().find(|o| o.addr == t.address));
                    match reused {
                        Some(existing) => {
                            existing.set_weight(t.weight);
                            existing.clone()
                        }
                        None => {
                            Arc::new(Target::new(&g.name, t.address, t.weight, POOL_IDLE_TIMEOUT))
                        }
                    }
                })
                .collect();
            groups.insert(
                g.name.clone(),
                Arc::new(TargetGroup::new(g.clone(), targets).with_tls(tls.get(&g.name).cloned())),
            );
        }
        let listeners = config
            .listeners
            .iter()
            .filter_map(|l| {
                let Action::Forward { target_group } = &l.default_action;
                // Validation guarantees the group exists.
                let group = groups.get(target_group)?.clone();
                Some((
                    Arc::from(l.name.as_str()),
                    ListenerRoute {
                        config: l.clone(),
                        default_group: group,
                    },
                ))
            })
            .collect();
        Snapshot {
            version,
            config,
            listeners,
            groups,
        }
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
}

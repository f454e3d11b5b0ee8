//! The table of every DNS-named target entry: its last good addresses, its last
//! error, when it resolved and resolves next, and its outcome counts.
//!
//! Control path: written by the refresh tasks, read when a snapshot is built, by
//! the health API and at a scrape; a plain mutex, never taken by a request. An
//! entry is keyed by its group and its name, so it outlives reloads that keep
//! both (no lookup is repeated and no target is dropped by an unrelated change)
//! and is forgotten with them. A change of addresses bumps a watch channel, which
//! the server follows with a rebuild of the snapshot.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use ballast_config::{Config, DnsRefresh, TargetAddress};
use tokio::sync::watch;

use super::resolve::{Answer, Failure};
use crate::observe::exposition::{family, sample};

type Key = (String, TargetAddress);

/// What the health API shows of one name (`"dns"` of a group).
pub struct NameStatus {
    pub name: String,
    pub addresses: Vec<SocketAddr>,
    pub resolved_at: Option<SystemTime>,
    pub error: Option<String>,
    pub next_refresh_at: SystemTime,
}

struct Entry {
    /// The last good answer, with each address's weight (an SRV record's, or 1).
    addresses: Vec<(SocketAddr, u32)>,
    resolved_at: Option<SystemTime>,
    error: Option<String>,
    next: Instant,
    next_wall: SystemTime,
    outcomes: BTreeMap<&'static str, u64>,
}

pub struct Names {
    table: Mutex<HashMap<Key, Entry>>,
    changed: watch::Sender<()>,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            table: Mutex::default(),
            changed: watch::channel(()).0,
        }
    }
}

impl Names {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bumped whenever a name's addresses change.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// The last good addresses of `name` in `group`, with their weights; empty
    /// before the first good answer.
    pub fn addresses(&self, group: &str, name: &TargetAddress) -> Vec<(SocketAddr, u32)> {
        self.table()
            .get(&(group.to_string(), name.clone()))
            .map(|e| e.addresses.clone())
            .unwrap_or_default()
    }

    /// When `name` is due for a lookup; `None`: never looked up, due now.
    pub fn due(&self, group: &str, name: &TargetAddress) -> Option<Instant> {
        self.table()
            .get(&(group.to_string(), name.clone()))
            .map(|e| e.next)
    }

    /// Record one lookup's result and return when to look again: the answer's
    /// TTL held within `refresh`, or `min_ttl` after a failure. The last good
    /// addresses stay through failures.
    pub fn record(
        &self,
        group: &str,
        name: &TargetAddress,
        result: Result<Answer, Failure>,
        refresh: &DnsRefresh,
    ) -> Instant {
        let mut table = self.table();
        let entry = table
            .entry((group.to_string(), name.clone()))
            .or_insert_with(|| Entry {
                addresses: Vec::new(),
                resolved_at: None,
                error: None,
                next: Instant::now(),
                next_wall: SystemTime::now(),
                outcomes: BTreeMap::new(),
            });
        let (outcome, wait, changed) = match result {
            Ok(mut answer) => {
                // Sorted, so that the same records in another order are no change.
                answer.addresses.sort();
                if entry.error.take().is_some() {
                    tracing::info!(
                        target_group = %group, name = %name, addresses = answer.addresses.len(),
                        "DNS name resolves again"
                    );
                }
                let changed = entry.addresses != answer.addresses;
                if changed {
                    let added = diff(&answer.addresses, &entry.addresses);
                    let removed = diff(&entry.addresses, &answer.addresses);
                    tracing::info!(
                        target_group = %group, name = %name, ?added, ?removed,
                        "DNS name's addresses changed"
                    );
                    entry.addresses = answer.addresses;
                }
                entry.resolved_at = Some(SystemTime::now());
                ("ok", refresh.clamp(answer.ttl), changed)
            }
            Err(failure) => {
                if entry.error.is_none() {
                    let kept = entry.addresses.len();
                    if entry.resolved_at.is_some() {
                        tracing::warn!(
                            target_group = %group, name = %name, outcome = failure.outcome,
                            error = %failure.message, kept,
                            "DNS lookup failed; keeping the last good addresses \
                             (logged once until it resolves again)"
                        );
                    } else {
                        tracing::warn!(
                            target_group = %group, name = %name, outcome = failure.outcome,
                            error = %failure.message,
                            "DNS name has not resolved; the group has no target for it yet \
                             (logged once until it resolves)"
                        );
                    }
                }
                entry.error = Some(format!("{}: {}", failure.outcome, failure.message));
                (failure.outcome, refresh.min_ttl, false)
            }
        };
        *entry.outcomes.entry(outcome).or_default() += 1;
        let now = Instant::now();
        entry.next = now + wait;
        entry.next_wall = SystemTime::now() + wait;
        drop(table);
        if changed {
            self.changed.send_replace(());
        }
        now + wait
    }

    /// Forget the names that `config` no longer has.
    pub fn retain(&self, config: &Config) {
        self.table().retain(|(group, name), _| {
            config
                .target_groups
                .iter()
                .any(|g| g.name == *group && g.targets.iter().any(|t| t.address == *name))
        });
    }

    /// The state of each DNS-named entry of `group`, in config order; `None` for a
    /// group without any.
    pub fn status(&self, config: &Config, group: &str) -> Option<Vec<NameStatus>> {
        let g = config.target_groups.iter().find(|g| g.name == group)?;
        if !g.has_dns_targets() {
            return None;
        }
        let table = self.table();
        let status = g
            .targets
            .iter()
            .filter(|t| t.address.is_dns())
            .map(|t| {
                let e = table.get(&(group.to_string(), t.address.clone()));
                NameStatus {
                    name: t.address.to_string(),
                    addresses: e
                        .map(|e| e.addresses.iter().map(|(a, _)| *a).collect())
                        .unwrap_or_default(),
                    resolved_at: e.and_then(|e| e.resolved_at),
                    error: e.and_then(|e| e.error.clone()),
                    next_refresh_at: e.map_or_else(SystemTime::now, |e| e.next_wall),
                }
            })
            .collect();
        Some(status)
    }

    /// `ballast_dns_resolutions_total{target_group,name,outcome}` and
    /// `ballast_dns_targets{target_group,name}` of the names in `config`.
    pub fn render(&self, out: &mut String, config: &Config) {
        let table = self.table();
        let mut rows: Vec<(&str, String, Option<&Entry>)> = Vec::new();
        for g in &config.target_groups {
            for t in g.targets.iter().filter(|t| t.address.is_dns()) {
                let e = table.get(&(g.name.clone(), t.address.clone()));
                rows.push((&g.name, t.address.to_string(), e));
            }
        }
        if rows.is_empty() {
            return;
        }
        family(
            out,
            "ballast_dns_resolutions_total",
            "counter",
            "Lookups of targets' DNS names by outcome: ok, nxdomain, no_records, servfail, timeout, error.",
        );
        for (group, name, e) in &rows {
            for (outcome, n) in e.iter().flat_map(|e| e.outcomes.iter()) {
                let labels = [
                    ("target_group", *group),
                    ("name", name),
                    ("outcome", outcome),
                ];
                sample(out, "ballast_dns_resolutions_total", &labels, n);
            }
        }
        family(
            out,
            "ballast_dns_targets",
            "gauge",
            "Addresses a target's DNS name resolves to now (the last good answer).",
        );
        for (group, name, e) in &rows {
            let n = e.map_or(0, |e| e.addresses.len());
            sample(
                out,
                "ballast_dns_targets",
                &[("target_group", *group), ("name", name)],
                n,
            );
        }
    }
}

impl Names {
    /// The error and outcome counts of one name (tests).
    #[cfg(test)]
    fn status_entry(
        &self,
        group: &str,
        name: &TargetAddress,
    ) -> (Option<String>, BTreeMap<&'static str, u64>) {
        let table = self.table();
        let e = table
            .get(&(group.to_string(), name.clone()))
            .expect("entry");
        (e.error.clone(), e.outcomes.clone())
    }
}

fn diff(a: &[(SocketAddr, u32)], b: &[(SocketAddr, u32)]) -> Vec<SocketAddr> {
    a.iter()
        .filter(|(x, _)| !b.iter().any(|(y, _)| x == y))
        .map(|(x, _)| *x)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn name() -> TargetAddress {
        TargetAddress::parse("app.test:80").expect("a name")
    }

    fn answer(last: &[u8], ttl: u64) -> Result<Answer, Failure> {
        Ok(Answer {
            addresses: last
                .iter()
                .map(|x| (SocketAddr::from(([127, 0, 0, *x], 80)), 1))
                .collect(),
            ttl: Duration::from_secs(ttl),
        })
    }

    fn servfail() -> Result<Answer, Failure> {
        Err(Failure {
            outcome: "servfail",
            message: "the name server failed (SERVFAIL)".into(),
        })
    }

    #[test]
    fn failures_keep_the_last_good_set_and_only_changes_notify() {
        let names = Names::default();
        let mut changed = names.subscribe();
        let refresh = DnsRefresh {
            min_ttl: Duration::from_secs(2),
            max_ttl: Duration::from_secs(60),
        };
        assert_eq!(names.due("web", &name()), None, "never looked up: due now");
        let next = names.record("web", &name(), answer(&[2, 3], 1), &refresh);
        let wait = next - Instant::now();
        assert!(
            wait > Duration::from_secs(1) && wait <= refresh.min_ttl,
            "TTL 1 s held at min_ttl"
        );
        assert!(changed.has_changed().expect("open"));
        changed.mark_unchanged();

        let next = names.record("web", &name(), answer(&[3, 2], 3600), &refresh);
        assert!(
            next - Instant::now() <= refresh.max_ttl,
            "TTL 1 h held at max_ttl"
        );
        assert!(
            !changed.has_changed().expect("open"),
            "the same set in another order"
        );

        names.record("web", &name(), servfail(), &refresh);
        assert_eq!(
            names.addresses("web", &name()).len(),
            2,
            "the last good set stays"
        );
        assert!(!changed.has_changed().expect("open"));
        let status = names.status_entry("web", &name());
        assert_eq!(
            status.0.as_deref(),
            Some("servfail: the name server failed (SERVFAIL)")
        );
        assert_eq!(status.1.get("ok"), Some(&2));
        assert_eq!(status.1.get("servfail"), Some(&1));

        names.record("web", &name(), answer(&[4], 5), &refresh);
        assert_eq!(names.addresses("web", &name()).len(), 1);
        assert!(changed.has_changed().expect("open"));
        assert_eq!(
            names.status_entry("web", &name()).0,
            None,
            "recovery clears the error"
        );
    }
}

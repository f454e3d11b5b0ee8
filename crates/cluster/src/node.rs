//! This node in its fleet: what it knows of etcd and of the fleet's config, the
//! writes it sends, and the loop that follows the fleet's config.
//!
//! Control path; nothing here is on a request's way. **Following the config.**
//! One task watches `{prefix}config` from the revision after the one this node
//! runs. Each revision that arrives is made this node's (`Config::localize`: its
//! own tables and `listener_binds` over the fleet's) and applied through
//! `Control::apply_revision`, the same validate → build → swap → persist path as
//! an admin write or SIGHUP; a revision that does not validate here is refused,
//! logged and reported (API, registration, metric), and the node keeps the last
//! good one. When the watch breaks (etcd stopped, the connection lost), the node
//! says etcd is down and tries again every [`RETRY`]: a watch resumed from the
//! next revision it needs gets every change it missed; if etcd compacted those
//! away, the node reads the key afresh and watches from after that read. A watch
//! quiet for a lease's TTL is checked with one read (a half-open connection would
//! hide every later revision). The data path never waits for any of this: it
//! keeps the snapshot it has.
//!
//! **Writes** (`Fleet::write`, from the admin API) are one etcd transaction: put
//! the new config if the key's last write is still the revision this node runs.
//! Two writers that read the same revision cannot both win; the loser gets 409
//! and the revision to read. etcd unreachable: 503 and nothing changes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ballast_admin::{Control, Fleet, FleetError, FleetFuture, Origin};
use ballast_config::cluster::ClusterConfig;
use ballast_config::Config;
use ballast_proxy::rfc3339;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::etcd::{Cas, Etcd, EtcdError, WatchEvent};

/// How long a node waits between attempts to reach etcd again.
pub const RETRY: Duration = Duration::from_millis(250);

/// What this node knows, for the API, the metrics and its registration.
struct Known {
    etcd_up: bool,
    /// Since when `etcd_up` has held.
    since: SystemTime,
    etcd_error: Option<String>,
    applied_at: Option<SystemTime>,
    /// The fleet's tables of the applied revision.
    shared: Option<Value>,
    /// The newest revision of the fleet's config seen, applied or not.
    fleet_revision: Option<u64>,
    /// The newest revision refused here, and why.
    refused: Option<(u64, String)>,
    /// The fleet as last listed (kept while etcd is unreachable).
    nodes: Vec<Value>,
}

pub struct Node {
    pub(crate) etcd: Etcd,
    pub(crate) cluster: ClusterConfig,
    /// The node's own file: its tables over every fleet revision.
    pub(crate) file: Config,
    admin: Mutex<SocketAddr>,
    started: SystemTime,
    applied: AtomicU64,
    up: AtomicBool,
    refusals: AtomicU64,
    known: Mutex<Known>,
    /// Wakes the registration task to put the registration again.
    pub(crate) changed: Notify,
}

impl Node {
    /// `file` is the node's own config file (with `[cluster] etcd`), `admin`
    /// the admin API's address (its registration's `admin`).
    pub fn new(file: Config, admin: SocketAddr) -> Result<Arc<Node>, EtcdError> {
        let cluster = file
            .cluster
            .clone()
            .ok_or_else(|| EtcdError::Config("no [cluster] in the config".into()))?;
        let etcd = Etcd::new(&cluster)?;
        Ok(Arc::new(Node {
            etcd,
            cluster,
            file,
            admin: Mutex::new(admin),
            started: SystemTime::now(),
            applied: AtomicU64::new(0),
            up: AtomicBool::new(false),
            refusals: AtomicU64::new(0),
            known: Mutex::new(Known {
                etcd_up: false,
                since: SystemTime::now(),
                etcd_error: None,
                applied_at: None,
                shared: None,
                fleet_revision: None,
                refused: None,
                nodes: Vec::new(),
            }),
            changed: Notify::new(),
        }))
    }

    /// The admin API's address once bound (port 0 in the file: the real one).
    pub fn set_admin(&self, address: SocketAddr) {
        if let Ok(mut a) = self.admin.lock() {
            *a = address;
        }
    }

    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    pub fn name(&self) -> &str {
        &self.cluster.node_name
    }

    /// The revision this node runs.
    pub fn applied_revision(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Record the revision the node started on (before the loop runs).
    pub fn started_on(&self, revision: u64, shared: Option<Value>) {
        self.applied.store(revision, Ordering::Release);
        self.with(|k| {
            k.applied_at = Some(SystemTime::now());
            if shared.is_some() {
                k.shared = shared;
            }
        });
    }

    fn with<T>(&self, f: impl FnOnce(&mut Known) -> T) -> Option<T> {
        self.known.lock().ok().map(|mut k| f(&mut k))
    }

    /// etcd answered: said once when it had not.
    pub(crate) fn reached(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            self.with(|k| {
                k.etcd_up = true;
                k.since = SystemTime::now();
                k.etcd_error = None;
            });
            tracing::info!(etcd = %self.etcd.endpoints().join(","), revision = self.applied_revision(), "etcd reachable: following the fleet's config");
            self.changed.notify_one();
        }
    }

    /// etcd did not answer: said once when it had.
    pub(crate) fn lost(&self, error: &EtcdError) {
        let was = self.up.swap(false, Ordering::AcqRel);
        self.with(|k| {
            if was || k.etcd_error.is_none() {
                k.since = SystemTime::now();
            }
            k.etcd_up = false;
            k.etcd_error = Some(error.to_string());
        });
        if was {
            tracing::warn!(%error, revision = self.applied_revision(), "etcd unreachable: serving the config this node has; admin writes are refused with 503 until it is back");
        }
    }

    /// The registration this node keeps under `{prefix}nodes/{name}`.
    pub(crate) fn registration(&self) -> Value {
        let k = self.with(|k| (k.applied_at, k.refused.clone()));
        let (applied_at, refused) = k.unwrap_or((None, None));
        let applied = self.applied_revision();
        let error = refused
            .filter(|(rev, _)| *rev > applied)
            .map(|(rev, why)| format!("revision {rev} refused: {why}"));
        json!({
            "name": self.name(),
            "admin": self.admin.lock().map(|a| a.to_string()).unwrap_or_default(),
            "applied_revision": applied,
            "applied_at": applied_at.map(rfc3339::micros),
            "healthy": error.is_none(),
            "error": error,
            "started_at": rfc3339::micros(self.started),
            "ballast": env!("CARGO_PKG_VERSION"),
        })
    }

    /// Follow the fleet's config until the process ends.
    pub async fn follow(self: Arc<Node>, control: Arc<Control>) {
        let key = self.cluster.config_key();
        // Resume from the revision after this node's; a full read first when
        // the node has no fleet tables yet (started from its state or file).
        let mut from = self.applied_revision() + 1;
        let mut read_first = self.with(|k| k.shared.is_none()).unwrap_or(true);
        loop {
            if read_first {
                match self.read(&control).await {
                    Ok(revision) => {
                        from = revision + 1;
                        read_first = false;
                    }
                    Err(e) => {
                        self.lost(&e);
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                }
            }
            let mut watch = match self.etcd.watch(&key, from as i64).await {
                Ok(w) => w,
                Err(e) => {
                    self.lost(&e);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            loop {
                // A watch whose connection died silently (a half-open TCP
                // connection says nothing) would never deliver again: when it has
                // been quiet for a lease's TTL, one read checks that nothing newer
                // exists than what this node runs.
                let next = match tokio::time::timeout(self.cluster.lease_ttl, watch.next()).await {
                    Ok(next) => next,
                    Err(_) => match self.etcd.get(&key).await {
                        Ok((Some(kv), _)) if kv.mod_revision.max(0) as u64 >= from => {
                            tracing::warn!(
                                revision = kv.mod_revision,
                                from,
                                "the watch missed a revision: reading the config afresh"
                            );
                            read_first = true;
                            break;
                        }
                        Ok(_) => {
                            self.reached();
                            continue;
                        }
                        Err(e) => {
                            self.lost(&e);
                            break;
                        }
                    },
                };
                match next {
                    Ok(events) => {
                        self.reached();
                        for event in events {
                            match event {
                                WatchEvent::Created { .. } => {}
                                WatchEvent::Put { value, revision } => {
                                    let revision = revision.max(0) as u64;
                                    self.apply(&control, &value, revision).await;
                                    from = revision + 1;
                                }
                                WatchEvent::Deleted { revision } => {
                                    tracing::warn!(revision, key = %key, "the fleet's config was deleted from etcd: keeping the config this node runs; write one with `ballast cluster import` or the admin API");
                                    from = revision.max(0) as u64 + 1;
                                }
                                WatchEvent::Compacted { compact_revision } => {
                                    tracing::info!(compact_revision, from, "etcd compacted the revisions this node needs: reading the config afresh");
                                    read_first = true;
                                }
                            }
                        }
                        if read_first {
                            break;
                        }
                    }
                    Err(e) => {
                        self.lost(&e);
                        break;
                    }
                }
            }
            if !read_first {
                tokio::time::sleep(RETRY).await;
            }
        }
    }

    /// Read the fleet's config and apply it if it is newer than this node's;
    /// seed an empty prefix from this node's file. The store's revision.
    async fn read(&self, control: &Control) -> Result<u64, EtcdError> {
        let key = self.cluster.config_key();
        let (kv, revision) = self.etcd.get(&key).await?;
        self.reached();
        crate::sticky::share(&self.etcd, &self.cluster.prefix, &self.file).await?;
        match kv {
            Some(kv) => {
                let at = kv.mod_revision.max(0) as u64;
                if at == self.applied_revision() {
                    // The same revision (the node started on it from its state):
                    // take the fleet's tables for the next write.
                    if let Ok(shared) = serde_json::from_slice::<Value>(&kv.value) {
                        self.with(|k| k.shared = Some(shared));
                    }
                } else {
                    self.apply(control, &kv.value, at).await;
                }
            }
            None => {
                if let Some(shared) = crate::start::seed_value(&self.file) {
                    let written = self.etcd.compare_and_swap(&key, &shared, 0).await?;
                    if let Cas::Won(rev) = written {
                        tracing::info!(revision = rev, key = %key, "etcd held no config: seeded it from this node's file");
                        self.apply(control, &shared, rev.max(0) as u64).await;
                        return Ok(rev.max(0) as u64);
                    }
                    // Another node seeded it first: its config comes by the watch.
                }
            }
        }
        Ok(revision.max(0) as u64)
    }

    /// Make `value` (revision `revision` of the fleet's config) this node's and
    /// apply it; a refusal is logged and reported, and the node keeps its config.
    async fn apply(&self, control: &Control, value: &[u8], revision: u64) {
        self.with(|k| {
            k.fleet_revision = Some(k.fleet_revision.unwrap_or(0).max(revision));
        });
        if revision <= self.applied_revision() {
            return;
        }
        let origin = Origin {
            client: None,
            token: "etcd".into(),
            action: format!("etcd revision {revision}"),
        };
        let localized = serde_json::from_slice::<Value>(value)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|shared| {
                Config::localize(&shared, &self.file)
                    .map(|(config, unknown)| (shared, config, unknown))
                    .map_err(|errors| {
                        errors
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
            });
        let result = match localized {
            Ok((shared, config, unknown)) => {
                if !unknown.is_empty() {
                    tracing::warn!(revision, listeners = %unknown.join(", "), "listener_binds names listeners the fleet's config does not have; ignored");
                }
                control
                    .apply_revision(&origin, revision, config, shared)
                    .await
                    .map(drop)
                    .map_err(|e| e.summary())
            }
            Err(why) => Err(format!("invalid config: {why}")),
        };
        if let Err(why) = result {
            tracing::error!(revision, error = %why, running = self.applied_revision(), "the fleet's config revision is refused on this node; keeping the config it runs");
            self.refusals.fetch_add(1, Ordering::Relaxed);
            self.with(|k| k.refused = Some((revision, why)));
            self.changed.notify_one();
        }
    }
}

impl Fleet for Node {
    fn write<'a>(
        &'a self,
        shared: &'a Value,
        expected: u64,
    ) -> FleetFuture<'a, Result<u64, FleetError>> {
        Box::pin(async move {
            let body =
                serde_json::to_vec(shared).map_err(|e| FleetError::Refused(e.to_string()))?;
            let key = self.cluster.config_key();
            match self
                .etcd
                .compare_and_swap(&key, &body, expected as i64)
                .await
            {
                Ok(Cas::Won(rev)) => {
                    self.reached();
                    Ok(rev.max(0) as u64)
                }
                Ok(Cas::Lost { current }) => {
                    self.reached();
                    Err(FleetError::Conflict {
                        current: current.max(0) as u64,
                    })
                }
                Err(e) if e.is_unreachable() => {
                    self.lost(&e);
                    Err(FleetError::Unavailable(e.to_string()))
                }
                Err(e) => Err(FleetError::Refused(e.to_string())),
            }
        })
    }

    fn shared(&self) -> Option<Value> {
        self.with(|k| k.shared.clone()).flatten()
    }

    fn localize(&self, shared: &Value) -> Result<Config, ballast_config::ConfigErrors> {
        Config::localize(shared, &self.file).map(|(config, _)| config)
    }

    fn applied(&self, revision: u64, shared: Value) {
        self.applied.store(revision, Ordering::Release);
        self.with(|k| {
            k.applied_at = Some(SystemTime::now());
            k.shared = Some(shared);
            k.fleet_revision = Some(k.fleet_revision.unwrap_or(0).max(revision));
        });
        tracing::info!(revision, "applied the fleet's config");
        self.changed.notify_one();
    }

    fn status(&self) -> FleetFuture<'_, Value> {
        Box::pin(async move {
            let listed = self.etcd.list(&self.cluster.nodes_prefix()).await;
            let stale = match listed {
                Ok(kvs) => {
                    self.reached();
                    let nodes: Vec<Value> = kvs
                        .iter()
                        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
                        .collect();
                    self.with(|k| k.nodes = nodes);
                    false
                }
                Err(e) => {
                    self.lost(&e);
                    true
                }
            };
            let k = self.with(|k| {
                json!({
                    "node": self.name(),
                    "etcd": {
                        "up": k.etcd_up,
                        "endpoints": self.etcd.endpoints(),
                        "error": k.etcd_error,
                        "since": rfc3339::millis(k.since),
                    },
                    "prefix": self.cluster.prefix,
                    "applied_revision": self.applied_revision(),
                    "fleet_revision": k.fleet_revision,
                    "refused": k.refused.as_ref().map(|(rev, why)| json!({ "revision": rev, "error": why })),
                    "nodes": k.nodes,
                    "nodes_stale": stale,
                })
            });
            k.unwrap_or(Value::Null)
        })
    }

    fn metrics(&self) -> String {
        let up = u8::from(self.up.load(Ordering::Acquire));
        format!(
            "# HELP ballast_cluster_applied_revision The etcd revision of the fleet's config this node runs.\n\
             # TYPE ballast_cluster_applied_revision gauge\n\
             ballast_cluster_applied_revision {}\n\
             # HELP ballast_cluster_etcd_up Whether etcd answered this node's last call (1) or not (0).\n\
             # TYPE ballast_cluster_etcd_up gauge\n\
             ballast_cluster_etcd_up {up}\n\
             # HELP ballast_cluster_refused_revisions_total Revisions of the fleet's config this node refused (invalid here).\n\
             # TYPE ballast_cluster_refused_revisions_total counter\n\
             ballast_cluster_refused_revisions_total {}\n",
            self.applied_revision(),
            self.refusals.load(Ordering::Relaxed),
        )
    }
}

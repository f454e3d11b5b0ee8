//! The running load balancer: applying configs and stopping.
//!
//! Control path. Every config, from the file at start, SIGHUP, or (later) the admin
//! API and etcd, goes through [`Server::apply`]: validate (done by the config crate)
//! → bind what is new → build the snapshot → swap it in → start new listeners →
//! stop removed ones → restart health checks. If anything fails before the swap,
//! nothing that runs has changed. Listeners whose name, address and settings are the
//! same keep their socket and connections (never rebind a listener that stayed, as
//! rpxy does and drops connections); applies are serialised by one async mutex.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ballast_config::{Config, ListenerConfig};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::discovery::{NameStatus, Names, Resolver};
use crate::frontend::inherited::{Inherited, ListeningSocket};
use crate::frontend::listener::{self, ListenerHandle};
use crate::observe::access_log::AccessLog;
use crate::resilience::registry::Decision as AnomalyDecision;
use crate::snapshot::{Shared, Snapshot};
use crate::tls::certificate::CertificateInfo;
use crate::upstream::deregistration::{self, Deregistering};
use crate::upstream::target::Target;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    // The io error is part of the message, not a `source`: callers print the
    // message, and a chained source would print the same cause twice.
    #[error("listener {listener}: cannot bind {address}: {error}")]
    Bind {
        listener: String,
        address: SocketAddr,
        error: std::io::Error,
    },
    #[error("access log: cannot open {path}: {source}")]
    AccessLog {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: TLS: {message}")]
    Tls { what: String, message: String },
    #[error("stickiness key {path}: {error}")]
    StickinessKey {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
}

pub struct Server {
    shared: Arc<Shared>,
    inner: Mutex<Inner>,
    /// Bumped on every new snapshot, so the drain task looks again.
    published: watch::Sender<()>,
    tls: crate::tls::Registry,
    /// Anomaly windows and decision histories by group, kept across reloads.
    anomalies: crate::resilience::registry::Registry,
    /// What the groups' DNS names resolve to, kept across reloads (`discovery/`).
    names: Arc<Names>,
}

struct Inner {
    listeners: HashMap<Arc<str>, ListenerHandle>,
    checkers: Vec<JoinHandle<()>>,
    /// Listeners being drained after a reload removed them.
    draining: Vec<JoinHandle<()>>,
    drain_task: Option<JoinHandle<()>>,
    /// One refresh task per group with DNS names, and the task that rebuilds
    /// the snapshot when a name's addresses change.
    discovery: Vec<JoinHandle<()>>,
    dns_follower: Option<JoinHandle<()>>,
    /// Built at the first apply with a DNS name; again when `dns_servers` change.
    resolver: Option<Arc<Resolver>>,
    stopped: bool,
    /// Sockets handed over by the process this one upgrades, until the first
    /// apply takes them (`frontend/inherited.rs`).
    inherited: Inherited,
}

impl Server {
    /// Start serving `config` as version 1.
    pub async fn start(config: Config) -> Result<Arc<Server>, ApplyError> {
        Self::start_at(config, 1).await
    }

    /// Start serving `config` as `version` (a persisted config keeps its version,
    /// so versions only ever grow).
    pub async fn start_at(config: Config, version: u64) -> Result<Arc<Server>, ApplyError> {
        Self::start_inheriting(config, version, Vec::new()).await
    }

    /// Like `start_at`, with the listening sockets another ballast process handed
    /// over (a binary upgrade): each listener of `config` whose address matches
    /// one accepts on it instead of binding; the rest are closed.
    pub async fn start_inheriting(
        config: Config,
        version: u64,
        inherited: Vec<ListeningSocket>,
    ) -> Result<Arc<Server>, ApplyError> {
        let empty = Config {
            listeners: Vec::new(),
            target_groups: Vec::new(),
            access_log: ballast_config::AccessLogConfig::Off,
            ..config.clone()
        };
        let empty = Snapshot::build(
            Arc::new(empty),
            version.saturating_sub(1),
            None,
            None,
            &HashMap::new(),
            None,
            &Names::default(),
        );
        let server = Arc::new(Server {
            shared: Arc::new(Shared {
                snapshot: ArcSwap::from_pointee(empty),
            }),
            inner: Mutex::new(Inner {
                listeners: HashMap::new(),
                checkers: Vec::new(),
                draining: Vec::new(),
                drain_task: None,
                discovery: Vec::new(),
                dns_follower: None,
                resolver: None,
                stopped: false,
                inherited: Inherited::new(inherited),
            }),
            published: watch::channel(()).0,
            tls: crate::tls::Registry::default(),
            anomalies: crate::resilience::registry::Registry::default(),
            names: Arc::default(),
        });
        server.apply(config).await?;
        for unused in server.inner.lock().await.inherited.rest() {
            tracing::info!(
                listener = %unused.name, address = %unused.local_addr,
                "socket handed over by the previous process: no listener of the config uses it; closed"
            );
        }
        let task = deregistration::spawn(Arc::downgrade(&server), server.published.subscribe());
        let follower = tokio::spawn(follow_dns(
            Arc::downgrade(&server),
            server.names.subscribe(),
        ));
        let mut inner = server.inner.lock().await;
        inner.drain_task = Some(task);
        inner.dns_follower = Some(follower);
        drop(inner);
        tokio::spawn(watch_tls_files(Arc::downgrade(&server)));
        Ok(server)
    }

    /// The snapshot now in effect.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// Reopen the access-log file (SIGUSR1, for log rotation); the writer does it
    /// on its own side, so this returns at once. Returns whether a file log runs.
    pub fn reopen_access_log(&self) -> bool {
        let snapshot = self.snapshot();
        match &snapshot.access_log {
            Some(log) if matches!(log.destination, ballast_config::AccessLogConfig::File(_)) => {
                log.reopen();
                true
            }
            _ => false,
        }
    }

    /// Apply a validated config atomically; returns its version. On error nothing
    /// that runs has changed.
    pub async fn apply(&self, config: Config) -> Result<u64, ApplyError> {
        self.apply_versioned(config, None).await
    }

    /// Apply as [`Server::apply`], as `version` (cluster mode: the etcd revision
    /// of the fleet's config) instead of the next number.
    pub async fn apply_at(&self, config: Config, version: u64) -> Result<u64, ApplyError> {
        self.apply_versioned(config, Some(version)).await
    }

    async fn apply_versioned(
        &self,
        config: Config,
        version: Option<u64>,
    ) -> Result<u64, ApplyError> {
        let mut inner = self.inner.lock().await;
        let old = self.shared.snapshot.load_full();
        // Certificates, keys, CAs and CRLs are read anew at every apply.
        let tls = self.tls.prepare(&config).map_err(|e| ApplyError::Tls {
            what: e.what,
            message: e.message,
        })?;
        // Read anew too (a rotated key file takes effect at the next apply).
        let sticky_key = crate::upstream::sticky_key::load(&config)
            .map_err(|(path, error)| ApplyError::StickinessKey { path, error })?
            .map(|(key, _)| Arc::new(key));

        // Bind every new or changed listener first: a failure here changes nothing.
        let mut bound = Vec::new();
        for l in &config.listeners {
            if let Some(existing) = inner.listeners.get(l.name.as_str()) {
                if same_listener(existing, old.listener(&l.name).map(|r| &r.config), l) {
                    continue;
                }
            }
            if let Some(socket) = inner.inherited.take(&l.name, l.bind) {
                bound.push((l.clone(), socket, true));
                continue;
            }
            match listener::bind(l.bind) {
                Ok(socket) => bound.push((l.clone(), socket, false)),
                Err(error) => {
                    // Handed-over sockets go back for the next try.
                    for (l, socket, _) in bound.into_iter().filter(|b| b.2) {
                        let local_addr = socket.local_addr().unwrap_or(l.bind);
                        inner.inherited.give_back(ListeningSocket {
                            name: l.name,
                            bind: l.bind,
                            local_addr,
                            socket,
                        });
                    }
                    return Err(ApplyError::Bind {
                        listener: l.name.clone(),
                        address: l.bind,
                        error,
                    });
                }
            }
        }

        // The access log keeps its writer while its destination stays.
        let access_log = match &old.access_log {
            Some(log) if log.destination == config.access_log => Some(log.clone()),
            _ => AccessLog::start(&config.access_log)
                .map_err(|source| ApplyError::AccessLog {
                    path: match &config.access_log {
                        ballast_config::AccessLogConfig::File(p) => p.clone(),
                        _ => "stdout".into(),
                    },
                    source,
                })?
                .map(Arc::new),
        };

        let version = version.unwrap_or(old.version + 1);
        let snapshot = Arc::new(Snapshot::build(
            Arc::new(config),
            version,
            Some(&old),
            access_log,
            &tls.groups,
            sticky_key,
            &self.names,
        ));
        self.publish(&mut inner, snapshot.clone());
        self.tls.commit(tls);
        self.restart_discovery(&mut inner, &snapshot.config);

        // Start what is new, stop what was replaced or removed.
        let mut replaced = Vec::new();
        for (l, socket, _) in bound {
            let tls = self.tls.terminator(&l.name);
            match ListenerHandle::start(&l.name, l.bind, socket, self.shared.clone(), tls) {
                Ok(handle) => {
                    if let Some(old) = inner.listeners.insert(handle.name.clone(), handle) {
                        replaced.push(old);
                    }
                }
                Err(e) => tracing::error!(listener = %l.name, error = %e, "cannot start listener"),
            }
        }
        // Connection limits of the listeners that stayed (new ones took theirs).
        for l in &snapshot.config.listeners {
            if let Some(handle) = inner.listeners.get(l.name.as_str()) {
                handle.configure(l);
            }
        }
        let keep: Vec<&str> = snapshot
            .config
            .listeners
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        let removed: Vec<Arc<str>> = inner
            .listeners
            .keys()
            .filter(|k| !keep.contains(&k.as_ref()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(handle) = inner.listeners.remove(&name) {
                replaced.push(handle);
            }
        }
        let drain = snapshot.config.server.drain_timeout;
        for handle in replaced {
            inner.draining.push(tokio::spawn(handle.stop(drain)));
        }
        inner.draining.retain(|h| !h.is_finished());
        tracing::info!(version, listeners = inner.listeners.len(), "config applied");
        Ok(version)
    }

    /// Swap in a new snapshot and point the health checkers at its groups (a
    /// group's fail-open flag lives in the group object of one snapshot).
    fn publish(&self, inner: &mut Inner, snapshot: Arc<Snapshot>) {
        self.shared.snapshot.store(snapshot.clone());
        for checker in inner.checkers.drain(..) {
            checker.abort();
        }
        inner.checkers = snapshot
            .groups()
            .flat_map(|g| {
                [
                    crate::upstream::health::spawn(g.clone()),
                    crate::resilience::spawn(g.clone(), self.anomalies.group(g.name())),
                ]
            })
            .collect();
        self.anomalies.retain(|name| snapshot.group(name).is_some());
        self.published.send_replace(());
    }

    /// Forget the names the config dropped and restart one refresh task per
    /// group with DNS names (each resumes where the table says it stands).
    fn restart_discovery(&self, inner: &mut Inner, config: &ballast_config::Config) {
        // Stop the old tasks first, so that none records a name the config dropped.
        for task in inner.discovery.drain(..) {
            task.abort();
        }
        self.names.retain(config);
        if !config.target_groups.iter().any(|g| g.has_dns_targets()) {
            return;
        }
        let servers = &config.server.dns_servers;
        let resolver = match &inner.resolver {
            Some(r) if r.servers() == servers.as_slice() => r.clone(),
            _ => Arc::new(Resolver::new(servers)),
        };
        inner.resolver = Some(resolver.clone());
        inner.discovery = config
            .target_groups
            .iter()
            .filter_map(|g| crate::discovery::spawn(g, self.names.clone(), resolver.clone()))
            .collect();
    }

    /// The DNS names of group `name` and what they resolve to (`"dns"` of the
    /// health API); `None` for a group without DNS names.
    pub fn dns_status(&self, group: &str) -> Option<Vec<NameStatus>> {
        self.snapshot().dns_status(&self.names, group)
    }

    /// Rebuild the snapshot from the same config and version: after a drain is
    /// done, or a DNS name's addresses changed.
    fn rebuild(&self, inner: &mut Inner) {
        let old = self.shared.snapshot.load_full();
        let connectors = old
            .groups()
            .filter_map(|g| Some((g.name().to_string(), g.tls.clone()?)))
            .collect();
        let snapshot = Snapshot::build(
            old.config.clone(),
            old.version,
            Some(&old),
            old.access_log.clone(),
            &connectors,
            old.sticky_key.clone(),
            &self.names,
        );
        self.publish(inner, Arc::new(snapshot));
    }

    /// The anomaly mitigation decisions of group `name`, oldest first
    /// (`GET /api/v1/target-groups/{name}/anomalies`).
    pub fn anomalies(&self, group: &str) -> Vec<AnomalyDecision> {
        self.anomalies.history(group)
    }

    /// The Prometheus text of every metric (`GET /metrics`).
    pub fn metrics_text(&self) -> String {
        let snapshot = self.shared.snapshot.load();
        let mut text = snapshot.render_metrics();
        self.names.render(&mut text, &snapshot.config);
        let https: Vec<(&str, u64)> = snapshot
            .config
            .listeners
            .iter()
            .filter(|l| l.tls.is_some())
            .map(|l| (l.name.as_str(), self.tls_handshake_errors(&l.name)))
            .collect();
        crate::observe::exposition::render_tls(&mut text, &https, self.tls_reload_errors());
        text
    }

    /// Reload TLS files that changed on disk now, instead of at the next poll.
    /// Returns how many listeners and groups were reloaded.
    pub async fn reload_tls_files(&self) -> usize {
        let _applying = self.inner.lock().await;
        let groups = self
            .shared
            .snapshot
            .load()
            .groups()
            .filter_map(|g| Some((g.name().to_string(), g.tls.clone()?)))
            .collect();
        self.tls.reload_changed(groups).await
    }

    /// `ballast_tls_handshake_errors_total{listener}`.
    pub fn tls_handshake_errors(&self, listener: &str) -> u64 {
        self.tls
            .terminator(listener)
            .map_or(0, |t| t.handshake_errors())
    }

    /// The certificates a TLS listener serves now (empty for a plain listener).
    pub fn certificates(&self, listener: &str) -> Vec<CertificateInfo> {
        self.tls
            .terminator(listener)
            .map(|t| t.current().certificates.clone())
            .unwrap_or_default()
    }

    /// `ballast_tls_reload_errors_total`: TLS files that failed to load at an apply
    /// or after a change on disk.
    pub fn tls_reload_errors(&self) -> u64 {
        self.tls.reload_errors()
    }

    /// The bound address of a listener (useful with port 0).
    pub async fn local_addr(&self, listener: &str) -> Option<SocketAddr> {
        self.inner
            .lock()
            .await
            .listeners
            .get(listener)
            .map(|l| l.local_addr)
    }

    /// A copy of every listening socket, for a new process to accept on (a
    /// binary upgrade, SIGUSR2).
    pub async fn listening_sockets(&self) -> std::io::Result<Vec<ListeningSocket>> {
        let inner = self.inner.lock().await;
        inner
            .listeners
            .values()
            .map(ListenerHandle::listening_socket)
            .collect()
    }

    /// Stop accepting everywhere, let in-flight requests finish for up to the
    /// config's drain timeout, then close the rest.
    pub async fn shutdown(&self) {
        let mut inner = self.inner.lock().await;
        if inner.stopped {
            return;
        }
        inner.stopped = true;
        let drain = self.shared.snapshot.load().config.server.drain_timeout;
        for checker in inner.checkers.drain(..) {
            checker.abort();
        }
        if let Some(task) = inner.drain_task.take() {
            task.abort();
        }
        if let Some(task) = inner.dns_follower.take() {
            task.abort();
        }
        for task in inner.discovery.drain(..) {
            task.abort();
        }
        let stops: Vec<_> = inner
            .listeners
            .drain()
            .map(|(_, l)| l.stop(drain))
            .collect();
        futures_util::future::join_all(stops).await;
        for h in inner.draining.drain(..) {
            let _ = h.await;
        }
        // Lines still in the workers' buffers reach the file before the process ends.
        if let Some(log) = &self.shared.snapshot.load().access_log {
            log.flush().await;
        }
    }
}

/// A listener keeps its socket and connections unless its address or protocol
/// changed; everything else (actions, timeouts) is read from the snapshot.
fn same_listener(
    handle: &ListenerHandle,
    old: Option<&ListenerConfig>,
    new: &ListenerConfig,
) -> bool {
    // A port-0 listener pinned to the port it got is no change either.
    let same_address = handle.bind == new.bind || handle.local_addr == new.bind;
    old.is_some_and(|old| same_address && old.protocol == new.protocol)
}

/// Poll the TLS files of the running config for changes, while the server lives.
async fn watch_tls_files(server: std::sync::Weak<Server>) {
    let mut tick = tokio::time::interval(crate::tls::watch::INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(server) = server.upgrade() else {
            return;
        };
        if server.inner.lock().await.stopped {
            return;
        }
        server.reload_tls_files().await;
    }
}

impl Deregistering for Server {
    fn draining(&self) -> Vec<Arc<Target>> {
        self.snapshot().draining().cloned().collect()
    }

    /// Remove deregistered targets that finished draining: the same config and
    /// version, rebuilt. Called by the drain task.
    async fn prune(&self) {
        let mut inner = self.inner.lock().await;
        let old = self.shared.snapshot.load_full();
        if inner.stopped || !old.drain_done() {
            return;
        }
        self.rebuild(&mut inner);
    }
}

/// Rebuild the snapshot whenever a DNS name's addresses change, while the
/// server lives: new addresses become targets, vanished ones drain.
async fn follow_dns(server: std::sync::Weak<Server>, mut changed: watch::Receiver<()>) {
    while changed.changed().await.is_ok() {
        let Some(server) = server.upgrade() else {
            return;
        };
        let mut inner = server.inner.lock().await;
        if inner.stopped {
            return;
        }
        server.rebuild(&mut inner);
    }
}

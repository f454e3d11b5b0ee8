//! TLS: termination on `https` listeners (certificates by SNI, policy, ALPN, mutual
//! TLS) and TLS towards targets, with their files reloaded on apply and on change.
//!
//! Control path builds, data path uses. At each config apply the `Registry`
//! prepares every listener's rustls config and every group's client config from
//! the files (a failure there fails the apply and changes nothing), then installs
//! them. Each listener keeps one `Terminator` for its lifetime, whose config is an
//! `ArcSwap` — one swap per listener, of the whole `ServerConfig` (certificates,
//! verifier and policy together), instead of separate swaps inside a resolver and
//! a verifier: a handshake sees one consistent set, and the session cache and
//! ticket keys are shared across swaps so resumption survives reloads. Between
//! applies, a background task (`watch.rs`) reloads what changed on disk; a file
//! that fails to load is logged and counted, and the last good config stays.
//! Each built config keeps a description of its certificates (subject, names,
//! expiry: `certificate.rs`) for the listeners API.

pub mod certificate;
pub mod client_cert;
mod expected;
mod server_config;
mod terminator;
mod upstream;
pub mod watch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ballast_config::Config;

pub use terminator::{AppProtocol, TermState, Terminator, TlsConnInfo};
pub use upstream::Connector;
use watch::Fingerprint;

/// The TLS state of one server: a terminator per `https` listener.
#[derive(Default)]
pub struct Registry {
    listeners: Mutex<HashMap<Arc<str>, Arc<Terminator>>>,
    reload_errors: AtomicU64,
}

/// Everything TLS of one config, built and not yet in effect.
#[derive(Default)]
pub struct Prepared {
    listeners: Vec<(Arc<Terminator>, Option<TermState>)>,
    /// Target group name → its connector.
    pub groups: HashMap<String, Arc<Connector>>,
}

/// A TLS part of a config that could not be built; `what` names it.
#[derive(Debug)]
pub struct PrepareError {
    pub what: String,
    pub message: String,
}

impl Registry {
    /// Build the TLS of `config` from its files; nothing changes yet.
    pub fn prepare(&self, config: &Config) -> Result<Prepared, PrepareError> {
        let existing = self.listeners.lock().map(|m| m.clone()).unwrap_or_default();
        let mut prepared = Prepared::default();
        let fail = |what: String, message: String| {
            self.reload_errors.fetch_add(1, Ordering::Relaxed);
            PrepareError { what, message }
        };
        for l in &config.listeners {
            let Some(tls) = &l.tls else { continue };
            let what = || format!("listener {}", l.name);
            match existing.get(l.name.as_str()) {
                Some(t) => {
                    let state = t.prepare(tls).map_err(|e| fail(what(), e))?;
                    prepared.listeners.push((t.clone(), Some(state)));
                }
                None => {
                    let t = Terminator::new(&l.name, tls).map_err(|e| fail(what(), e))?;
                    prepared.listeners.push((t, None));
                }
            }
        }
        for g in &config.target_groups {
            let Some(tls) = &g.tls else { continue };
            let connector = Connector::load(tls, g.protocol)
                .map_err(|e| fail(format!("target group {}", g.name), e))?;
            prepared.groups.insert(g.name.clone(), connector);
        }
        Ok(prepared)
    }

    /// Put prepared TLS in effect; listeners no longer `https` are forgotten.
    pub fn commit(&self, prepared: Prepared) {
        let mut map = HashMap::new();
        for (t, state) in prepared.listeners {
            if let Some(state) = state {
                t.install(state);
            }
            map.insert(t.listener.clone(), t);
        }
        if let Ok(mut listeners) = self.listeners.lock() {
            *listeners = map;
        }
    }

    pub fn terminator(&self, listener: &str) -> Option<Arc<Terminator>> {
        self.listeners.lock().ok()?.get(listener).cloned()
    }

    pub fn reload_errors(&self) -> u64 {
        self.reload_errors.load(Ordering::Relaxed)
    }

    /// Reload the listeners, and the target groups given (name and TLS client, as
    /// the current snapshot has them), whose files changed on disk.
    /// Returns how many were reloaded. A file set that fails to load is reported
    /// once, and tried again when it changes again.
    pub async fn reload_changed(&self, groups: Vec<(String, Arc<Connector>)>) -> usize {
        let terminators: Vec<_> = self
            .listeners
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let files_of = |t: &Terminator| Fingerprint::of(&t.current().settings.files());
        let listeners: Vec<_> = terminators
            .into_iter()
            .filter(|t| t.files_changed(&files_of(t)))
            .collect();
        let groups: Vec<_> = groups
            .into_iter()
            .filter(|(_, c)| c.files_changed(&Fingerprint::of(&c.settings.files())))
            .collect();
        if listeners.is_empty() && groups.is_empty() {
            return 0;
        }
        // Let a certificate and its key, written one after the other, both land.
        tokio::time::sleep(watch::SETTLE).await;
        let mut reloaded = 0;
        for t in &listeners {
            let result = t
                .prepare(&t.current().settings)
                .map(|state| t.install(state));
            // Whatever the outcome, these files have been looked at.
            t.files_changed(&files_of(t));
            reloaded += self.outcome(result, "listener", &t.listener);
        }
        for (name, c) in &groups {
            let result = c.reload();
            c.files_changed(&Fingerprint::of(&c.settings.files()));
            reloaded += self.outcome(result, "target group", name);
        }
        reloaded
    }

    fn outcome(&self, result: Result<(), String>, kind: &str, name: &str) -> usize {
        match result {
            Ok(()) => {
                tracing::info!(kind, name, "TLS files changed: reloaded");
                1
            }
            Err(e) => {
                self.reload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    kind, name, error = %e,
                    "TLS files changed but cannot be loaded; keeping the last good ones"
                );
                0
            }
        }
    }
}

//! Applying configs from the control plane: validate → apply → persist, one at a time.
//!
//! Control path. The admin API's writes and SIGHUP reloads all come through
//! [`Control::apply`] (the brief of STYLE: every source produces a `Config` that
//! goes through the same path). A write lock spans reading the running config,
//! applying the new one and persisting it, so concurrent writes are ordered and
//! the persisted versions follow the applied ones. Every outcome is recorded in
//! the audit trail (`audit.rs`) with what changed (`changes.rs`). A change is persisted after it
//! is applied and acknowledged only after it is persisted: a crash before the
//! acknowledgement may leave the new version or the old, and after it, the new.

use std::sync::Arc;

use axum::http::StatusCode;
use ballast_config::Config;
use ballast_proxy::Server;
use tokio::sync::Mutex;

use crate::audit::{Audit, Entry, Origin, Outcome};
use crate::error::ApiError;
use crate::history::History;
use crate::store::Store;

pub struct Control {
    pub server: Arc<Server>,
    store: Option<Store>,
    audit: Arc<Audit>,
    /// The dashboard's series, sampled while the admin listener runs.
    history: Arc<History>,
    writes: Mutex<()>,
}

impl Control {
    /// `store` is `None` where nothing should be persisted (tests, demo); the
    /// audit trail then stays in memory.
    pub fn new(server: Arc<Server>, store: Option<Store>) -> Self {
        let audit = match &store {
            Some(s) => Audit::open(s.dir()),
            None => Audit::memory(),
        };
        Control {
            server,
            store,
            audit,
            history: Arc::new(History::from_env()),
            writes: Mutex::new(()),
        }
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    pub fn history(&self) -> &Arc<History> {
        &self.history
    }

    /// Apply a validated config and persist it; returns its version.
    pub async fn apply(&self, origin: &Origin, config: Config) -> Result<u64, ApiError> {
        self.update(origin, |_| Ok(config)).await
    }

    /// Derive a new config from the running one under the write lock, validate it
    /// as a whole (the same validator as the file), apply and persist it. Every
    /// outcome, and what changed, goes to the audit trail before the answer.
    pub async fn update<F>(&self, origin: &Origin, change: F) -> Result<u64, ApiError>
    where
        F: FnOnce(&Config) -> Result<Config, ApiError>,
    {
        let _guard = self.writes.lock().await;
        let running = self.server.snapshot();
        let result = self.update_locked(&running.config, change).await;
        let entry = match &result {
            Ok((version, config)) => Entry {
                changes: crate::changes::summary(&running.config, config),
                ..Entry::new(origin, Outcome::Ok, *version)
            },
            Err(e) => Entry {
                error: Some(e.summary()),
                ..Entry::new(origin, Outcome::Error, running.version)
            },
        };
        self.record(entry).await;
        result.map(|(version, _)| version)
    }

    /// A write refused for authentication: audited, nothing else.
    pub async fn refused(&self, origin: Origin, error: &str) {
        let version = self.server.snapshot().version;
        let entry = Entry {
            error: Some(error.to_string()),
            ..Entry::new(&origin, Outcome::Unauthorized, version)
        };
        self.record(entry).await;
    }

    async fn record(&self, entry: Entry) {
        let audit = self.audit.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || audit.record(entry)).await {
            tracing::error!(error = %e, "audit trail task failed");
        }
    }

    async fn update_locked<F>(&self, running: &Config, change: F) -> Result<(u64, Config), ApiError>
    where
        F: FnOnce(&Config) -> Result<Config, ApiError>,
    {
        let changed = change(running)?;
        // Round-trip through the validator: a modified config is checked exactly
        // like a new file (unique addresses, weight ranges, references).
        let value = serde_json::to_value(&changed)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let config = Config::from_json(&value).map_err(|e| ApiError::invalid_config(&e))?;
        let version = self.server.apply(config.clone()).await.map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot apply: {e}; the running config is unchanged"),
            )
        })?;
        if let Some(store) = self.store.clone() {
            let saved = {
                let config = config.clone();
                tokio::task::spawn_blocking(move || store.save(version, &config)).await
            };
            let failed = match saved {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = failed {
                tracing::error!(version, error = %e, "config applied but not persisted");
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("config version {version} applied but not persisted: {e}"),
                ));
            }
            tracing::info!(version, "config persisted");
        }
        Ok((version, config))
    }
}

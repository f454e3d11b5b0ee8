//! Applying configs from the control plane: validate → apply → persist, one at a time.
//!
//! Control path. The admin API's writes and SIGHUP reloads all come through
//! [`Control::apply`] (the brief of STYLE: every source produces a `Config` that
//! goes through the same path). A write lock spans reading the running config,
//! applying the new one and persisting it, so concurrent writes are ordered and
//! the persisted versions follow the applied ones. A change is persisted after it
//! is applied and acknowledged only after it is persisted: a crash before the
//! acknowledgement may leave the new version or the old, and after it, the new.

use std::sync::Arc;

use axum::http::StatusCode;
use ballast_config::Config;
use ballast_proxy::Server;
use tokio::sync::Mutex;

use crate::error::ApiError;
use crate::store::Store;

pub struct Control {
    pub server: Arc<Server>,
    store: Option<Store>,
    writes: Mutex<()>,
}

impl Control {
    /// `store` is `None` where nothing should be persisted (tests, demo).
    pub fn new(server: Arc<Server>, store: Option<Store>) -> Self {
        Control {
            server,
            store,
            writes: Mutex::new(()),
        }
    }

    /// Apply a validated config and persist it; returns its version.
    pub async fn apply(&self, config: Config) -> Result<u64, ApiError> {
        self.update(|_| Ok(config)).await
    }

    /// Derive a new config from the running one under the write lock, validate it
    /// as a whole (the same validator as the file), apply and persist it.
    pub async fn update<F>(&self, change: F) -> Result<u64, ApiError>
    where
        F: FnOnce(&Config) -> Result<Config, ApiError>,
    {
        let _guard = self.writes.lock().await;
        let running = self.server.snapshot();
        let changed = change(&running.config)?;
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
            let saved = tokio::task::spawn_blocking(move || store.save(version, &config)).await;
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
        Ok(version)
    }
}

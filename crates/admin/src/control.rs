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
//!
//! Each persisted version records its provenance (`source.rs`): the config file
//! last applied and what the API changed since, measured against that file's
//! config, which `Control` keeps (`base`). A SIGHUP ([`Control::reload_file`])
//! applies the file when it changed since then, keeping the version it replaces
//! in the history when that drops API changes; an unchanged file leaves the API's
//! changes in place, said at WARN (unless `--config-wins`: the file always wins).
//!
//! In cluster mode ([`Control::set_fleet`]) a write goes to the fleet's store
//! first, as a compare-and-swap on the revision this node runs (`fleet.rs`), and
//! is applied here as that revision once the store took it; what other nodes
//! write arrives through [`Control::apply_revision`] (the etcd watch), under the
//! same lock, so a node's own write and the watch never interleave.

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use ballast_config::Config;
use ballast_proxy::Server;
use tokio::sync::Mutex;

use crate::audit::{Audit, Entry, Origin, Outcome};
use crate::changes::summary;
use crate::error::ApiError;
use crate::fleet::Fleet;
use crate::source::{FileBase, FileMark, Provenance};
use crate::stats_history::History;
use crate::store::Store;

pub struct Control {
    pub server: Arc<Server>,
    store: Option<Store>,
    audit: Arc<Audit>,
    /// The dashboard's series, sampled while the admin listener runs.
    history: Arc<History>,
    writes: Mutex<()>,
    /// The config file as last applied (set at start; `None` without a file).
    base: std::sync::Mutex<Option<FileBase>>,
    /// Cluster mode: the fleet writes go to.
    fleet: std::sync::OnceLock<Arc<dyn Fleet>>,
}

/// Who writes a new version: the API (its changes count against the file) or
/// the file (which may drop the API's changes, kept as this version and config).
enum Writer {
    Api,
    File {
        mark: FileMark,
        dropped: Option<(u64, Arc<Config>)>,
    },
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
            base: std::sync::Mutex::new(None),
            fleet: std::sync::OnceLock::new(),
        }
    }

    /// Cluster mode: from now on writes go to `fleet` (set once, at start).
    pub fn set_fleet(&self, fleet: Arc<dyn Fleet>) {
        let _ = self.fleet.set(fleet);
    }

    pub fn fleet(&self) -> Option<&Arc<dyn Fleet>> {
        self.fleet.get()
    }

    /// Cluster mode: apply revision `revision` of the fleet's config (`config`,
    /// already made this node's by `Config::localize`; `shared` its fleet tables),
    /// unless this node runs that revision or a newer one already. Persisted and
    /// audited like any write; `None` when there was nothing to do.
    pub async fn apply_revision(
        &self,
        origin: &Origin,
        revision: u64,
        config: Config,
        shared: serde_json::Value,
    ) -> Result<Option<u64>, ApiError> {
        let _guard = self.writes.lock().await;
        let running = self.server.snapshot();
        if revision <= running.version && running.version != 0 {
            return Ok(None);
        }
        let result = self
            .apply_and_persist(config, Some(revision))
            .await
            .map(|(v, c)| (v, c, None));
        if result.is_ok() {
            if let Some(fleet) = self.fleet() {
                fleet.applied(revision, shared);
            }
        }
        self.audit_result(origin, &running, result, None)
            .await
            .map(Some)
    }

    /// The config file as applied at start (`source::at_start`).
    pub fn set_base(&self, base: FileBase) {
        if let Ok(mut b) = self.base.lock() {
            *b = Some(base);
        }
    }

    fn base(&self) -> Option<FileBase> {
        self.base.lock().ok().and_then(|b| b.clone())
    }

    /// Record an entry made elsewhere (the `start` line).
    pub async fn note(&self, entry: Entry) {
        self.record(entry).await;
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
        let result = match self.fleet() {
            Some(fleet) => self.update_fleet_locked(fleet, &running, change).await,
            None => {
                self.update_locked(&running.config, change, Writer::Api)
                    .await
            }
        };
        self.audit_result(origin, &running, result, None).await
    }

    /// Cluster mode's write: validated here, taken by the fleet's store if it
    /// is still at the revision this node runs, then applied as the new revision.
    async fn update_fleet_locked<F>(
        &self,
        fleet: &Arc<dyn Fleet>,
        running: &ballast_proxy::Snapshot,
        change: F,
    ) -> Result<(u64, Config, Option<PathBuf>), ApiError>
    where
        F: FnOnce(&Config) -> Result<Config, ApiError>,
    {
        let changed = change(&running.config)?;
        let value = serde_json::to_value(&changed)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let config = Config::from_json(&value).map_err(|e| ApiError::invalid_config(&e))?;
        let shared = config
            .fleet_value(fleet.shared().as_ref())
            .map_err(|e| ApiError::invalid_config(&e))?;
        // What this node will run, checked before anything is written: the
        // fleet's tables as every node reads them, with this node's own.
        let config = fleet
            .localize(&shared)
            .map_err(|e| ApiError::invalid_config(&e))?;
        let revision = fleet.write(&shared, running.version).await?;
        let (version, config) = self.apply_and_persist(config, Some(revision)).await?;
        fleet.applied(revision, shared);
        Ok((version, config, None))
    }

    /// A SIGHUP of the config file `mark` (`change` reads it): applied when the
    /// file changed since it was last applied, when the API changed nothing since,
    /// or when `file_wins` (`--config-wins`); otherwise the API's changes stay and
    /// a WARN says how to apply the file anyway.
    pub async fn reload_file<F>(
        &self,
        origin: &Origin,
        mark: FileMark,
        file_wins: bool,
        change: F,
    ) -> Result<u64, ApiError>
    where
        F: FnOnce(&Config) -> Result<Config, ApiError>,
    {
        let _guard = self.writes.lock().await;
        let running = self.server.snapshot();
        let base = self.base();
        let api_changes = base
            .as_ref()
            .map(|b| summary(&b.config, &running.config))
            .unwrap_or_default();
        let unchanged = base.as_ref().is_some_and(|b| b.mark.sha256 == mark.sha256);
        if unchanged && !file_wins && !api_changes.is_empty() {
            tracing::warn!(
                file = %mark.path.display(), version = running.version,
                api_changes = %api_changes.join(", "),
                "SIGHUP: the config file is unchanged since it was last applied, and the admin API has changed the config since: keeping the API's changes. To apply the file anyway, edit it (any change; a comment will do) and send SIGHUP again, or restart with --config-wins"
            );
            let entry = Entry {
                source: Some("state".into()),
                ..Entry::new(origin, Outcome::Ok, running.version)
            };
            self.record(entry).await;
            return Ok(running.version);
        }
        let dropped = (!api_changes.is_empty()).then(|| (running.version, running.config.clone()));
        let writer = Writer::File { mark, dropped };
        let result = self.update_locked(&running.config, change, writer).await;
        self.audit_result(origin, &running, result, Some(api_changes))
            .await
    }

    /// Audit an update; `dropped` is `Some` for the file (SIGHUP): what applying
    /// it dropped of the API's changes.
    async fn audit_result(
        &self,
        origin: &Origin,
        running: &ballast_proxy::Snapshot,
        result: Result<(u64, Config, Option<PathBuf>), ApiError>,
        dropped: Option<Vec<String>>,
    ) -> Result<u64, ApiError> {
        let entry = match &result {
            Ok((version, config, kept)) => Entry {
                changes: summary(&running.config, config),
                source: dropped.is_some().then(|| "file".to_string()),
                dropped: dropped.unwrap_or_default(),
                kept: kept.as_ref().map(|p| p.display().to_string()),
                ..Entry::new(origin, Outcome::Ok, *version)
            },
            Err(e) => Entry {
                error: Some(e.summary()),
                ..Entry::new(origin, Outcome::Error, running.version)
            },
        };
        self.record(entry).await;
        result.map(|(version, _, _)| version)
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

    async fn update_locked<F>(
        &self,
        running: &Config,
        change: F,
        writer: Writer,
    ) -> Result<(u64, Config, Option<PathBuf>), ApiError>
    where
        F: FnOnce(&Config) -> Result<Config, ApiError>,
    {
        let changed = change(running)?;
        // Round-trip through the validator: a modified config is checked exactly
        // like a new file (unique addresses, weight ranges, references).
        let value = serde_json::to_value(&changed)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let config = Config::from_json(&value).map_err(|e| ApiError::invalid_config(&e))?;
        // A version the file drops is kept before anything replaces it.
        let kept = match &writer {
            Writer::File {
                mark,
                dropped: Some((version, old)),
            } => Some(self.keep_dropped(mark, *version, old.clone()).await?),
            _ => None,
        };
        let version = self.server.apply(config.clone()).await.map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot apply: {e}; the running config is unchanged"),
            )
        })?;
        let base = self.base();
        let provenance = match writer {
            Writer::Api => Provenance {
                api_changes: base
                    .as_ref()
                    .map(|b| summary(&b.config, &config))
                    .unwrap_or_default(),
                file: base.map(|b| b.mark),
            },
            Writer::File { mark, .. } => {
                self.set_base(FileBase {
                    mark: mark.clone(),
                    config: config.clone(),
                });
                Provenance {
                    file: Some(mark),
                    api_changes: Vec::new(),
                }
            }
        };
        self.persist(version, &config, provenance).await?;
        Ok((version, config, kept.flatten()))
    }

    /// Apply `config` (as `version` when given) and persist it, with no file
    /// behind it (cluster mode: the fleet's store is the source).
    async fn apply_and_persist(
        &self,
        config: Config,
        version: Option<u64>,
    ) -> Result<(u64, Config), ApiError> {
        let applied = match version {
            Some(v) => self.server.apply_at(config.clone(), v).await,
            None => self.server.apply(config.clone()).await,
        };
        let version = applied.map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot apply: {e}; the running config is unchanged"),
            )
        })?;
        self.persist(version, &config, Provenance::default())
            .await?;
        Ok((version, config))
    }

    async fn persist(
        &self,
        version: u64,
        config: &Config,
        provenance: Provenance,
    ) -> Result<(), ApiError> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let saved = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || store.save(version, &config, &provenance)).await
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
        Ok(())
    }

    /// Keep `old` (version `version`), which the file `mark` is about to replace
    /// and drop the API's changes of, in the history; said at WARN. Without a state
    /// directory there is nowhere to keep it: `None`.
    async fn keep_dropped(
        &self,
        mark: &FileMark,
        version: u64,
        old: Arc<Config>,
    ) -> Result<Option<PathBuf>, ApiError> {
        let base = self.base();
        let changes = base
            .as_ref()
            .map(|b| summary(&b.config, &old).join(", "))
            .unwrap_or_default();
        let Some(store) = self.store.clone() else {
            tracing::warn!(file = %mark.path.display(), version, dropped = %changes,
                "SIGHUP: the config file changed since it was last applied: it wins; the admin API's changes are dropped");
            return Ok(None);
        };
        let kept = tokio::task::spawn_blocking(move || store.keep_dropped(version, &old)).await;
        match kept {
            Ok(Ok(path)) => {
                tracing::warn!(file = %mark.path.display(), version, dropped = %changes, kept = %path.display(),
                    "SIGHUP: the config file changed since it was last applied: it wins; the admin API's changes are dropped (restore them with PUT /api/v1/config and the kept file)");
                Ok(Some(path))
            }
            Ok(Err(e)) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot keep version {version} in the history: {e}; nothing applied"),
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            )),
        }
    }
}

//! ballast's control plane (SPEC §8, §13): the admin API, its persistence and
//! audit trail, `/metrics` and the dashboard, served by axum on `admin.bind`.
//!
//! Control path only; nothing here runs per proxied request. Every write goes
//! through [`Control`] (validate → `Server::apply` → persist in `state.dir` →
//! audit), the same path as the file and SIGHUP. Layout: `routes` (the route
//! table and router), `config_api`, `groups`, `listeners` and `audit` (handlers), `auth`
//! (read and write tokens), `control` (apply, persist and audit, serialised),
//! `changes` (what a new config changes), `audit` (the trail and its file),
//! `store` (atomic state file), `source` (file or state: which wins at start
//! and on SIGHUP), `history` (versions the file dropped), `listener` (plain or TLS serving), `secrets`
//! (secret files other users can read), `error` (JSON errors), `pages`
//! (dashboard, its chart library, metrics, OpenAPI), `stats_history` (the dashboard's
//! 15 minutes of rates and latencies, sampled by a task of the admin listener)
//! and `sample` (the arithmetic between two readings of the counters).
#![forbid(unsafe_code)]

mod audit;
mod auth;
mod changes;
mod config_api;
mod control;
mod error;
mod fleet;
mod groups;
mod history;
mod listener;
mod listeners;
mod pages;
mod routes;
mod sample;
mod secrets;
mod source;
mod stats_history;
mod store;

use std::sync::Arc;

pub use audit::{Audit, Entry as AuditEntry, Origin, Outcome, KEEP as AUDIT_KEEP};
pub use auth::{Token, Tokens};
pub use control::Control;
pub use error::ApiError;
pub use fleet::{Fleet, FleetError, FleetFuture};
pub use history::KEEP as HISTORY_KEEP;
pub use listener::{serve, serve_on, tls_config, HEADER_READ_TIMEOUT};
pub use pages::OPENAPI;
pub use routes::{router, Endpoint, ROUTES};
pub use secrets::{exposed_secret_files, secret_files, warn_exposed_secret_files};
pub use source::{at_start, Dropped, FileBase, FileMark, Provenance, Start};
pub use stats_history::{
    History, INTERVAL_ENV as HISTORY_INTERVAL_ENV, KEEP as STATS_HISTORY_KEEP,
};
pub use store::{Persisted, Store, StoreError};

/// What every handler shares.
#[derive(Clone)]
pub struct AdminState {
    pub control: Arc<Control>,
    /// The write and read tokens; none set: the admin plane is open.
    pub tokens: Tokens,
}

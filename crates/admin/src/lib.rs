//! ballast's control plane (SPEC §8): the admin API, its persistence, `/metrics`
//! and the dashboard, served by axum on `admin.bind`.
//!
//! Control path only; nothing here runs per proxied request. Every write goes
//! through [`Control`] (validate → `Server::apply` → persist in `state.dir`), the
//! same path as the file and SIGHUP. Layout: `routes` (the route table and router),
//! `config_api` and `groups` (handlers), `auth` (bearer token for writes),
//! `control` (apply and persist, serialised), `store` (atomic state file),
//! `error` (JSON errors), `pages` (dashboard, metrics, OpenAPI).
#![forbid(unsafe_code)]

mod auth;
mod config_api;
mod control;
mod error;
mod groups;
mod pages;
mod routes;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;

pub use auth::Token;
pub use control::Control;
pub use error::ApiError;
pub use pages::OPENAPI;
pub use routes::{router, Endpoint, ROUTES};
pub use store::{Persisted, Store, StoreError};

/// What every handler shares.
#[derive(Clone)]
pub struct AdminState {
    pub control: Arc<Control>,
    /// When set, writes need `Authorization: Bearer <token>`.
    pub token: Option<Token>,
}

/// Bind `addr` and serve the admin API until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "admin API listening");
    let app = router(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "admin API stopped");
        }
    });
    Ok((local, task))
}

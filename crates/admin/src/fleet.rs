//! Cluster mode as the admin plane sees it: where writes go (the fleet's store,
//! as a compare-and-swap on the revision the writer saw) and `GET /api/v1/cluster`.
//!
//! Control path. The admin crate knows the fleet only through [`Fleet`], which
//! `ballast-cluster` implements over etcd; without cluster mode there is none and
//! every write is local, as before. The status codes are decided here: a lost
//! compare-and-swap is 409 with the fleet's current revision (the same meaning as
//! a stale `version` on one node), an unreachable store is 503 (the node keeps
//! serving what it has; nothing is applied), any other refusal 502.

use std::future::Future;
use std::pin::Pin;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::ReadAccess;
use crate::error::ApiError;
use crate::AdminState;

pub type FleetFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the fleet's store did not take a write.
#[derive(Debug)]
pub enum FleetError {
    /// Another write came first: the fleet's config is now at `current`.
    Conflict { current: u64 },
    /// The store cannot be reached.
    Unavailable(String),
    /// The store answered with an error.
    Refused(String),
}

impl From<FleetError> for ApiError {
    fn from(e: FleetError) -> ApiError {
        match e {
            FleetError::Conflict { current } => ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "the fleet's config changed since this node's version; it is now at revision {current}: read it again"
                ),
            )
            .with_detail(json!({ "current_revision": current })),
            FleetError::Unavailable(why) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the fleet's config store is unreachable ({why}); nothing was changed, and this node keeps serving its current config"),
            ),
            FleetError::Refused(why) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the fleet's config store refused the write: {why}; nothing was changed"),
            ),
        }
    }
}

/// The fleet this node belongs to.
pub trait Fleet: Send + Sync {
    /// Store `shared` (the fleet's tables, see `Config::fleet_value`) as the
    /// fleet's config if it is still at revision `expected`; the new revision.
    fn write<'a>(
        &'a self,
        shared: &'a Value,
        expected: u64,
    ) -> FleetFuture<'a, Result<u64, FleetError>>;
    /// The fleet's config this node last applied (its shared tables).
    fn shared(&self) -> Option<Value>;
    /// The config this node runs for the fleet's `shared` tables (its own tables
    /// and `listener_binds` over them), validated; the errors otherwise.
    fn localize(
        &self,
        shared: &Value,
    ) -> Result<ballast_config::Config, ballast_config::ConfigErrors>;
    /// This node applied revision `revision` of the fleet's config (`shared`).
    fn applied(&self, revision: u64, shared: Value);
    /// `GET /api/v1/cluster`.
    fn status(&self) -> FleetFuture<'_, Value>;
    /// Its lines of `/metrics` (Prometheus text).
    fn metrics(&self) -> String;
}

/// `GET /api/v1/cluster`: the fleet and the revision each node runs;
/// `{"enabled": false}` on a node on its own.
pub async fn get(State(state): State<AdminState>, _read: ReadAccess) -> Json<Value> {
    match state.control.fleet() {
        Some(fleet) => {
            let mut status = fleet.status().await;
            if let Value::Object(map) = &mut status {
                map.insert("enabled".into(), Value::Bool(true));
            }
            Json(status)
        }
        None => Json(json!({ "enabled": false })),
    }
}

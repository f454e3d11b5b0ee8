//! `GET /api/v1/config` and `PUT /api/v1/config`.
//!
//! `GET /api/v1/config?format=toml` gives the running config as a TOML file that
//! `ballast check` and `ballast serve` read back to the same config (see
//! `ballast_config::Config::to_toml`), headed by a comment naming its version.
//! Control path. PUT takes the config as JSON (the same shape GET returns under
//! `config`, and the same validator as the file), so `GET` → edit → `PUT` works.
//! The body may also be GET's whole answer, `{"version": N, "config": {...}}`: the
//! version then guards against lost updates (409 when the running config has moved
//! on since it was read). The `[admin]` table is the node's own and comes from the
//! file at start (tokens, TLS, address): a body may leave it out or send it
//! unchanged, and one that changes it is refused, so the API can never unlock
//! itself. In cluster mode a node's own tables are always its own (the body's
//! are ignored) and the `version` is the fleet's revision: a stale one is 409
//! fleet-wide, through etcd's compare-and-swap (`fleet.rs`).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ballast_config::Config;
use serde_json::{json, Value};

use crate::auth::{ReadAccess, WriteAccess};
use crate::error::ApiError;
use crate::AdminState;

#[derive(serde::Deserialize)]
pub struct GetQuery {
    format: Option<String>,
}

pub async fn get(
    State(state): State<AdminState>,
    _read: ReadAccess,
    Query(q): Query<GetQuery>,
) -> Result<Response, ApiError> {
    let snapshot = state.control.server.snapshot();
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(
            json!({ "version": snapshot.version, "config": &*snapshot.config }),
        )
        .into_response()),
        Some("toml") => {
            let text = snapshot
                .config
                .to_toml()
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let body = format!(
                "# ballast config, version {} (GET /api/v1/config?format=toml).\n\
                 # Relative file paths are relative to the directory ballast was started in.\n\n{text}",
                snapshot.version
            );
            Ok(([(header::CONTENT_TYPE, "application/toml")], body).into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "format must be \"json\" or \"toml\", not {other:?}"
        ))),
    }
}

pub async fn put(
    State(state): State<AdminState>,
    write: WriteAccess,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // Parsed under the write lock, so that a malformed body is audited too.
    let version = state
        .control
        .update(&write.origin, |running| {
            let value: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
            let (expected, mut value) = unwrap_versioned(value);
            if state.control.fleet().is_some() {
                keep_node_tables(&mut value, running)?;
            }
            keep_admin(&mut value, running)?;
            let config = Config::from_json(&value).map_err(|e| ApiError::invalid_config(&e))?;
            if config.admin != running.admin {
                return Err(ApiError::bad_request("admin settings cannot change through the API")
                    .with_detail(json!({
                        "path": "admin",
                        "message": "[admin] comes from the config file and takes effect at start; send it unchanged or leave it out",
                    })));
            }
            let current = state.control.server.snapshot().version;
            match expected {
                Some(v) if v != current => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("the config changed since version {v}; it is now version {current}: read it again"),
                )),
                _ => Ok(config),
            }
        })
        .await?;
    Ok(Json(json!({ "version": version })))
}

/// Cluster mode: a node's own tables (`[server]`, `[admin]`, `[state]`,
/// `[access_log]`, `[cluster]`) come from its file, whatever the body says, so a
/// config read from one node can be written through another; only the fleet's
/// tables travel (`Config::fleet_value`).
fn keep_node_tables(value: &mut Value, running: &Config) -> Result<(), ApiError> {
    let own = serde_json::to_value(running)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if let Value::Object(map) = value {
        for table in ballast_config::NODE_TABLES {
            match own.get(table) {
                Some(v) => map.insert(table.to_string(), v.clone()),
                None => map.remove(table),
            };
        }
    }
    Ok(())
}

/// A body without `admin` keeps the running admin settings.
fn keep_admin(value: &mut Value, running: &Config) -> Result<(), ApiError> {
    if let Value::Object(map) = value {
        if !map.contains_key("admin") {
            let admin = serde_json::to_value(&running.admin)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            map.insert("admin".into(), admin);
        }
    }
    Ok(())
}

/// `{"version": N, "config": {...}}` → `(Some(N), config)`; anything else as is.
fn unwrap_versioned(value: Value) -> (Option<u64>, Value) {
    if let Value::Object(map) = &value {
        let keys_ok = map.keys().all(|k| k == "version" || k == "config");
        if keys_ok && map.contains_key("config") {
            let version = map.get("version").and_then(Value::as_u64);
            let config = map.get("config").cloned().unwrap_or(Value::Null);
            return (version, config);
        }
    }
    (None, value)
}

//! `GET /api/v1/config` and `PUT /api/v1/config`.
//!
//! Control path. PUT takes the config as JSON (the same shape GET returns under
//! `config`, and the same validator as the file), so `GET` → edit → `PUT` works.
//! The body may also be GET's whole answer, `{"version": N, "config": {...}}`: the
//! version then guards against lost updates (409 when the running config has moved
//! on since it was read).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ballast_config::Config;
use serde_json::{json, Value};

use crate::auth::WriteAccess;
use crate::error::ApiError;
use crate::AdminState;

pub async fn get(State(state): State<AdminState>) -> Json<Value> {
    let snapshot = state.control.server.snapshot();
    Json(json!({ "version": snapshot.version, "config": &*snapshot.config }))
}

pub async fn put(
    State(state): State<AdminState>,
    _write: WriteAccess,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let (expected, value) = unwrap_versioned(value);
    let config = Config::from_json(&value).map_err(|e| ApiError::invalid_config(&e))?;
    let version = state
        .control
        .update(|_running| {
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

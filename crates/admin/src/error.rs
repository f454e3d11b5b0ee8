//! The admin API's errors: one JSON shape, `{"error": "...", "details": [...]}`,
//! with the status code decided here.
//!
//! Control path. `details` carries every config error (path, line, column,
//! message) when a config is rejected, so a client sees all of them at once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ballast_config::ConfigErrors;
use serde_json::{json, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub details: Vec<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            details: Vec::new(),
        }
    }

    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }

    pub fn invalid_config(errors: &ConfigErrors) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: format!("invalid config: {} error(s)", errors.len()),
            details: errors
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
                .collect(),
        }
    }

    /// One line for the audit trail: the error and its first details.
    pub fn summary(&self) -> String {
        let mut text = self.error.clone();
        for d in self.details.iter().take(5) {
            let path = d["path"].as_str().unwrap_or("");
            let message = d["message"].as_str().unwrap_or("");
            text.push_str(&format!("; {path}: {message}"));
        }
        if self.details.len() > 5 {
            text.push_str(&format!("; and {} more", self.details.len() - 5));
        }
        text
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.details.push(detail);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "details": self.details });
        (self.status, Json(body)).into_response()
    }
}

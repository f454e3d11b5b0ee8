//! What the admin server serves besides the JSON API: the dashboard, Prometheus
//! metrics and the OpenAPI document.
//!
//! Control path. The dashboard is one static page whose inline script polls the
//! API and `/metrics` every second, so it needs no build step and shows exactly
//! what a script would see. The OpenAPI document is hand-written JSON (checked
//! against the route table and parsed as OpenAPI 3 by the tests).

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};

use crate::auth::MetricsAccess;
use crate::AdminState;

pub const OPENAPI: &str = include_str!("openapi.json");
const DASHBOARD: &str = include_str!("dashboard.html");

pub async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

pub async fn metrics(State(state): State<AdminState>, _access: MetricsAccess) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.control.server.metrics_text(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

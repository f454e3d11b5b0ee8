//! What the admin server serves besides the JSON API: the dashboard, Prometheus
//! metrics and the OpenAPI document.
//!
//! Control path. The dashboard is one static page whose inline script polls the
//! API every few seconds (the history of rates and latencies, health, listeners,
//! audit), so it needs no build step and shows exactly what a script would see.
//! Its charts are drawn by uPlot (MIT, `dashboard/uPlot.LICENSE`), vendored from
//! the npm registry into the binary and served from `/dashboard/`, so the page
//! needs no network beyond the admin listener. The OpenAPI document is hand-written JSON (checked
//! against the route table and parsed as OpenAPI 3 by the tests).

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};

use crate::auth::MetricsAccess;
use crate::AdminState;

pub const OPENAPI: &str = include_str!("openapi.json");
const DASHBOARD: &str = include_str!("dashboard.html");
const CHART_SCRIPT: &str = include_str!("dashboard/uPlot.iife.min.js");
const CHART_STYLE: &str = include_str!("dashboard/uPlot.min.css");
/// The vendored files never change within a binary: browsers may keep them a day.
const CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "public, max-age=86400");

pub async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

pub async fn chart_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            CACHE,
        ],
        CHART_SCRIPT,
    )
}

pub async fn chart_style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), CACHE],
        CHART_STYLE,
    )
}

pub async fn metrics(State(state): State<AdminState>, _access: MetricsAccess) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = state.control.server.metrics_text();
            if let Some(fleet) = state.control.fleet() {
                text.push_str(&fleet.metrics());
            }
            text
        },
    )
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

//! The admin API's routes: one table, from which the router is built.
//!
//! Control path. Because the router is built from [`ROUTES`] and nothing else, the
//! table is the complete list of what the server answers; the OpenAPI test checks
//! it against `openapi.json` both ways, so the document cannot drift from the code.

use axum::http::Method;
use axum::routing::{self, MethodRouter};
use axum::Router;

use crate::{audit, config_api, fleet, groups, listeners, pages, stats_history, AdminState};

/// Every endpoint: method, path (axum/OpenAPI `{param}` syntax), handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Dashboard,
    ChartScript,
    ChartStyle,
    Metrics,
    OpenApi,
    GetConfig,
    PutConfig,
    ListGroups,
    GetGroup,
    RegisterTarget,
    DeregisterTarget,
    GroupHealth,
    GroupAnomalies,
    Listeners,
    Audit,
    StatsHistory,
    Cluster,
}

pub const ROUTES: &[(Method, &str, Endpoint)] = &[
    (Method::GET, "/", Endpoint::Dashboard),
    (
        Method::GET,
        "/dashboard/uPlot.iife.min.js",
        Endpoint::ChartScript,
    ),
    (
        Method::GET,
        "/dashboard/uPlot.min.css",
        Endpoint::ChartStyle,
    ),
    (Method::GET, "/metrics", Endpoint::Metrics),
    (Method::GET, "/api/v1/openapi.json", Endpoint::OpenApi),
    (Method::GET, "/api/v1/config", Endpoint::GetConfig),
    (Method::PUT, "/api/v1/config", Endpoint::PutConfig),
    (Method::GET, "/api/v1/target-groups", Endpoint::ListGroups),
    (
        Method::GET,
        "/api/v1/target-groups/{name}",
        Endpoint::GetGroup,
    ),
    (
        Method::POST,
        "/api/v1/target-groups/{name}/targets",
        Endpoint::RegisterTarget,
    ),
    (
        Method::DELETE,
        "/api/v1/target-groups/{name}/targets/{address}",
        Endpoint::DeregisterTarget,
    ),
    (
        Method::GET,
        "/api/v1/target-groups/{name}/health",
        Endpoint::GroupHealth,
    ),
    (
        Method::GET,
        "/api/v1/target-groups/{name}/anomalies",
        Endpoint::GroupAnomalies,
    ),
    (Method::GET, "/api/v1/listeners", Endpoint::Listeners),
    (Method::GET, "/api/v1/audit", Endpoint::Audit),
    (Method::GET, "/api/v1/stats/history", Endpoint::StatsHistory),
    (Method::GET, "/api/v1/cluster", Endpoint::Cluster),
];

fn handler(endpoint: Endpoint) -> MethodRouter<AdminState> {
    match endpoint {
        Endpoint::Dashboard => routing::get(pages::dashboard),
        Endpoint::ChartScript => routing::get(pages::chart_script),
        Endpoint::ChartStyle => routing::get(pages::chart_style),
        Endpoint::Metrics => routing::get(pages::metrics),
        Endpoint::OpenApi => routing::get(pages::openapi),
        Endpoint::GetConfig => routing::get(config_api::get),
        Endpoint::PutConfig => routing::put(config_api::put),
        Endpoint::ListGroups => routing::get(groups::list),
        Endpoint::GetGroup => routing::get(groups::get),
        Endpoint::RegisterTarget => routing::post(groups::register),
        Endpoint::DeregisterTarget => routing::delete(groups::deregister),
        Endpoint::GroupHealth => routing::get(groups::health),
        Endpoint::GroupAnomalies => routing::get(groups::anomalies),
        Endpoint::Listeners => routing::get(listeners::list),
        Endpoint::Audit => routing::get(audit::list),
        Endpoint::StatsHistory => routing::get(stats_history::get),
        Endpoint::Cluster => routing::get(fleet::get),
    }
}

pub fn router(state: AdminState) -> Router {
    let mut router = Router::new();
    for (_, path, endpoint) in ROUTES {
        router = router.route(path, handler(*endpoint));
    }
    router
        .fallback(|| async {
            crate::error::ApiError::not_found("no such endpoint; see /api/v1/openapi.json")
        })
        .with_state(state)
}

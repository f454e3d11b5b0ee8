//! The admin API over `Router::oneshot` (no admin socket), in front of a real
//! ballast and real backends on 127.0.0.1:0.

mod access;
mod anomaly;
mod audit;
mod config;
mod config_toml;
mod dns;
mod health_detail;
mod history;
mod listeners;
mod load_shedding;
mod observe;
mod openapi;
mod targets;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use ballast_admin::{AdminState, Control, Store, Tokens};
use ballast_testkit::{Ballast, Setup};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A ballast with its admin router.
pub struct Admin {
    pub ballast: Ballast,
    pub router: Router,
    pub control: Arc<Control>,
    token: Option<String>,
    /// The client address requests come from (`ConnectInfo`); none by default,
    /// as a request that did not come over a socket.
    pub client: Option<SocketAddr>,
}

impl Admin {
    pub async fn start(setup: &Setup) -> Admin {
        Self::start_with(setup, None, None).await
    }

    /// A ballast started from this config, with an open admin plane.
    pub async fn start_config(config: ballast_config::Config) -> Admin {
        let ballast = Ballast::start_config(config).await;
        let control = Arc::new(Control::new(ballast.server.clone(), None));
        let router = ballast_admin::router(AdminState {
            control: control.clone(),
            tokens: Tokens::default(),
        });
        Admin {
            ballast,
            router,
            control,
            token: None,
            client: None,
        }
    }

    pub async fn start_with(setup: &Setup, token: Option<&str>, store: Option<Store>) -> Admin {
        let tokens = token.map(Tokens::write_only).unwrap_or_default();
        Self::start_tokens(setup, tokens, token, store).await
    }

    /// With these tokens; `call` sends `token` (when given).
    pub async fn start_tokens(
        setup: &Setup,
        tokens: Tokens,
        token: Option<&str>,
        store: Option<Store>,
    ) -> Admin {
        let ballast = Ballast::start(setup).await;
        let control = Arc::new(Control::new(ballast.server.clone(), store));
        let router = ballast_admin::router(AdminState {
            control: control.clone(),
            tokens,
        });
        Admin {
            ballast,
            router,
            control,
            token: token.map(str::to_string),
            client: None,
        }
    }

    /// A call with the right token (when one is set).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        self.call_as(method, path, body, auth.as_deref()).await
    }

    pub async fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        authorization: Option<&str>,
    ) -> (StatusCode, Value) {
        let (status, text) = self.raw(method, path, body, authorization).await;
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        authorization: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        if let Some(c) = self.client {
            req = req.extension(ConnectInfo(c));
        }
        let body = match body {
            Some(v) => Body::from(v.to_string()),
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(req.body(body).expect("request"))
            .await
            .expect("router is infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, v) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {v}");
        v
    }

    /// The state of `address` in group `web`, or None when it is not there.
    pub async fn target_state(&self, address: &str) -> Option<String> {
        let health = self.get("/api/v1/target-groups/web/health").await;
        health["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .find(|t| t["address"] == address)
            .map(|t| t["state"].as_str().unwrap_or("").to_string())
    }
}

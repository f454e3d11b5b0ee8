//! Builders for integration tests: real backends and a real ballast on 127.0.0.1:0,
//! and a client to talk to them.
//!
//! Test support only. In the spirit of linkerd2-proxy's test builders, each test
//! says what it needs in a few lines: `backends(3)`, a config from `Setup`, then
//! `Ballast::start`. Everything binds port 0, so tests run in parallel. Waiting is
//! on events where there is one; where the only signal is state that changes in the
//! background (a health transition), `eventually` polls it with a deadline.
#![forbid(unsafe_code)]

mod client;
pub mod dns;
pub mod grpc;
pub mod h2_hostile;
pub mod pki;
mod process;
pub mod raw;
pub mod recorder;
pub mod services;
pub mod tls;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use ballast_backend::{spawn as spawn_backend, BackendConfig, BackendHandle, Poison};
use ballast_config::Config;
use ballast_proxy::Server;
pub use client::{Client, Reply};
pub use process::BallastProcess;
pub use services::{EtcdServer, RedisServer};

/// A backend on 127.0.0.1:0.
pub async fn backend(name: &str) -> BackendHandle {
    backend_with(BackendConfig::new(name)).await
}

pub async fn backend_with(config: BackendConfig) -> BackendHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a backend on 127.0.0.1:0");
    ballast_backend::spawn(listener, config)
}

/// `n` backends named `b0`, `b1`, ...
pub async fn backends(n: usize) -> Vec<BackendHandle> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(backend(&format!("b{i}")).await);
    }
    v
}

/// A one-listener, one-group config, as TOML, with knobs for what tests vary.
#[derive(Clone)]
pub struct Setup {
    pub algorithm: &'static str,
    pub targets: Vec<(SocketAddr, u32)>,
    /// Health-check interval; short by default so tests converge quickly.
    pub interval: &'static str,
    pub hc_timeout: &'static str,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub minimum_healthy_targets: u32,
    /// Extra lines appended to the `[[listeners]]` table.
    pub listener_extra: String,
    /// Extra lines appended to the `[[target_groups]]` table.
    pub group_extra: String,
    pub drain_timeout: &'static str,
    /// Listener bind address; port 0 by default.
    pub bind: String,
    /// Lines appended to the config's top level (before `[server]`): `[state]`,
    /// `[access_log]` overrides and the like.
    pub top_extra: String,
    /// `[access_log] path`; "off" by default.
    pub access_log: String,
    /// Extra TOML appended at the end (more target groups, see [`group_toml`]).
    pub extra: String,
    /// Extra lines appended to the `[target_groups.health_check]` table.
    pub health_extra: String,
    /// Extra lines appended to the `[server]` table (`dns_servers`, ...).
    pub server_extra: String,
}

impl Setup {
    pub fn new(backends: &[BackendHandle]) -> Self {
        Setup {
            algorithm: "round_robin",
            targets: backends.iter().map(|b| (b.addr(), 1)).collect(),
            interval: "200ms",
            hc_timeout: "150ms",
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            minimum_healthy_targets: 1,
            listener_extra: String::new(),
            group_extra: String::new(),
            drain_timeout: "10s",
            bind: "127.0.0.1:0".to_string(),
            top_extra: String::new(),
            access_log: "off".to_string(),
            extra: String::new(),
            health_extra: String::new(),
            server_extra: String::new(),
        }
    }

    /// A setup whose targets are these addresses (gRPC or WebSocket servers).
    pub fn with_targets(addrs: &[SocketAddr]) -> Self {
        let mut setup = Setup::new(&[]);
        setup.targets = addrs.iter().map(|a| (*a, 1)).collect();
        setup
    }

    /// Group `web` speaks HTTP/2 to its targets and checks them with the gRPC
    /// health protocol.
    pub fn grpc(mut self) -> Self {
        self.group_extra.push_str("protocol = \"http2\"\n");
        self.health_extra
            .push_str(&format!("grpc_service = \"{}\"\n", grpc::SERVICE));
        self
    }

    pub fn algorithm(mut self, a: &'static str) -> Self {
        self.algorithm = a;
        self
    }

    pub fn weights(mut self, weights: &[u32]) -> Self {
        for (t, w) in self.targets.iter_mut().zip(weights) {
            t.1 = *w;
        }
        self
    }

    pub fn toml(&self) -> String {
        let targets: Vec<String> = self
            .targets
            .iter()
            .map(|(a, w)| format!("{{ address = \"{a}\", weight = {w} }}"))
            .collect();
        format!(
            r#"
{top_extra}
[server]
drain_timeout = "{drain}"
{server_extra}

[admin]
bind = "127.0.0.1:0"

[access_log]
path = "{access_log}"

[[listeners]]
name = "public"
bind = "{bind}"
default_action = {{ type = "forward", target_group = "web" }}
{listener_extra}

[[target_groups]]
name = "web"
algorithm = "{alg}"
targets = [{targets}]
{group_extra}

[target_groups.health_check]
interval = "{interval}"
timeout = "{hc_timeout}"
healthy_threshold = {ht}
unhealthy_threshold = {ut}
{health_extra}
[target_groups.unhealthy_state_routing]
minimum_healthy_targets = {min}

{extra}
"#,
            top_extra = self.top_extra,
            access_log = self.access_log,
            drain = self.drain_timeout,
            bind = self.bind,
            listener_extra = self.listener_extra,
            alg = self.algorithm,
            targets = targets.join(", "),
            group_extra = self.group_extra,
            interval = self.interval,
            hc_timeout = self.hc_timeout,
            ht = self.healthy_threshold,
            ut = self.unhealthy_threshold,
            min = self.minimum_healthy_targets,
            extra = self.extra,
            health_extra = self.health_extra,
            server_extra = self.server_extra,
        )
    }

    pub fn config(&self) -> Config {
        let text = self.toml();
        Config::from_toml(&text).unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n{text}"))
    }
}

/// A `[[target_groups]]` table for `Setup::extra`: a round-robin group over
/// `backends` with the same quick health checks as the main group.
pub fn group_toml(name: &str, backends: &[BackendHandle]) -> String {
    let targets: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ address = \"{}\" }}", b.addr()))
        .collect();
    format!(
        "[[target_groups]]\nname = \"{name}\"\ntargets = [{}]\n[target_groups.health_check]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nhealthy_threshold = 2\n\n",
        targets.join(", ")
    )
}

/// An in-process ballast.
pub struct Ballast {
    pub server: Arc<Server>,
    pub addr: SocketAddr,
}

impl Ballast {
    pub async fn start(setup: &Setup) -> Ballast {
        Self::start_config(setup.config()).await
    }

    pub async fn start_config(config: Config) -> Ballast {
        let server = Server::start(config).await.expect("ballast starts");
        let addr = server
            .local_addr("public")
            .await
            .expect("listener `public`");
        Ballast { server, addr }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// Wait until every target of group `web` is healthy.
    pub async fn all_healthy(&self) {
        let server = self.server.clone();
        eventually("all targets healthy", Duration::from_secs(10), move || {
            let server = server.clone();
            async move {
                let snap = server.snapshot();
                let g = snap.group("web").expect("group web");
                g.targets.iter().all(|t| t.is_healthy())
            }
        })
        .await;
    }
}

/// Poll `check` until it holds, failing the test after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

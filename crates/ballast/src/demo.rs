//! `ballast demo`: three demo backends and a balancer over them, in one process,
//! made to be watched.
//!
//! Control path. The backends bind ephemeral ports on 127.0.0.1 so the demo never
//! collides with what already runs; the balancer binds the given address, the
//! admin API and dashboard theirs (port 0 for any free port: the log says which).
//! Nothing is persisted (no state directory). Three things make it worth
//! watching: every request is logged to stdout as one short line (the access
//! log's terminal format; `serve` keeps the JSON lines), one backend misbehaves
//! now and then ([`trouble`]: slow answers and 500s for a while, through the
//! backend's own latency and fail-rate knobs), so the dashboard's charts and
//! anomaly mitigation have something to show, and `--traffic` drives light
//! traffic of its own ([`traffic`]) so nothing else needs to run.

mod traffic;
mod trouble;

use std::net::SocketAddr;

use ballast_backend::BackendConfig;
use ballast_config::Config;
use ballast_proxy::Server;
use tokio::signal::unix::{signal, SignalKind};

/// The listener's name in the demo config (and in its log lines).
const LISTENER: &str = "demo";

pub async fn run(bind: SocketAddr, admin: SocketAddr, traffic: Option<u32>) -> anyhow::Result<()> {
    ballast_proxy::use_access_log_format(ballast_proxy::AccessLogFormat::Line);
    let mut backends = Vec::new();
    for name in ["demo-a", "demo-b", "demo-c"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        backends.push(ballast_backend::spawn(listener, BackendConfig::new(name)));
    }
    let targets: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ address = \"{}\", name = \"{}\" }}", b.addr(), b.name()))
        .collect();
    let text = format!(
        r#"
[server]
drain_timeout = "5s"

[admin]
bind = "{admin}"

# No [access_log]: requests are logged to stdout.

[[listeners]]
name = "{LISTENER}"
bind = "{bind}"
default_action = {{ type = "forward", target_group = "demo" }}

[[target_groups]]
name = "demo"
algorithm = "round_robin"
anomaly_mitigation = "on"
targets = [{targets}]

[target_groups.health_check]
interval = "2s"
timeout = "1s"
"#,
        targets = targets.join(", ")
    );
    let config = Config::from_toml(&text).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let server = Server::start(config).await?;
    let local = server.local_addr(LISTENER).await.unwrap_or(bind);
    let control = std::sync::Arc::new(ballast_admin::Control::new(server.clone(), None));
    let state = ballast_admin::AdminState {
        control,
        tokens: ballast_admin::Tokens::default(),
    };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let (admin_addr, _) = ballast_admin::serve(admin, None, state, async {
        let _ = admin_stopped.await;
    })
    .await
    .map_err(|e| anyhow::anyhow!("admin API: cannot bind {admin}: {e}"))?;
    for b in &backends {
        tracing::info!(backend = b.name(), address = %b.addr(), "demo backend");
    }
    let troubled = &backends[2];
    let mut banner = format!(
        "\nballast demo: balancer on http://{local}/ over {} backends\n",
        backends.len()
    );
    for b in &backends {
        banner.push_str(&format!("  {} at {}\n", b.name(), b.addr()));
    }
    banner.push_str(&format!(
        "  {} misbehaves now and then: {}\n  anomaly mitigation is on: watch its weight drop and recover (dashboard, or GET /api/v1/target-groups/demo/anomalies)\n",
        troubled.name(),
        trouble::DESCRIPTION
    ));
    match traffic {
        Some(rate) => banner.push_str(&format!(
            "  sending {rate} requests/s of its own (--traffic); one line each on stdout\n"
        )),
        None => banner.push_str(&format!(
            "  try: curl -s http://{local}/hello   (or restart with --traffic for traffic of its own)\n"
        )),
    }
    banner.push_str(&format!(
        "  dashboard: http://{admin_addr}/   API: http://{admin_addr}/api/v1/target-groups\n  Ctrl-C stops everything\n"
    ));
    eprintln!("{banner}");

    let trouble = tokio::spawn(trouble::run(troubled.clone()));
    let driver = traffic.map(|rate| tokio::spawn(traffic::run(local, rate)));
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("demo stopping");
    if let Some(driver) = driver {
        driver.abort();
    }
    trouble.abort();
    let _ = stop_admin.send(());
    server.shutdown().await;
    for b in &backends {
        b.shutdown().await;
    }
    Ok(())
}

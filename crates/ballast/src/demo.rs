//! `ballast demo`: three demo backends and a balancer over them, in one process.
//!
//! Control path. The backends bind ephemeral ports on 127.0.0.1 so the demo never
//! collides with what already runs; the balancer binds the given address, the
//! admin API and dashboard theirs. Nothing is persisted (no state directory).

use std::net::SocketAddr;

use ballast_backend::BackendConfig;
use ballast_config::Config;
use ballast_proxy::Server;
use tokio::signal::unix::{signal, SignalKind};

pub async fn run(bind: SocketAddr, admin: SocketAddr) -> anyhow::Result<()> {
    let mut backends = Vec::new();
    for name in ["demo-a", "demo-b", "demo-c"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        backends.push(ballast_backend::spawn(listener, BackendConfig::new(name)));
    }
    let targets: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ address = \"{}\" }}", b.addr()))
        .collect();
    let text = format!(
        r#"
[server]
drain_timeout = "5s"

[admin]
bind = "{admin}"

[access_log]
path = "off"

[[listeners]]
name = "demo"
bind = "{bind}"
default_action = {{ type = "forward", target_group = "demo" }}

[[target_groups]]
name = "demo"
algorithm = "round_robin"
targets = [{targets}]

[target_groups.health_check]
interval = "2s"
timeout = "1s"
"#,
        targets = targets.join(", ")
    );
    let config = Config::from_toml(&text).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let server = Server::start(config).await?;
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
    eprintln!(
        "\nballast demo: balancer on http://{bind}/ over {} backends\n  try: curl -s http://{bind}/hello\n  dashboard: http://{admin_addr}/   API: http://{admin_addr}/api/v1/target-groups\n  Ctrl-C stops everything\n",
        backends.len()
    );
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let _ = stop_admin.send(());
    server.shutdown().await;
    for b in &backends {
        b.shutdown().await;
    }
    Ok(())
}

//! `ballast serve`: load the config, run until SIGTERM/SIGINT, reload on SIGHUP.
//!
//! Control path. A reload reads and validates the file, then applies it through
//! the same path as the start; an invalid file is logged error by error and
//! changes nothing. SIGTERM and SIGINT drain: stop accepting, let in-flight
//! requests finish up to `server.drain_timeout`, exit 0.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use ballast_config::Config;
use ballast_proxy::Server;
use tokio::signal::unix::{signal, SignalKind};

pub async fn run(path: &Path) -> anyhow::Result<()> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors.iter() {
                tracing::error!("{}: {e}", path.display());
            }
            anyhow::bail!("{}: {} config error(s)", path.display(), errors.len());
        }
    };
    let mut hup = signal(SignalKind::hangup()).context("install SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    let server = Server::start(config).await?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&server, path).await,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("draining: no new connections; in-flight requests may finish");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn reload(server: &Arc<Server>, path: &Path) {
    tracing::info!(file = %path.display(), "SIGHUP: reloading config");
    match Config::load(path) {
        Ok(config) => {
            if let Err(e) = server.apply(config).await {
                tracing::error!(error = %e, "reload failed; the running config is unchanged");
            }
        }
        Err(errors) => {
            for e in errors.iter() {
                tracing::error!("{}: {e}", path.display());
            }
            tracing::error!(
                errors = errors.len(),
                "reload rejected; the running config is unchanged"
            );
        }
    }
}

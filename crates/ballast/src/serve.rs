//! `ballast serve`: load the config, run until SIGTERM/SIGINT, reload on SIGHUP.
//!
//! Control path. At start the file is read and validated first (it names
//! `state.dir`); then `ballast_admin::at_start` decides between it and what the
//! admin API persisted there: the newest word wins (the file when its content
//! changed since it was last applied, or with `--config-wins`; else the persisted
//! state), the choice is logged (WARN when something is ignored or dropped) and
//! recorded as the audit trail's `start` line. A reload (SIGHUP) reads and
//! validates the file and, by the same rule, applies it through the same path as
//! an API write and persists it as a new version, so a restart keeps what ran
//! last; an invalid file is logged error by error and changes nothing; either way
//! the reload is in the audit trail.
//! `[admin]` (address, tokens, TLS) always comes from the file and is read at
//! start only; `allow_open_writes` and secret files other users can read are
//! warned about at start (the former at each reload too). SIGTERM and SIGINT drain: stop accepting, let
//! in-flight requests finish up to `server.drain_timeout`, exit 0. SIGUSR1 reopens
//! the access-log file (log rotation); the log's writer does it on its own side.
//! SIGUSR2 upgrades the binary (`upgrade.rs`): once a new process serves on this
//! one's sockets, this one drains the same way.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use ballast_admin::{AdminState, Control, FileMark, Origin, Store, Tokens};
use ballast_config::{Config, ConfigError, ConfigErrors};
use ballast_proxy::Server;
use tokio::signal::unix::{signal, SignalKind};

use crate::upgrade::{Takeover, Upgrade};

pub async fn run(path: &Path, config_wins: bool) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!(
            "no config file at {}: start from one of the commented configs in examples/ \
             (README, \"Starter kit\"), or try `ballast demo`; pass another file with --config PATH",
            path.display()
        );
    }
    let (mark, loaded) = read(path);
    let file = match loaded {
        Ok(c) => c,
        Err(errors) => {
            for e in errors.iter() {
                tracing::error!("{}: {e}", path.display());
            }
            anyhow::bail!("{}: {} config error(s)", path.display(), errors.len());
        }
    };
    let store = Store::new(&file.state.dir);
    let file_admin = file.admin.clone();
    // Cluster mode: the fleet's config in etcd decides (`ballast_cluster::begin`).
    let node = match file.cluster.as_ref().filter(|c| c.shares_config()) {
        Some(_) => Some(ballast_cluster::Node::new(file.clone(), file_admin.bind)?),
        None => None,
    };
    let (start, begin) = match &node {
        Some(node) => {
            let begin = ballast_cluster::begin(node, &store)
                .await
                .map_err(anyhow::Error::msg)?;
            (None, Some(begin))
        }
        None => {
            let start = ballast_admin::at_start(&store, mark, file, config_wins).map_err(|e| {
                anyhow::anyhow!(
                    "{e}; fix or remove it, or pass --config-wins to start from the file"
                )
            })?;
            (Some(start), None)
        }
    };
    let (config, version) = match (&start, &begin) {
        (Some(s), _) => (s.config.clone(), s.version),
        (_, Some(b)) => (b.config.clone(), b.version),
        _ => unreachable!("one of the two"),
    };
    // `[admin]` is the node's own: always the file's, even over a persisted config.
    let mut config = config;
    config.admin = file_admin.clone();
    let admin = file_admin;
    warn_open_writes(&admin);
    ballast_admin::warn_exposed_secret_files(&config);
    let tls = match &admin.tls {
        Some(t) => Some(ballast_admin::tls_config(t).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut hup = signal(SignalKind::hangup()).context("install SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
    let mut usr1 = signal(SignalKind::user_defined1()).context("install SIGUSR1 handler")?;
    let mut usr2 = signal(SignalKind::user_defined2()).context("install SIGUSR2 handler")?;
    let mut upgrade = Upgrade::new(admin.bind)?;
    let mut takeover = Takeover::receive()?;
    let inherited = takeover
        .as_mut()
        .map_or_else(Vec::new, |t| std::mem::take(&mut t.sockets.listeners));
    let server = Server::start_inheriting(config.clone(), version, inherited).await?;
    let control = match (start, begin) {
        (Some(start), _) => {
            let start = Arc::new(start);
            let kept = {
                let (s, start) = (store.clone(), start.clone());
                tokio::task::spawn_blocking(move || start.commit(&s))
                    .await?
                    .with_context(|| format!("persist to {}", store.path().display()))?
            };
            let control = Arc::new(Control::new(server.clone(), Some(store)));
            control.set_base(start.base.clone());
            control.note(start.entry(kept.as_deref())).await;
            control
        }
        (None, Some(begin)) => {
            if begin.source != "state" {
                let (s, c) = (store.clone(), config.clone());
                tokio::task::spawn_blocking(move || {
                    s.save(version, &c, &ballast_admin::Provenance::default())
                })
                .await?
                .with_context(|| format!("persist to {}", store.path().display()))?;
            }
            let control = Arc::new(Control::new(server.clone(), Some(store)));
            control
                .note(ballast_admin::AuditEntry {
                    source: Some(begin.source.to_string()),
                    ..ballast_admin::AuditEntry::new(
                        &Origin::start(),
                        ballast_admin::Outcome::Ok,
                        version,
                    )
                })
                .await;
            if let Some(node) = &node {
                node.started_on(version, begin.shared);
                control.set_fleet(node.clone());
            }
            control
        }
        _ => unreachable!("one of the two"),
    };
    let tokens = Tokens::load(&admin).map_err(anyhow::Error::msg)?;
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AdminState {
        control: control.clone(),
        tokens,
    };
    let admin_socket = Takeover::admin_socket(takeover.as_mut(), admin.bind)
        .with_context(|| format!("admin API: cannot bind {}", admin.bind))?;
    let (_, admin_task) = ballast_admin::serve_on(admin_socket.try_clone()?, tls, state, async {
        let _ = admin_stopped.await;
    })?;
    if let Some(takeover) = takeover {
        takeover.serving();
    }
    if let Some(node) = &node {
        if let Ok(a) = admin_socket.local_addr() {
            node.set_admin(a);
        }
        tokio::spawn(node.clone().follow(control.clone()));
        tokio::spawn(ballast_cluster::register(node.clone()));
    }
    loop {
        tokio::select! {
            _ = hup.recv() => match &node {
                None => reload(&control, path, config_wins).await,
                Some(_) => reload_cluster(&server).await,
            },
            _ = usr1.recv() => reopen_log(&server),
            _ = usr2.recv() => upgrade.start(&server, &admin_socket).await,
            true = upgrade.finished() => break,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    if let Some(node) = &node {
        ballast_cluster::leave(node).await;
    }
    tracing::info!("draining: no new connections; in-flight requests may finish");
    drop(admin_socket);
    let _ = stop_admin.send(());
    server.shutdown().await;
    admin_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP in cluster mode: the fleet's config comes from etcd (admin API,
/// `ballast cluster import`), and the node's own tables are read at start; what
/// a SIGHUP still does is read certificates and keys anew.
async fn reload_cluster(server: &Server) {
    let changed = server.reload_tls_files().await;
    tracing::info!(
        certificates_reloaded = changed,
        "SIGHUP in cluster mode: certificate and key files read anew; the fleet's config comes from etcd (change it through the admin API or `ballast cluster import`), and this node's own tables take effect at restart"
    );
}

/// SIGUSR1: logrotate has moved the access log away; write to a new file at its path.
fn reopen_log(server: &Server) {
    if server.reopen_access_log() {
        tracing::info!("SIGUSR1: reopening the access log");
    } else {
        tracing::info!("SIGUSR1: the access log is not a file; nothing to reopen");
    }
}

/// `allow_open_writes` in effect: said at every start and reload.
fn warn_open_writes(admin: &ballast_config::AdminConfig) {
    if admin.allow_open_writes && admin.open_writes_exposed() {
        tracing::warn!(
            address = %admin.bind,
            "admin.allow_open_writes = true: the admin API on a non-loopback address takes writes without a token; anyone who reaches it can change the config"
        );
    }
}

/// Re-read the file and apply it through the same path as an API write; the
/// outcome, or every error, goes to the audit trail. `[admin]` stays as it was
/// at start (its listener and tokens are not rebuilt): a change to it is said and
/// takes effect at the next restart.
async fn reload(control: &Control, path: &Path, config_wins: bool) {
    tracing::info!(file = %path.display(), "SIGHUP: reloading config");
    let origin = Origin::sighup(path);
    let (mark, loaded) = read(path);
    if let Err(errors) = &loaded {
        for e in errors.iter() {
            tracing::error!("{}: {e}", path.display());
        }
        tracing::error!(
            errors = errors.len(),
            "reload rejected; the running config is unchanged"
        );
    }
    let result = control
        .reload_file(&origin, mark, config_wins, |running| {
            let mut config = loaded.map_err(|e| ballast_admin::ApiError::invalid_config(&e))?;
            warn_open_writes(&config.admin);
            if config.admin != running.admin {
                tracing::warn!("[admin] changed in the file: it takes effect at the next restart");
                config.admin = running.admin.clone();
            }
            Ok(config)
        })
        .await;
    if let Err(e) = result {
        if !e.details.is_empty() {
            return; // invalid file: already logged error by error
        }
        tracing::error!(error = %e.error, "reload failed; the running config is unchanged");
    }
}

/// The config file's fingerprint and its config, from one read of its content
/// (so the fingerprint is of exactly what was parsed).
fn read(path: &Path) -> (FileMark, Result<Config, ConfigErrors>) {
    match std::fs::read(path) {
        Ok(bytes) => {
            let mark = FileMark::of(path, &bytes);
            let config = match String::from_utf8(bytes) {
                Ok(text) => Config::from_toml_in(&text, path.parent().unwrap_or(Path::new(""))),
                // Not UTF-8: let the loader report it as it reports every file.
                Err(_) => Config::load(path),
            };
            (mark, config)
        }
        Err(e) => (
            FileMark::of(path, b""),
            Err(ConfigErrors::one(ConfigError::new(
                "",
                None,
                format!("cannot read {}: {e}", path.display()),
            ))),
        ),
    }
}

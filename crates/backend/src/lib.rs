//! `ballast-backend`: the test and demo backend behind `ballast backend`, `ballast demo`
//! and the proxy's integration tests (SPEC §6).
//!
//! Every request is answered `200` with a JSON echo of what arrived (method, path, query,
//! headers, body size), and every response carries `x-backend: NAME` so a test can tell
//! which target a proxy picked. Query parameters (`status=`, `delay_ms=`, `bytes=`, `set_cookie=`) and
//! the config (`fail_rate`, `latency`, `capacity`, `poison`) turn it into a
//! misbehaving or overloaded target on demand, and
//! the [`BackendHandle`] lets a test flip its health, stall it, stop it gracefully or
//! kill it like a crashed process.
//!
//! It is a real server, not a mock: hyper 1.x through hyper-util's auto builder, so one
//! port speaks HTTP/1.1 keep-alive and h2c with prior knowledge; request bodies are
//! streamed and counted, never buffered; `bytes=N` bodies are streamed from one static
//! buffer. The request path takes no locks: counters, health and latency are atomics.
//!
//! Layout: [`control`] holds the shared state and the handle, [`server`] the accept loop
//! and its lifecycle, [`connection`] one connection (and its reset-on-kill socket),
//! [`respond`] the request handler, [`steer`] the query parameters, [`echo`] the JSON
//! document, [`payload`] the response body type.

#![forbid(unsafe_code)]

mod connection;
mod control;
mod echo;
mod payload;
mod poison;
mod respond;
mod server;
mod steer;

use std::net::SocketAddr;
use std::time::Duration;

pub use control::BackendHandle;
pub use poison::Poison;

/// How a backend behaves; the CLI builds one from its flags.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// Reported in the echo's `backend` field and in the `x-backend` header.
    pub name: String,
    /// Share (`0.0..=1.0`) of requests answered `500`; health checks are never failed.
    pub fail_rate: f64,
    /// Added before every response except health checks; see [`BackendHandle::set_latency`].
    pub latency: Duration,
    /// At most this many requests are served at once (each for its latency); the
    /// rest wait their turn in a FIFO queue, so latency grows with load as in a
    /// server with a fixed pool of workers. `None`: no bound. Health checks
    /// never wait.
    pub capacity: Option<usize>,
    /// A request carrying this header value makes every later request fail
    /// (`500`, and `503` on `/healthz`), like a crash; see [`Poison`].
    pub poison: Option<Poison>,
}

impl BackendConfig {
    /// A well-behaved backend: no failures, no added latency.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            fail_rate: 0.0,
            latency: Duration::ZERO,
            capacity: None,
            poison: None,
        }
    }
}

/// Serve on an already-bound listener until the handle is stopped or its last clone is
/// dropped. Spawns on the current tokio runtime (panics outside one, like `tokio::spawn`).
pub fn spawn(listener: tokio::net::TcpListener, config: BackendConfig) -> BackendHandle {
    server::spawn(listener, config)
}

/// Bind `addr`, log it, and serve until Ctrl-C or SIGTERM, then drain gracefully.
/// For the CLI.
pub async fn run(addr: SocketAddr, config: BackendConfig) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let handle = spawn(listener, config);
    tracing::info!(addr = %handle.addr(), name = handle.name(), "backend listening");
    stop_signal().await?;
    tracing::info!(
        name = handle.name(),
        "backend stopping, finishing in-flight requests"
    );
    handle.shutdown().await;
    Ok(())
}

/// Resolves on the first Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            res = tokio::signal::ctrl_c() => res,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

//! A listener: its socket, its accept loop and the connections it serves.
//!
//! Data path. Each accepted connection runs in its own task, served by hyper's
//! auto builder (HTTP/1.1 and HTTP/2 with prior knowledge on one port) and
//! supervised by `connection::supervise` for timeouts and drain. On an `https`
//! listener the connection task first runs the TLS handshake (`tls::Terminator`,
//! bounded by the header-read timeout) and then serves the TLS stream the same
//! way; hyper's auto builder serves h2 when ALPN chose it (the client then sends
//! the HTTP/2 preface), HTTP/1.1 otherwise. A listener that
//! is stopped (SIGTERM, or removed by a reload) closes its socket at once, asks its
//! connections to finish their in-flight requests, and after the drain timeout
//! closes what is left.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballast_config::ListenerConfig;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::connection::{self, Drain, Timeouts};
use crate::forward::{self, ConnCtx};
use crate::headers::ForwardedInfo;
use crate::metrics::ListenerMetrics;
use crate::server::Shared;
use crate::tls::{Terminator, TlsConnInfo};
use crate::upgrade::Tunnels;

/// Bind a listening socket the way a server should: address reuse for quick
/// restarts, a deep accept backlog for bursts of new connections.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// A running listener.
pub struct ListenerHandle {
    pub name: Arc<str>,
    /// The configured bind address (port 0 stays 0 here).
    pub bind: SocketAddr,
    /// The address actually bound.
    pub local_addr: SocketAddr,
    drain: watch::Sender<Drain>,
    connections: TaskTracker,
    accept: JoinHandle<()>,
}

impl ListenerHandle {
    /// Start accepting on `socket`.
    pub fn start(
        name: &str,
        bind: SocketAddr,
        socket: TcpListener,
        shared: Arc<Shared>,
        tls: Option<Arc<Terminator>>,
    ) -> io::Result<Self> {
        let local_addr = socket.local_addr()?;
        let name: Arc<str> = Arc::from(name);
        let (drain, drain_rx) = watch::channel(Drain::Running);
        let connections = TaskTracker::new();
        let ctx = AcceptCtx {
            name: name.clone(),
            forwarded: Arc::new(ForwardedInfo::new(
                if tls.is_some() { "https" } else { "http" },
                local_addr.port(),
            )),
            shared,
            builder: server_builder(),
            tls,
        };
        let accept = tokio::spawn(accept_loop(socket, ctx, drain_rx, connections.clone()));
        tracing::info!(listener = %name, address = %local_addr, "listening");
        Ok(ListenerHandle {
            name,
            bind,
            local_addr,
            drain,
            connections,
            accept,
        })
    }

    /// Stop accepting, drain connections for up to `timeout`, then close the rest.
    pub async fn stop(self, timeout: Duration) {
        self.accept.abort();
        let _ = self.accept.await; // the socket is closed once the task is gone
        self.connections.close();
        let _ = self.drain.send(Drain::Draining);
        if tokio::time::timeout(timeout, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                listener = %self.name, remaining = self.connections.len(),
                "drain timeout reached: closing remaining connections"
            );
            let _ = self.drain.send(Drain::Closing);
            self.connections.wait().await;
        }
        tracing::info!(listener = %self.name, "listener stopped");
    }
}

struct AcceptCtx {
    name: Arc<str>,
    forwarded: Arc<ForwardedInfo>,
    shared: Arc<Shared>,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<Arc<Terminator>>,
}

impl AcceptCtx {
    /// The listener's timeouts and metric cells as the current snapshot has them.
    fn settings(&self) -> (Timeouts, Arc<ListenerMetrics>) {
        let snapshot = self.shared.snapshot.load();
        match snapshot.listener(&self.name) {
            Some(l) => (
                Timeouts {
                    header_read: l.config.header_read_timeout,
                    idle: l.config.idle_timeout,
                },
                l.metrics.clone(),
            ),
            // Removed by a reload just now: serve with defaults; not counted.
            None => (
                Timeouts {
                    header_read: ListenerConfig::DEFAULT_HEADER_READ_TIMEOUT,
                    idle: ListenerConfig::DEFAULT_IDLE_TIMEOUT,
                },
                Arc::default(),
            ),
        }
    }
}

fn server_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Timeouts are enforced by `connection::supervise` (see there for why).
        .header_read_timeout(None)
        .max_buf_size(256 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024);
    builder
}

async fn accept_loop(
    socket: TcpListener,
    ctx: AcceptCtx,
    drain: watch::Receiver<Drain>,
    connections: TaskTracker,
) {
    let ctx = Arc::new(ctx);
    loop {
        let (stream, client) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or memory: back off instead of spinning.
                tracing::warn!(listener = %ctx.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tunnels = Tunnels {
            tracker: connections.clone(),
            drain: drain.clone(),
        };
        connections.spawn(serve(stream, client, ctx.clone(), tunnels));
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    client: SocketAddr,
    ctx: Arc<AcceptCtx>,
    tunnels: Tunnels,
) {
    let (timeouts, metrics) = ctx.settings();
    let _open = metrics.connection();
    match &ctx.tls {
        None => serve_io(stream, client, None, &ctx, timeouts, metrics, tunnels).await,
        Some(terminator) => {
            let Some((tls, info)) = terminator
                .accept(stream, client, timeouts.header_read)
                .await
            else {
                return; // counted and logged by the terminator
            };
            let info = Some(Arc::new(info));
            serve_io(tls, client, info, &ctx, timeouts, metrics, tunnels).await;
        }
    }
}

/// Serve HTTP on an accepted connection, plain or TLS.
async fn serve_io<I>(
    stream: I,
    client: SocketAddr,
    tls: Option<Arc<TlsConnInfo>>,
    ctx: &Arc<AcceptCtx>,
    timeouts: Timeouts,
    metrics: Arc<ListenerMetrics>,
    tunnels: Tunnels,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let drain = tunnels.drain.clone();
    let (io, state) = connection::track(stream);
    let conn_ctx = Arc::new(ConnCtx {
        shared: ctx.shared.clone(),
        listener: ctx.name.clone(),
        forwarded: ctx.forwarded.clone(),
        client,
        state: state.clone(),
        metrics,
        tls,
        tunnels,
    });
    let service = service_fn(move |req| {
        let conn_ctx = conn_ctx.clone();
        async move { Ok::<_, Infallible>(forward::handle(req, &conn_ctx).await) }
    });
    // With upgrades: a WebSocket upgrade hands the socket over to `tunnel.rs`.
    let conn = ctx.builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    connection::supervise(
        conn.as_mut(),
        |c| c.graceful_shutdown(),
        &state,
        timeouts,
        drain,
    )
    .await;
}

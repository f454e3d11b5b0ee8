//! The admin listener: plain HTTP/1.1 on loopback, or HTTPS (`admin.tls`), with
//! mutual TLS when `client_ca` is set.
//!
//! Control path. Connections are accepted here: each gets its own task, which
//! completes the TLS handshake if any (bounded by [`HANDSHAKE_TIMEOUT`], so a
//! client that stalls holds a task for seconds, not forever) and then serves the
//! router over hyper's HTTP/1.1, each request head within
//! [`HEADER_READ_TIMEOUT`] (ALPN `http/1.1` only; the admin API needs nothing
//! more). The certificate and key are
//! loaded with the listeners' functions (`ballast_config::tls::material`); with
//! `client_ca`, rustls' WebPKI verifier makes a client certificate chaining to it
//! mandatory, so a client without one never reaches HTTP. Both paths put the
//! peer's address in each request (`ConnectInfo`), for the audit trail and for
//! `/metrics` from loopback. Certificates are read at start; replacing them needs a
//! restart. The dashboard's history sampler (`history.rs`) runs beside the accept
//! loop in the same task, so it lives exactly as long as the listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use ballast_config::tls::material;
use ballast_config::AdminTls;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::{router, AdminState};

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request head may take to arrive, as a listener's default
/// `header_read_timeout`.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin listener's rustls config from `admin.tls`.
pub fn tls_config(tls: &AdminTls) -> Result<Arc<ServerConfig>, String> {
    let provider = material::provider();
    let chain = material::cert_chain(&tls.cert)?;
    let key = material::private_key(&tls.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("admin TLS: {e}"))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(material::roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("admin.tls.client_ca: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("admin.tls: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Bind `addr` and serve the admin API (over TLS when `tls` is given) until
/// `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    serve_on(listener.into_std()?, tls, state, shutdown)
}

/// Like [`serve`], on a socket already listening (bound by this process, or
/// handed over by the process a binary upgrade replaces).
pub fn serve_on(
    listener: std::net::TcpListener,
    tls: Option<Arc<ServerConfig>>,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %local, scheme = %scheme, "admin API listening");
    // The dashboard's history is sampled while the listener serves: the
    // sampler ends with the accept loop, or when its task is aborted.
    let sampler = crate::stats_history::sample(
        state.control.history().clone(),
        state.control.server.clone(),
    );
    let app = router(state);
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(async move {
        tokio::select! {
            () = serve_connections(listener, tls, app, shutdown) => {}
            () = sampler => {}
        }
    });
    Ok((local, task))
}

/// The accept loop of both kinds of admin listener: each connection its own
/// task, its TLS handshake (if any) bounded by [`HANDSHAKE_TIMEOUT`] and each
/// request head by [`HEADER_READ_TIMEOUT`], so a client that trickles bytes
/// (Slowloris) holds a task for seconds, not forever.
async fn serve_connections(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    // Connections end with the accept loop (dropping the set aborts them).
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin API: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = &mut shutdown => break,
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        connections.spawn(async move {
            let service = app.map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
            let service = TowerToHyperService::new(service);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let Some(acceptor) = acceptor else {
                if let Err(e) = http.serve_connection(TokioIo::new(tcp), service).await {
                    tracing::debug!(client = %peer, error = %e, "admin API connection ended");
                }
                return;
            };
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(client = %peer, error = %e, "admin API: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(client = %peer, "admin API: TLS handshake timed out");
                    return;
                }
            };
            let served = http.serve_connection(TokioIo::new(tls), service).await;
            if let Err(e) = served {
                tracing::debug!(client = %peer, error = %e, "admin API connection ended");
            }
        });
    }
}

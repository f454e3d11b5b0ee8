//! The admin listener: plain HTTP/1.1 on loopback, or HTTPS (`admin.tls`), with
//! mutual TLS when `client_ca` is set.
//!
//! Control path. Plain connections are served by `axum::serve`. TLS connections
//! are accepted here: each gets its own task, which completes the handshake
//! (bounded by [`HANDSHAKE_TIMEOUT`], so a client that stalls holds a task for
//! seconds, not forever) and then serves the router over hyper's HTTP/1.1 (ALPN
//! `http/1.1` only; the admin API needs nothing more). The certificate and key are
//! loaded with the listeners' functions (`ballast_config::tls::material`); with
//! `client_ca`, rustls' WebPKI verifier makes a client certificate chaining to it
//! mandatory, so a client without one never reaches HTTP. Both paths put the
//! peer's address in each request (`ConnectInfo`), for the audit trail and for
//! `/metrics` from loopback. Certificates are read at start; replacing them needs a
//! restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use ballast_config::tls::material;
use ballast_config::AdminTls;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::{router, AdminState};

pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %local, scheme = %scheme, "admin API listening");
    let app = router(state);
    let task = match tls {
        None => tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "admin API stopped");
            }
        }),
        Some(config) => tokio::spawn(serve_tls(listener, config, app, shutdown)),
    };
    Ok((local, task))
}

async fn serve_tls(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
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
            let service = app.map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                .await;
            if let Err(e) = served {
                tracing::debug!(client = %peer, error = %e, "admin API connection ended");
            }
        });
    }
}

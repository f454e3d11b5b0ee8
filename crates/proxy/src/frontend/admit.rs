//! Admitting a new connection, before a byte of it is served: the PROXY
//! protocol header (from trusted sources), the allow and deny lists, and the
//! per-client connection limit, in that order, so that each sees the client's
//! own address.
//!
//! Data path, in the connection's task, before TLS and before any HTTP server
//! reads; only on a listener that has one of these keys (`serve.rs` asks one
//! branch otherwise). The lists judge the address the connection is from: the
//! one a trusted peer's header carries (the balancer's own address is not
//! judged: it is trusted), else the peer's. A refused connection is closed
//! without a byte written, and counted in
//! `ballast_rejected_requests_total{listener,reason}`: `denied` for the lists
//! and for a header that may not be there or is malformed, `connection_limit`
//! for the per-client limit. A header that does not come within the
//! listener's `header_read_timeout` closes the connection as a slow request
//! head would, uncounted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::admission::connections::{Admitted, Gate};
use crate::admission::policy::{Policy, ProxyHeader};
use crate::frontend::proxy_protocol::{self, HeaderError};
use crate::frontend::socket::Socket;
use crate::observe::metrics::{ListenerMetrics, Rejection};

/// What a listener's admission needs of one connection.
pub(super) struct Admission<'a> {
    pub(super) listener: &'a str,
    pub(super) policy: Option<&'a Policy>,
    pub(super) gate: &'a Arc<Gate>,
    pub(super) header_read: Duration,
    pub(super) metrics: &'a ListenerMetrics,
}

/// The address the connection is from and its place under the listener's
/// limits, or `None` when it is refused (counted and logged here).
pub(super) async fn admit(
    socket: &mut Socket,
    peer: SocketAddr,
    seat: Option<Admitted>,
    a: Admission<'_>,
) -> Option<(SocketAddr, Option<Admitted>)> {
    let mut client = peer;
    if let Some(policy) = a.policy {
        let header = match policy.proxy_header(peer.ip()) {
            ProxyHeader::Off => Ok(None),
            ProxyHeader::Required => within(a.header_read, proxy_protocol::read(socket)).await,
            ProxyHeader::Forbidden => within(a.header_read, proxy_protocol::refuse(socket))
                .await
                .map(|()| None),
        };
        match header {
            Ok(from) => client = from.unwrap_or(peer),
            Err(e) => {
                let counted = !matches!(
                    e,
                    HeaderError::Closed | HeaderError::Timeout | HeaderError::Io(_)
                );
                if counted {
                    a.metrics.reject(Rejection::Denied);
                }
                tracing::debug!(listener = %a.listener, peer = %peer, error = %e, "connection refused");
                return None;
            }
        }
        if !policy.admits(client.ip()) {
            a.metrics.reject(Rejection::Denied);
            tracing::debug!(listener = %a.listener, peer = %peer, client = %client, "connection denied by the listener's allow/deny lists");
            return None;
        }
    }
    match a.gate.admit_client(client.ip(), seat) {
        Ok(admitted) => Some((client, admitted)),
        Err(_) => {
            a.metrics.reject(Rejection::ConnectionLimit);
            tracing::debug!(listener = %a.listener, client = %client, "connection refused: max_connections_per_client");
            None
        }
    }
}

/// `read` within the header-read timeout.
async fn within<T>(
    limit: Duration,
    read: impl std::future::Future<Output = Result<T, HeaderError>>,
) -> Result<T, HeaderError> {
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or(Err(HeaderError::Timeout))
}

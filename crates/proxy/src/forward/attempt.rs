//! What each attempt on a target leaves behind, shared by the HTTP/1.1 path
//! (`handler.rs`), the HTTP/2 path (`http2.rs`) and the upgrade path
//! (`upgrade.rs`): the request's `Trace` (which target, when the request went out
//! and its response head came back, the target's status, what became of the
//! client's body) for its metrics and its access-log line, and what a failed
//! connect does to its target.
//!
//! Data path. A trace is a few plain fields on the request's future; a failed
//! connect costs one atomic add and, the first time, one health change.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::forward::error::ProxyError;
use crate::upstream::body::{ClientFault, Tally};
use crate::upstream::target::Target;
use crate::upstream::target_group::TargetGroup;

/// What happened to one request, for its metrics and its access-log line.
#[derive(Default)]
pub struct Trace {
    pub target: Option<SocketAddr>,
    pub sent_at: Option<Instant>,
    pub head_at: Option<Instant>,
    pub target_status: Option<u16>,
    /// The client's body, as it was sent: its bytes, and why it broke off if it
    /// did. `None` for a request without a body.
    pub body: Option<Arc<Tally>>,
}

impl Trace {
    /// Why the client's body broke off while it was sent to a target, if it did:
    /// then a failed exchange is the client's failure, not the target's.
    pub fn client_fault(&self) -> Option<ClientFault> {
        self.body.as_ref()?.fault()
    }
}

/// A connection to a target failed on the data path: count it, mark the target
/// down at once, and say so.
pub fn connect_failed(target: &Target, group: &TargetGroup, e: std::io::Error) -> ProxyError {
    target
        .metrics
        .connection_errors
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(state) = target.mark_connect_failed() {
        tracing::warn!(
            target_group = %group.name(), target = %group.target_name(target), %state, error = %e,
            "connect failed on the data path: target marked down"
        );
        group.refresh_routing();
    }
    ProxyError::Connect {
        target: target.addr,
        source: e,
    }
}

//! Circuit breakers (Envoy's thresholds): per target group, at most
//! `max_connections` connections open to its targets, `max_pending_requests`
//! requests waiting for one to be opened, `max_requests` requests in flight and
//! `max_retries` retries in flight. Over a limit, a request is answered at once
//! with 503 `circuit_open` (gRPC `UNAVAILABLE`) without touching a target, and a
//! retry is simply not made (the failure before it stands): a group that is
//! already overloaded gets no more load from ballast, and its clients learn it in
//! a microsecond instead of a timeout.
//!
//! Data path, a gate: each count is one atomic in the group's cells
//! (`observe::group`), taken by a compare-and-swap against its limit and given back
//! when the guard drops (`Held`): a request's when its response body ends, a
//! retry's at its response head, a connection's when it closes, a pending
//! request's when its connection is open (or failed). Connections and pending
//! requests are counted always (once per connection opened, a cost paid only
//! then); requests and retries only in groups with a `circuit_breaker`, so a group
//! without one pays nothing per request. Unlike Envoy, nothing queues over a
//! limit: a queue is latency that the client did not ask for.

use crate::observe::group::{ConnectGate, Held, Limit};
use crate::upstream::target_group::TargetGroup;

/// Admit a request to the group: `Ok(None)` when the group has no circuit
/// breaker (nothing counted), a place held until its response ends otherwise;
/// `Err`: the limit reached.
pub fn request(group: &TargetGroup) -> Result<Option<Held>, Limit> {
    counted(group, Limit::Requests)
}

/// Admit a retry (held until its response head).
pub fn retry(group: &TargetGroup) -> Result<Option<Held>, Limit> {
    counted(group, Limit::Retries)
}

fn counted(group: &TargetGroup, limit: Limit) -> Result<Option<Held>, Limit> {
    let cb = &group.config.circuit_breaker;
    if cb.is_off() {
        return Ok(None);
    }
    group
        .metrics
        .hold(limit, limit.of(cb))
        .map(Some)
        .ok_or(limit)
}

/// The gate of a new connection to one of the group's targets: a place among
/// the pending requests while it is opened, and one among the connections for
/// as long as it lives (`Conn::hold`, or the HTTP/2 connection's task).
pub fn connect(group: &TargetGroup) -> ConnectGate<'_> {
    let cb = &group.config.circuit_breaker;
    ConnectGate {
        cells: &group.metrics,
        max_connections: cb.max_connections,
        max_pending_requests: cb.max_pending_requests,
    }
}

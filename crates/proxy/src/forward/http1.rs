//! One attempt of a request on an HTTP/1.1 target, with ballast's own client
//! (`upstream/http1.rs`): a pooled connection or a new one (through the circuit
//! breaker's connection gates), the request written and the response head read
//! within the response timeout, a pooled connection found closed replaced safely.
//! The HTTP/2 counterpart is `http2.rs`; `handler.rs` chooses between them and
//! `retry.rs` decides what follows a failure.
//!
//! Data path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response};
use http_body::Body as _;

use crate::forward::attempt::{connect_failed, Trace};
use crate::forward::body::ResponseBody;
use crate::forward::error::ProxyError;
use crate::forward::retry::MAX_STALE;
use crate::http1;
use crate::resilience::breaker;
use crate::upstream::body::{ClientFault, UpstreamBody};
use crate::upstream::http1::{BodyReader, SendError};
use crate::upstream::pool::Lease;
use crate::upstream::target::Target;
use crate::upstream::target_group::TargetGroup;

/// One attempt on one target, on a pooled connection or a new one. A pooled
/// connection is checked before use (`pool.rs`); if it still turns out closed when
/// the request goes out (the target closed it at that very moment), the request is
/// sent again on a new connection to the same target when that is safe: nothing of
/// it was written, or it is replayable and the target sent no byte of a response.
/// On failure, says whether any of the request reached the target (`Retry`
/// decides from that whether it may go to another).
pub async fn send(
    target: &Arc<Target>,
    group: &TargetGroup,
    req: &mut Request<UpstreamBody>,
    trace: &mut Trace,
    timeout: Duration,
) -> Result<Response<ResponseBody>, (ProxyError, bool)> {
    let cfg = &group.config;
    let before = trace.target.replace(target.addr);
    let mut in_flight = target.begin_request();
    let mut stale = 0;
    loop {
        let conn = match target.pool.take() {
            Some(conn) => conn,
            None => {
                let gate = breaker::connect(group);
                let places = gate.pending().and_then(|p| Ok((p, gate.connection()?)));
                let (pending, place) = match places {
                    Ok(places) => places,
                    Err(limit) => {
                        // Not touched: the log names the target tried before, if any.
                        trace.target = before;
                        return Err((ProxyError::CircuitOpen(limit), false));
                    }
                };
                let connected = target
                    .pool
                    .connect(cfg.connect_timeout, group.tls.as_deref())
                    .await;
                drop(pending);
                match connected {
                    Ok(mut conn) => {
                        conn.hold(place);
                        conn
                    }
                    Err(e) => return Err((connect_failed(target, group, e), false)),
                }
            }
        };
        let reused = conn.is_reused();
        let mut lease = Lease::new(conn, in_flight);
        let sent_at = Instant::now();
        trace.sent_at = Some(sent_at);
        let sent = lease.conn_mut().send_by(req, sent_at + timeout).await;
        let SendError { error, written } = match sent {
            Some(Ok(head)) => {
                let head_at = Instant::now();
                let status = head.status.as_u16();
                target.metrics.requests.inc(status);
                target.metrics.duration.observe(head_at - sent_at);
                trace.head_at = Some(head_at);
                trace.target_status = Some(status);
                let reader = BodyReader::new(lease, &head);
                let mut response = Response::new(ResponseBody::upstream(reader));
                *response.status_mut() = head.status;
                // Hop-by-hop fields were left out when the head was parsed.
                *response.headers_mut() = head.headers;
                return Ok(response);
            }
            Some(Err(e)) => e,
            None => return Err((ProxyError::ResponseTimeout(target.addr), true)),
        };
        if let http1::Error::ClientBody(_) = &error {
            // Reading the client's body failed, not the target: the client's
            // failure (the body recorded which). The connection, left with part
            // of a body on it, closes with the lease; the request goes nowhere else.
            let fault = trace.client_fault().unwrap_or(ClientFault::Closed);
            return Err((fault.into(), true));
        }
        // Still whole here: a replayable request may be sent again.
        let replayable = req.body().is_end_stream() && is_idempotent(req.method());
        let again = !written || (matches!(error, http1::Error::Closed) && replayable);
        if reused && again && stale < MAX_STALE {
            stale += 1;
            in_flight = lease.into_in_flight();
            continue;
        }
        let error = ProxyError::TargetHttp1 {
            target: target.addr,
            source: error,
        };
        return Err((error, written));
    }
}

/// RFC 9110 §9.2.2's idempotent methods.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

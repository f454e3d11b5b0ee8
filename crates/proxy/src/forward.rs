//! The request handler: one client request, start to finish.
//!
//! Data path. Reads top to bottom: load the snapshot once → find the listener's
//! target group → rewrite the head → pick a target → take or open a connection →
//! send with the response timeout → stream the response back. Retries are limited
//! to what is always safe:
//! - a connect failure never reached the target: the target is marked down at once
//!   and another one is tried;
//! - a pooled connection that turned out closed before the request was written
//!   (hyper hands the request back): the same target is tried on a new connection;
//! - an idempotent request without a body that failed before any response arrived
//!   (the target died under it): another target is tried.
//!   A request that timed out is never retried: the target may still be working on it.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;

use crate::body::{ResponseBody, UpstreamBody};
use crate::connection::ConnState;
use crate::error::ProxyError;
use crate::headers::{self, ForwardedInfo};
use crate::pool::Lease;
use crate::server::Shared;
use crate::target::Target;
use crate::target_group::{TargetGroup, Tried};

/// Attempts on distinct targets for one request.
const MAX_ATTEMPTS: usize = 3;
/// Connections tried on one target when pooled ones turn out to be closed.
const MAX_STALE: usize = 3;

/// What every request on one client connection shares.
pub struct ConnCtx {
    pub shared: Arc<Shared>,
    pub listener: Arc<str>,
    pub forwarded: Arc<ForwardedInfo>,
    pub client: SocketAddr,
    pub state: Arc<ConnState>,
    /// The TLS session on `https` listeners (version, cipher, client certificate).
    pub tls: Option<Arc<crate::tls::TlsConnInfo>>,
}

pub async fn handle(req: Request<Incoming>, conn: &ConnCtx) -> Response<ResponseBody> {
    let activity = conn.state.begin(req.version() == http::Version::HTTP_2);
    let group = {
        let snapshot = conn.shared.snapshot.load();
        snapshot
            .listener(&conn.listener)
            .map(|l| l.default_group.clone())
    };
    let result = match group {
        Some(group) => forward(req, &group, conn).await,
        None => Err(ProxyError::ListenerGone),
    };
    let response = result.unwrap_or_else(|e| error_response(&e, conn));
    response.map(|b| b.with_activity(activity))
}

async fn forward(
    req: Request<Incoming>,
    group: &TargetGroup,
    conn: &ConnCtx,
) -> Result<Response<ResponseBody>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    headers::prepare_request(&mut parts, conn.client.ip(), &conn.forwarded);
    crate::tls::client_cert::apply(&mut parts.headers, conn.tls.as_deref().map(|t| &t.cert));
    let body = if body.is_end_stream() {
        UpstreamBody::Empty
    } else {
        UpstreamBody::Client(body)
    };
    let replayable = matches!(body, UpstreamBody::Empty) && is_idempotent(&parts.method);
    let mut pending = Some(Request::from_parts(parts, body));

    let mut tried = Tried::default();
    let mut last_error = None;
    while tried.len() < MAX_ATTEMPTS {
        let Some(i) = group.pick(&tried) else { break };
        tried.add(i);
        let target = &group.targets[i];
        let Some(req) = pending.take() else { break };
        // Keep a copy of a replayable request's head for a retry after a failure.
        let copy = replayable.then(|| clone_head(&req));
        match send(target, group, req).await {
            Ok(response) => return Ok(response),
            Err(Failure { error, unsent }) => {
                pending = unsent.or(copy);
                last_error = Some(error);
                if pending.is_none() {
                    break;
                }
            }
        }
    }
    Err(last_error.unwrap_or_else(|| ProxyError::NoTarget(group.name().to_string())))
}

/// A failed attempt, with the request when it can be sent again.
struct Failure {
    error: ProxyError,
    unsent: Option<Request<UpstreamBody>>,
}

/// One attempt on one target.
async fn send(
    target: &Arc<Target>,
    group: &TargetGroup,
    mut req: Request<UpstreamBody>,
) -> Result<Response<ResponseBody>, Failure> {
    let cfg = &group.config;
    let mut in_flight = target.begin_request();
    let mut stale = 0;
    loop {
        let sender = match target.pool.take().await {
            Some(s) => s,
            None => match target
                .pool
                .connect(cfg.connect_timeout, group.tls.as_deref())
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    if let Some(state) = target.mark_connect_failed() {
                        tracing::warn!(
                            target_group = %group.name(), target = %target.addr, %state, error = %e,
                            "connect failed on the data path: target marked down"
                        );
                        group.refresh_routing();
                    }
                    let error = ProxyError::Connect {
                        target: target.addr,
                        source: e,
                    };
                    return Err(Failure {
                        error,
                        unsent: Some(req),
                    });
                }
            },
        };
        let mut lease = Lease::new(sender, in_flight);
        let sent =
            tokio::time::timeout(cfg.response_timeout, lease.sender().try_send_request(req)).await;
        let mut e = match sent {
            Ok(Ok(mut response)) => {
                headers::remove_hop_by_hop(response.headers_mut());
                return Ok(response.map(|body| ResponseBody::upstream(body, lease)));
            }
            Ok(Err(e)) => e,
            Err(_) => {
                let error = ProxyError::ResponseTimeout(target.addr);
                return Err(Failure {
                    error,
                    unsent: None,
                });
            }
        };
        let unsent = e.take_message();
        match unsent {
            // The pooled connection closed before the request was written: the
            // request is whole, so try it on another connection to the same target.
            Some(unsent) if stale < MAX_STALE => {
                stale += 1;
                req = unsent;
                in_flight = lease.into_in_flight();
            }
            unsent => {
                let error = ProxyError::Target {
                    target: target.addr,
                    source: e.into_error(),
                };
                return Err(Failure { error, unsent });
            }
        }
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A copy of a body-less request, for sending it again.
fn clone_head(req: &Request<UpstreamBody>) -> Request<UpstreamBody> {
    let mut copy = Request::new(UpstreamBody::Empty);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

/// ballast's own answer to a request it could not forward.
pub fn error_response(error: &ProxyError, conn: &ConnCtx) -> Response<ResponseBody> {
    let status = error.status();
    tracing::debug!(listener = %conn.listener, client = %conn.client, %status, reason = error.reason(), %error, "request failed");
    let text = format!(
        "{} {}: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        error.reason()
    );
    let mut response = Response::new(ResponseBody::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    response
}

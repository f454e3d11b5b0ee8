//! HTTP/1.1 upgrades (WebSocket, RFC 6455 §4): forwarding the upgrade request on a
//! dedicated connection and handing both sockets to a tunnel after the 101.
//!
//! Data path. An upgrade request is recognised only when it is valid: HTTP/1.1,
//! `GET`, `Connection` naming `upgrade` and `Upgrade: websocket`. Other requests
//! lose both headers as hop-by-hop headers, so a client cannot make a target
//! switch protocols (an `Upgrade: h2c` is not passed on, for instance). For a
//! valid one, `Connection: upgrade` and the client's `Upgrade` go to the target on
//! a fresh connection, never a pooled one: once upgraded it is no longer HTTP and
//! can never return to a pool. If the target answers 101, the client gets the 101
//! (with the target's headers, e.g. `Sec-WebSocket-Accept`) and a tunnel task
//! (`tunnel.rs`, in the listener's task tracker) relays bytes once both sockets
//! are free: the target's from `hyper::upgrade::on`, the client's from its
//! connection task (`ConnCtx::client_handoff`), which takes it back from hyper
//! after the 101 is written. Any other answer is passed on
//! as a normal response and the connection closes after it.
//!
//! The dedicated connection is TLS when the group has `tls`, like its pooled ones.
//! Upgrades go to `http1` groups only; towards an `http2` group the upgrade
//! headers are removed (WebSocket over HTTP/2, RFC 8441, is not supported).

use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, UPGRADE};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::forward::attempt::{connect_failed, Trace};
use crate::forward::body::{Hold, RequestBody, ResponseBody};
use crate::forward::context::ConnCtx;
use crate::forward::context::Drain;
use crate::forward::error::ProxyError;
use crate::forward::headers;
use crate::forward::retry::{Failure, Retry};
use crate::forward::sticky;
use crate::forward::tunnel::{self, TunnelCtx};
use crate::http1::hop_by_hop::{has_token, remove_hop_by_hop};
use crate::upstream::body::UpstreamBody;
use crate::upstream::dial;
use crate::upstream::http1::Stream;
use crate::upstream::target::{InFlight, Target};
use crate::upstream::target_group::TargetGroup;

/// Where a listener's upgraded connections run: its task tracker (so a drain
/// waits for them) and its drain signal.
#[derive(Clone)]
pub struct Tunnels {
    pub tracker: TaskTracker,
    pub drain: watch::Receiver<Drain>,
}

/// The `Upgrade` value of a valid WebSocket upgrade request, if this is one.
pub fn requested<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11
        || req.method() != Method::GET
        || req.extensions().get::<OnUpgrade>().is_none()
    {
        return None;
    }
    let connection_upgrade = req
        .headers()
        .get_all(CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), "upgrade"));
    let upgrade = req.headers().get(UPGRADE)?;
    let websocket = has_token(upgrade.as_bytes(), "websocket");
    (connection_upgrade && websocket).then(|| upgrade.clone())
}

/// Forward an upgrade request; on a 101, start relaying.
pub async fn forward(
    req: Request<RequestBody>,
    group: &TargetGroup,
    conn: &ConnCtx,
    trace: &mut Trace,
) -> Result<Response<ResponseBody>, ProxyError> {
    let upgrade = requested(&req);
    let visit = sticky::read(group, req.headers());
    let (mut parts, body) = req.into_parts();
    let client_side = parts.extensions.remove::<OnUpgrade>();
    let _ = headers::prepare_request(&mut parts, &conn.client_ip, &conn.forwarded);
    if let Some(upgrade) = upgrade {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, upgrade);
    }
    let body = body.into_upstream(conn);
    trace.body = body.tally().cloned();
    let replayable = matches!(body, UpstreamBody::Empty);
    let shard = group.shard_for(&parts.headers, conn.client_ip.as_bytes());
    let mut retry = Retry::new(Request::from_parts(parts, body), replayable, true, group);
    retry.shard(shard);
    if let Some(i) = visit.and_then(|v| v.target()) {
        retry.prefer(i);
    }
    let mut next = retry.first(group);
    while let Some(target) = next {
        let Some(req) = retry.take() else { break };
        next = match attempt(target, group, req, trace).await {
            Ok((response, in_flight)) => {
                let mut response = respond(response, in_flight, client_side, conn);
                if let Some(visit) = visit {
                    let (served, secure) = (retry.served(), conn.tls.is_some());
                    sticky::answer(group, visit, served, response.headers_mut(), secure);
                }
                return Ok(response);
            }
            Err(failure) => retry.failed(group, failure),
        };
    }
    Err(retry.into_error(group))
}

/// Send the upgrade request to one target on a connection of its own.
async fn attempt(
    target: &std::sync::Arc<Target>,
    group: &TargetGroup,
    req: Request<UpstreamBody>,
    trace: &mut Trace,
) -> Result<(Response<Incoming>, InFlight), Failure> {
    trace.target = Some(target.addr);
    let in_flight = target.begin_request();
    let cfg = &group.config;
    let stream = match Box::pin(connect(target, group)).await {
        Ok(stream) => stream,
        Err(e) => {
            return Err(Failure {
                error: connect_failed(target, group, e),
                unsent: Some(req),
            })
        }
    };
    let (mut sender, connection) = match http1::handshake(TokioIo::new(stream)).await {
        Ok(handshake) => handshake,
        Err(source) => {
            let error = ProxyError::Target {
                target: target.addr,
                source,
            };
            return Err(Failure {
                error,
                unsent: Some(req),
            });
        }
    };
    tokio::spawn(async move {
        // Ends at the 101 (handing the socket to `hyper::upgrade::on`) or when the
        // response that declined the upgrade is done.
        let _ = connection.with_upgrades().await;
    });
    let sent_at = Instant::now();
    trace.sent_at = Some(sent_at);
    match tokio::time::timeout(cfg.response_timeout, sender.send_request(req)).await {
        Ok(Ok(response)) => {
            let head_at = Instant::now();
            let status = response.status().as_u16();
            target.metrics.requests.inc(status);
            target.metrics.duration.observe(head_at - sent_at);
            trace.head_at = Some(head_at);
            trace.target_status = Some(status);
            Ok((response, in_flight))
        }
        Ok(Err(source)) => Err(Failure {
            // A body that broke off is the client's failure, not the target's.
            error: trace.client_fault().map_or(
                ProxyError::Target {
                    target: target.addr,
                    source,
                },
                Into::into,
            ),
            unsent: None,
        }),
        Err(_) => Err(Failure {
            error: ProxyError::ResponseTimeout(target.addr),
            unsent: None,
        }),
    }
}

/// A dedicated connection to the target: TCP, and TLS when the group has `tls`
/// (the same connector, verification and SNI as pooled connections), within the
/// group's `connect_timeout`.
async fn connect(target: &Target, group: &TargetGroup) -> std::io::Result<Stream> {
    let timeout = group.config.connect_timeout;
    let tcp = dial::tcp(target.addr, timeout).await?;
    let Some(tls) = group.tls.as_deref() else {
        return Ok(Stream::Plain(tcp));
    };
    match tokio::time::timeout(timeout, tls.connect(tcp, target.addr)).await {
        Ok(tls) => Ok(Stream::Tls(Box::new(tls?))),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// The client's response: the 101 with a tunnel started behind it, or the
/// target's refusal passed on.
fn respond(
    mut response: Response<Incoming>,
    in_flight: InFlight,
    client_side: Option<OnUpgrade>,
    conn: &ConnCtx,
) -> Response<ResponseBody> {
    match client_side {
        Some(_) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {}
        _ => {
            remove_hop_by_hop(response.headers_mut());
            return response.map(|body| ResponseBody::held(body, Hold::Request(in_flight)));
        }
    }
    let target_side = hyper::upgrade::on(&mut response);
    let (mut parts, _) = response.into_parts();
    let upgrade = parts.headers.get(UPGRADE).cloned();
    remove_hop_by_hop(&mut parts.headers);
    parts
        .headers
        .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(upgrade) = upgrade {
        parts.headers.insert(UPGRADE, upgrade);
    }
    let idle_timeout = conn.shared.snapshot.load().listener(&conn.listener).map_or(
        ballast_config::ListenerConfig::DEFAULT_UPGRADE_IDLE_TIMEOUT,
        |l| l.config.upgrade_idle_timeout,
    );
    let ctx = TunnelCtx {
        listener: conn.listener.clone(),
        client: conn.client,
        in_flight,
        idle_timeout,
        metrics: conn.metrics.clone(),
        drain: conn.tunnels.drain.clone(),
        _admitted: conn.admitted.clone(),
    };
    // The client's socket comes from its connection once hyper has written the 101
    // and let go of it (`listener::serve_http1`).
    let (handoff, client_side) = tokio::sync::oneshot::channel();
    if let Ok(mut slot) = conn.client_handoff.lock() {
        *slot = Some(handoff);
    }
    conn.tunnels
        .tracker
        .spawn(tunnel::run(client_side, target_side, ctx));
    Response::from_parts(parts, ResponseBody::full(Bytes::new()))
}

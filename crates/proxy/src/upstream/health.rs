//! Active health checks (SPEC §4): one task per target group probes all of its
//! targets every `interval`, concurrently, and moves their states by the thresholds.
//!
//! Control path. Probes use their own short-lived connections, never the data
//! path's pool, so a check measures what a fresh client would see. A probe is an
//! HTTP/1.1 `GET` of `health_check.path`, bounded as a whole by `timeout`; its
//! outcome is a status in `matcher` (healthy), another status
//! (`Target.ResponseCodeMismatch`), no answer in time (`Target.Timeout`), or a
//! refused or broken connection (`Target.FailedHealthChecks`). State changes are
//! logged, with what broke the last probe (a refused connection, a certificate
//! that failed verification, a target that would not agree to `h2`), and so is the
//! group starting or stopping to fail open. Groups with `tls` are probed over TLS,
//! with the same connector as the data path. Groups with `protocol = "http2"` are
//! probed over HTTP/2 (over TLS with ALPN `h2` when they have `tls`), by `GET` or
//! by the gRPC health protocol (`health_h2.rs`).

use std::sync::Arc;

use ballast_config::{HealthCheckConfig, TargetProtocol};
use futures_util::future::join_all;
use http::{header, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::tls::Connector;
use crate::upstream::health_h2;
use crate::upstream::target::{HealthReason, HealthState, Probe, Target};
use crate::upstream::target_group::TargetGroup;

const USER_AGENT: &str = concat!("ballast-health-checker/", env!("CARGO_PKG_VERSION"));

/// Start checking a group; the task runs until aborted (when its snapshot is replaced).
pub fn spawn(group: Arc<TargetGroup>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let hc = group.config.health_check.clone();
        let mut tick = tokio::time::interval(hc.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let tls = group.tls.as_deref();
            let http2 = group.config.protocol == TargetProtocol::Http2;
            let probes = group.targets.iter().map(|t| probe(t, &hc, http2, tls));
            let results = join_all(probes).await;
            // Slow start applies beside peers that were healthy before this round.
            let ramp = !group.config.slow_start.is_zero() && group.healthy_count() > 0;
            for (target, checked) in group.targets.iter().zip(results) {
                if let Some(state) =
                    target.record(checked.probe, hc.healthy_threshold, hc.unhealthy_threshold)
                {
                    if ramp && state == HealthState::Healthy {
                        target.start_ramp();
                    }
                    let (_, reason) = target.health();
                    let cause = checked.cause.as_deref().unwrap_or("");
                    tracing::info!(
                        target_group = %group.name(), target = %target.addr, %state,
                        reason = reason.as_str(), cause, "target health changed"
                    );
                }
            }
            group.refresh_routing();
        }
    })
}

/// A probe's outcome, and for a connection or protocol failure what it was (for
/// the log line of a state change; built only when a probe fails that way).
pub struct Checked {
    pub probe: Probe,
    pub cause: Option<String>,
}

impl Checked {
    pub fn ok() -> Self {
        Self::of(Probe::Ok)
    }

    pub fn of(probe: Probe) -> Self {
        Checked { probe, cause: None }
    }

    pub fn broken(e: &dyn std::fmt::Display) -> Self {
        Checked {
            probe: Probe::Failed(HealthReason::FailedHealthChecks),
            cause: Some(e.to_string()),
        }
    }
}

/// One health probe of one target. `http2` groups are probed over HTTP/2 (a gRPC
/// `Check` when `grpc_service` is set, else a `GET`; see `health_h2.rs`); others
/// with an HTTP/1.1 `GET`; each over TLS when the group has `tls`.
pub async fn probe(
    target: &Target,
    hc: &HealthCheckConfig,
    http2: bool,
    tls: Option<&Connector>,
) -> Checked {
    if let Some(grpc) = &hc.grpc {
        return health_h2::probe_grpc(target, grpc, hc.timeout, tls).await;
    }
    let status = if http2 {
        tokio::time::timeout(
            hc.timeout,
            health_h2::get(target, &hc.path, hc.timeout, tls),
        )
        .await
    } else {
        tokio::time::timeout(hc.timeout, request(target, &hc.path, tls)).await
    };
    match status {
        Err(_) => Checked::of(Probe::Failed(HealthReason::Timeout)),
        Ok(Err(e)) => Checked::broken(&e),
        Ok(Ok(status)) if hc.matcher.matches(status) => Checked::ok(),
        Ok(Ok(_)) => Checked::of(Probe::Failed(HealthReason::ResponseCodeMismatch)),
    }
}

async fn request(
    target: &Target,
    path: &str,
    tls: Option<&Connector>,
) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    match tls {
        None => send(TokioIo::new(stream), target, path).await,
        Some(tls) => {
            send(
                TokioIo::new(tls.connect(stream, target.addr).await?),
                target,
                path,
            )
            .await
        }
    }
}

async fn send<I>(
    io: I,
    target: &Target,
    path: &str,
) -> Result<u16, Box<dyn std::error::Error + Send + Sync>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let conn = tokio::spawn(conn);
    let req = Request::get(path)
        .header(header::HOST, target.addr.to_string())
        .header(header::USER_AGENT, USER_AGENT)
        .header(header::CONNECTION, "close")
        .body(Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(req).await;
    conn.abort();
    Ok(response?.status().as_u16())
}

//! Active health checks (SPEC §4): one task per target group probes all of its
//! targets every `interval`, concurrently, and moves their states by the thresholds.
//!
//! Control path. Probes use their own short-lived connections, never the data
//! path's pool, so a check measures what a fresh client would see. A probe is an
//! HTTP/1.1 `GET` of `health_check.path`, bounded as a whole by `timeout`; its
//! outcome is a status in `matcher` (healthy), another status
//! (`Target.ResponseCodeMismatch`), no answer in time (`Target.Timeout`), or a
//! refused or broken connection (`Target.FailedHealthChecks`). State changes are
//! logged (with the target's `name` when it has one), with what broke the last probe (a refused connection, a certificate
//! that failed verification, a target that would not agree to `h2`), and so is the
//! group starting or stopping to fail open. Groups with `tls` are probed over TLS,
//! with the same connector as the data path. Groups with `protocol = "http2"` are
//! probed over HTTP/2 (over TLS with ALPN `h2` when they have `tls`), by `GET` or
//! by the gRPC health protocol (`health_h2.rs`). Every probe's outcome (when,
//! the status seen, how long it took, what broke) is kept as the target's last
//! check for the admin API (`health_history.rs`), off the data path.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ballast_config::{HealthCheckConfig, TargetProtocol};
use futures_util::future::join_all;
use http::{header, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::tls::Connector;
use crate::upstream::health_h2;
use crate::upstream::health_history::LastCheck;
use crate::upstream::target::{HealthReason, HealthState, Probe, Target};
use crate::upstream::target_group::TargetGroup;

const USER_AGENT: &str = concat!("ballast-health-checker/", env!("CARGO_PKG_VERSION"));

/// Start checking a group; the task runs until aborted (when its snapshot is replaced).
/// A group no listener forwards to is not checked: its targets are `unused`.
pub fn spawn(group: Arc<TargetGroup>) -> JoinHandle<()> {
    tokio::spawn(async move {
        if group.is_unused() {
            return;
        }
        let hc = group.config.health_check.clone();
        let mut tick = tokio::time::interval(hc.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let tls = group.tls.as_deref();
            let http2 = group.config.protocol == TargetProtocol::Http2;
            let probes = group.targets.iter().map(|t| timed(t, &hc, http2, tls));
            let results = join_all(probes).await;
            // Slow start applies beside peers that were healthy before this round.
            let ramp = !group.config.slow_start.is_zero() && group.healthy_count() > 0;
            for (target, checked) in group.targets.iter().zip(results) {
                let probe = checked.0.probe;
                let changed = target.record(probe, hc.healthy_threshold, hc.unhealthy_threshold);
                let cause = checked.0.cause.as_deref().unwrap_or("");
                if let Some(state) = changed {
                    if ramp && state == HealthState::Healthy {
                        target.start_ramp();
                    }
                    let (_, reason) = target.health();
                    tracing::info!(
                        target_group = %group.name(), target = %group.target_name(target),
                        %state, reason = reason.as_str(), cause, "target health changed"
                    );
                }
                target.history.checked(last_check(checked));
            }
            group.refresh_routing();
        }
    })
}

/// A probe with its start and duration, for the target's last check.
async fn timed(
    target: &Target,
    hc: &HealthCheckConfig,
    http2: bool,
    tls: Option<&Connector>,
) -> (Checked, SystemTime, Duration) {
    let at = SystemTime::now();
    let started = Instant::now();
    let checked = probe(target, hc, http2, tls).await;
    (checked, at, started.elapsed())
}

/// A probe's outcome: the status seen (HTTP checks), and for a failure what it
/// was in a few words (built only when a probe fails).
pub struct Checked {
    pub probe: Probe,
    pub status: Option<u16>,
    pub cause: Option<String>,
}

impl Checked {
    pub fn ok(status: Option<u16>) -> Self {
        Checked {
            probe: Probe::Ok,
            status,
            cause: None,
        }
    }

    pub fn failed(reason: HealthReason, status: Option<u16>, cause: String) -> Self {
        Checked {
            probe: Probe::Failed(reason),
            status,
            cause: Some(cause),
        }
    }

    pub fn timed_out(timeout: Duration) -> Self {
        let cause = format!(
            "no answer within {}",
            ballast_config::duration::format(timeout)
        );
        Self::failed(HealthReason::Timeout, None, cause)
    }

    pub fn broken(e: &dyn std::fmt::Display) -> Self {
        Self::failed(HealthReason::FailedHealthChecks, None, e.to_string())
    }
}

/// A timed probe as the target's last check.
fn last_check((checked, at, duration): (Checked, SystemTime, Duration)) -> LastCheck {
    LastCheck {
        at,
        status: checked.status,
        duration,
        pass: checked.probe == Probe::Ok,
        error: checked.cause,
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
        Err(_) => Checked::timed_out(hc.timeout),
        Ok(Err(e)) => Checked::broken(&e),
        Ok(Ok(status)) if hc.matcher.matches(status) => Checked::ok(Some(status)),
        Ok(Ok(status)) => Checked::failed(
            HealthReason::ResponseCodeMismatch,
            Some(status),
            format!("status {status} is not in the matcher"),
        ),
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

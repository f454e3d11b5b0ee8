//! Relaying an upgraded connection (WebSocket) as raw bytes, both ways, until one
//! side closes, it sits idle too long, or ballast needs it closed.
//!
//! Data path, one task per upgraded connection. Once both sockets are handed over
//! (the client's by its connection task, the target's by `hyper::upgrade::on` on
//! its 101), HTTP is over: two half-copies move bytes with each side's
//! backpressure (a 16 KiB buffer each; a read waits for the previous write). The
//! copy is a hand loop rather than `copy_bidirectional` so that it can count the
//! bytes of each direction, note the time of the last byte (for
//! `upgrade_idle_timeout`) and tell who closed first. An end of stream on one side
//! is passed on as a half-close (`shutdown`) of the other; the relay ends when both
//! directions have ended.
//!
//! The task lives in its listener's `TaskTracker`, so a drain (SIGTERM, listener
//! removed) waits for it like for a request in flight; when the drain time is up
//! (`Drain::Closing`) it shuts down both sockets. It also holds its target's
//! in-flight count, so a deregistered (draining) target stays until its tunnels
//! end or its `deregistration_delay` runs out, and then they are closed too. The
//! timer that checks idleness wakes at least once a second to notice that.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

use crate::forward::context::{ClientIo, Drain};
use crate::observe::metrics::ListenerMetrics;
use crate::upstream::target::{HealthState, InFlight};

/// How often a tunnel looks at its target's deregistration at least.
const TARGET_CHECK: Duration = Duration::from_secs(1);
/// After one side has ended, how long the other may still send before the relay
/// ends: a WebSocket peer that has closed expects the other side to follow, and
/// a peer that never does must not hold the connection until the idle limit.
const LINGER: Duration = Duration::from_secs(2);
/// How long closing a side may take before it is just dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What a tunnel needs besides its two ends.
pub struct TunnelCtx {
    pub listener: Arc<str>,
    pub client: SocketAddr,
    pub in_flight: InFlight,
    pub idle_timeout: Duration,
    pub metrics: Arc<ListenerMetrics>,
    pub drain: watch::Receiver<Drain>,
    /// The client connection's place under the listener's limits, held while
    /// the tunnel runs.
    pub _admitted: Option<Arc<crate::admission::connections::Admitted>>,
}

/// How a relay ended.
struct Outcome {
    closed_by: &'static str,
    from_client: u64,
    from_target: u64,
}

/// Wait for both sockets, relay until done, then log how it went.
pub async fn run(
    client: oneshot::Receiver<Box<dyn ClientIo>>,
    target: OnUpgrade,
    mut ctx: TunnelCtx,
) {
    let target_addr = ctx.in_flight.target().addr;
    let client = async {
        client
            .await
            .map_err(|_| "client connection ended".to_string())
    };
    let target = async { target.await.map_err(|e| e.to_string()) };
    let (client, target) = match tokio::try_join!(client, target) {
        Ok(ends) => ends,
        Err(e) => {
            tracing::debug!(listener = %ctx.listener, client = %ctx.client, target = %target_addr, error = %e, "upgrade did not complete");
            return;
        }
    };
    let _open = ctx.metrics.upgraded();
    let started = Instant::now();
    let out = relay(client, TokioIo::new(target), &mut ctx).await;
    tracing::info!(
        listener = %ctx.listener, client = %ctx.client, target = %target_addr,
        duration_ms = started.elapsed().as_millis() as u64,
        bytes_from_client = out.from_client, bytes_from_target = out.from_target,
        closed_by = out.closed_by, "upgraded connection closed"
    );
}

async fn relay<C, T>(client: C, target: T, ctx: &mut TunnelCtx) -> Outcome
where
    C: AsyncRead + AsyncWrite,
    T: AsyncRead + AsyncWrite,
{
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut target_r, mut target_w) = tokio::io::split(target);
    let start = Instant::now();
    let last = AtomicU64::new(0); // ms since `start` of the last byte either way
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut closed_by = None;
    {
        let c2t = copy_half(&mut client_r, &mut target_w, &up, &last, start);
        let t2c = copy_half(&mut target_r, &mut client_w, &down, &last, start);
        tokio::pin!(c2t, t2c);
        let (mut c2t_done, mut t2c_done) = (false, false);
        let mut half_closed: Option<Instant> = None;
        let idle = ctx.idle_timeout;
        let timer = tokio::time::sleep(idle.min(TARGET_CHECK));
        tokio::pin!(timer);
        if *ctx.drain.borrow() == Drain::Closing {
            closed_by = Some("drain");
        }
        while !(must_stop(closed_by) || (c2t_done && t2c_done)) {
            tokio::select! {
                r = &mut c2t, if !c2t_done => {
                    c2t_done = true;
                    closed_by.get_or_insert(if r.is_ok() { "client" } else { "client_error" });
                    linger(&mut half_closed, timer.as_mut());
                }
                r = &mut t2c, if !t2c_done => {
                    t2c_done = true;
                    closed_by.get_or_insert(if r.is_ok() { "target" } else { "target_error" });
                    linger(&mut half_closed, timer.as_mut());
                }
                changed = ctx.drain.changed() => {
                    if changed.is_err() || *ctx.drain.borrow() == Drain::Closing {
                        closed_by = Some("drain");
                    }
                }
                () = &mut timer => {
                    let now = start.elapsed();
                    let idle_for = now.saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                    let target = ctx.in_flight.target();
                    if half_closed.is_some_and(|t| t.elapsed() >= LINGER) {
                        break;
                    } else if idle_for >= idle {
                        closed_by = Some("idle_timeout");
                    } else if target.state() == HealthState::Draining && target.drain_remaining().is_zero() {
                        closed_by = Some("target_deregistered");
                    } else {
                        let next = (idle - idle_for).min(TARGET_CHECK);
                        timer.as_mut().reset(tokio::time::Instant::now() + next);
                    }
                }
            }
        }
    }
    // Both directions ended, or ballast ends them: close both sockets (a no-op on
    // a side already shut down).
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, target_w.shutdown()).await;
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, client_w.shutdown()).await;
    Outcome {
        closed_by: closed_by.unwrap_or("client"),
        from_client: up.load(Ordering::Relaxed),
        from_target: down.load(Ordering::Relaxed),
    }
}

/// One direction has ended: the other gets `LINGER` more at most.
fn linger(half_closed: &mut Option<Instant>, timer: std::pin::Pin<&mut tokio::time::Sleep>) {
    if half_closed.is_none() {
        *half_closed = Some(Instant::now());
        let end = tokio::time::Instant::now() + LINGER;
        if end < timer.deadline() {
            timer.reset(end);
        }
    }
}

/// Whether a close reason ends the relay at once rather than waiting for the
/// other direction to finish on its own.
fn must_stop(closed_by: Option<&'static str>) -> bool {
    matches!(
        closed_by,
        Some("drain" | "idle_timeout" | "target_deregistered" | "client_error" | "target_error")
    )
}

/// Copy one direction until end of stream, then half-close the writer.
async fn copy_half<R, W>(
    r: &mut R,
    w: &mut W,
    bytes: &AtomicU64,
    last: &AtomicU64,
    start: Instant,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            w.shutdown().await?;
            return Ok(());
        }
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        w.write_all(&buf[..n]).await?;
        w.flush().await?;
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

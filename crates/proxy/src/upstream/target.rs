//! A target: one backend address of one target group, with the state the data path
//! and the health checker share through atomics.
//!
//! Data path and control path meet here. The data path reads health and weight and
//! counts requests in flight with single atomic operations; the health checker and
//! the data path's connect failures move the health state. A `Target` outlives
//! config snapshots: a reload that keeps the same group and address reuses the same
//! `Arc<Target>`, so health, counters and pooled connections carry over.
//!
//! One state machine: the health state (with its reason) says whether a target may
//! take requests at all; two overlays say how much: slow start's ramp and anomaly
//! mitigation's cut, each a factor in thousandths, written by the control path
//! (`resilience/`). The balancers read one figure, the effective weight =
//! configured weight × slow-start factor × mitigation factor, with one more atomic
//! load per target than the weight alone.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::observe::metrics::TargetMetrics;
use crate::upstream::health_history::HealthHistory;
use crate::upstream::http2::H2Pool;
use crate::upstream::pool::Pool;
use crate::upstream::verdict::Verdict;

/// Health states of SPEC §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HealthState {
    Initial = 0,
    Healthy = 1,
    Unhealthy = 2,
    Draining = 3,
    Unused = 4,
}

impl HealthState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => HealthState::Healthy,
            2 => HealthState::Unhealthy,
            3 => HealthState::Draining,
            4 => HealthState::Unused,
            _ => HealthState::Initial,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Initial => "initial",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Draining => "draining",
            HealthState::Unused => "unused",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a target is in its state, in the vocabulary of the managed load balancers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HealthReason {
    /// Healthy: no reason to give.
    None = 0,
    InitialHealthChecking = 1,
    Timeout = 2,
    ResponseCodeMismatch = 3,
    FailedHealthChecks = 4,
    ConnectionFailed = 5,
    DeregistrationInProgress = 6,
    /// No listener forwards to the target's group (ALB's reason for `unused`).
    NotInUse = 7,
}

impl HealthReason {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => HealthReason::InitialHealthChecking,
            2 => HealthReason::Timeout,
            3 => HealthReason::ResponseCodeMismatch,
            4 => HealthReason::FailedHealthChecks,
            5 => HealthReason::ConnectionFailed,
            6 => HealthReason::DeregistrationInProgress,
            7 => HealthReason::NotInUse,
            _ => HealthReason::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthReason::None => "",
            HealthReason::InitialHealthChecking => "Elb.InitialHealthChecking",
            HealthReason::Timeout => "Target.Timeout",
            HealthReason::ResponseCodeMismatch => "Target.ResponseCodeMismatch",
            HealthReason::FailedHealthChecks => "Target.FailedHealthChecks",
            HealthReason::ConnectionFailed => "Target.ConnectionFailed",
            HealthReason::DeregistrationInProgress => "Target.DeregistrationInProgress",
            HealthReason::NotInUse => "Target.NotInUse",
        }
    }
}

/// The outcome of one health probe or data-path connection attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Ok,
    Failed(HealthReason),
}

pub struct Target {
    pub group: String,
    pub addr: SocketAddr,
    weight: AtomicU32,
    /// Packed `HealthState` and `HealthReason`, so that a reader sees a consistent pair.
    health: AtomicU32,
    consecutive_ok: AtomicU32,
    consecutive_failed: AtomicU32,
    in_flight: AtomicU32,
    pub pool: Pool,
    /// HTTP/2 connections, used by `protocol = "http2"` groups only.
    pub h2: H2Pool,
    pub metrics: TargetMetrics,
    /// While draining: when it must be gone, in ms on `clock_ms`; 0 otherwise.
    drain_deadline: AtomicU64,
    /// Woken when the last request in flight of a draining target ends.
    drained: Notify,
    /// The overlays, in thousandths of the configured weight (`FULL` = no cut),
    /// and their product, which the balancers read.
    slow_start: AtomicU32,
    mitigation: AtomicU32,
    factor: AtomicU32,
    /// When the current slow-start ramp began (ms on `clock_ms`); 0: none.
    ramp_from: AtomicU64,
    /// The anomaly detector's latest verdict (control path only).
    pub anomaly: Verdict,
    /// The last health check and recent state changes (control path, read by
    /// the admin API).
    pub history: HealthHistory,
}

/// Milliseconds on a process-wide monotonic clock, starting at 1.
fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

fn pack(state: HealthState, reason: HealthReason) -> u32 {
    (state as u32) << 8 | reason as u32
}

impl Target {
    pub fn new(group: &str, addr: SocketAddr, weight: u32, pool_idle: Duration) -> Self {
        Target {
            group: group.to_string(),
            addr,
            weight: AtomicU32::new(weight),
            health: AtomicU32::new(pack(
                HealthState::Initial,
                HealthReason::InitialHealthChecking,
            )),
            consecutive_ok: AtomicU32::new(0),
            consecutive_failed: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            pool: Pool::new(addr, pool_idle),
            h2: H2Pool::new(addr),
            metrics: TargetMetrics::default(),
            drain_deadline: AtomicU64::new(0),
            drained: Notify::new(),
            slow_start: AtomicU32::new(Target::FULL),
            mitigation: AtomicU32::new(Target::FULL),
            factor: AtomicU32::new(Target::FULL),
            ramp_from: AtomicU64::new(0),
            anomaly: Verdict::default(),
            history: HealthHistory::default(),
        }
    }

    /// An overlay that takes nothing away, in thousandths.
    pub const FULL: u32 = 1000;

    /// The weight the balancers use, in thousandths of a configured weight unit:
    /// weight × slow start × mitigation.
    pub fn effective_weight(&self) -> u64 {
        u64::from(self.weight()) * u64::from(self.factor())
    }

    /// The overlays' product, in thousandths (`FULL`: the configured weight).
    pub fn factor(&self) -> u32 {
        self.factor.load(Ordering::Relaxed)
    }

    pub fn slow_start_factor(&self) -> u32 {
        self.slow_start.load(Ordering::Relaxed)
    }

    pub fn mitigation_factor(&self) -> u32 {
        self.mitigation.load(Ordering::Relaxed)
    }

    /// Whether anomaly mitigation has cut this target's weight.
    pub fn is_mitigated(&self) -> bool {
        self.mitigation_factor() < Target::FULL
    }

    /// Set slow start's factor (control path).
    pub fn set_slow_start_factor(&self, permille: u32) {
        self.slow_start
            .store(permille.min(Target::FULL), Ordering::Relaxed);
        self.publish_factor();
    }

    /// Set anomaly mitigation's factor (control path).
    pub fn set_mitigation_factor(&self, permille: u32) {
        self.mitigation
            .store(permille.min(Target::FULL), Ordering::Relaxed);
        self.publish_factor();
    }

    fn publish_factor(&self) {
        let s = u64::from(self.slow_start_factor());
        let m = u64::from(self.mitigation_factor());
        // Never 0 while both overlays leave something: a cut target keeps a trickle.
        let f = (s * m / u64::from(Target::FULL)).max(u64::from(s > 0 && m > 0)) as u32;
        self.factor.store(f, Ordering::Relaxed);
    }

    /// Where a slow-start ramp starts, in thousandths of the configured weight.
    pub const RAMP_FLOOR: u32 = 50;

    /// Begin a slow-start ramp now, at `RAMP_FLOOR` (`resilience/slow_start.rs`
    /// moves it along).
    pub fn start_ramp(&self) {
        self.ramp_from.store(clock_ms(), Ordering::Relaxed);
        self.set_slow_start_factor(Target::RAMP_FLOOR);
    }

    /// Time since the current slow-start ramp began; `None` when there is none.
    pub fn ramp_elapsed(&self) -> Option<Duration> {
        match self.ramp_from.load(Ordering::Relaxed) {
            0 => None,
            from => Some(Duration::from_millis(clock_ms().saturating_sub(from))),
        }
    }

    /// End the ramp: full weight as far as slow start goes.
    pub fn end_ramp(&self) {
        self.ramp_from.store(0, Ordering::Relaxed);
        self.set_slow_start_factor(Target::FULL);
    }

    /// Deregistration: take no new requests and be removed once the requests in
    /// flight are done or `delay` has passed. A target already draining keeps its
    /// deadline.
    pub fn start_draining(&self, delay: Duration) {
        if self.state() == HealthState::Draining {
            return;
        }
        let deadline = clock_ms().saturating_add(delay.as_millis() as u64);
        self.drain_deadline.store(deadline, Ordering::Relaxed);
        self.set_state(
            HealthState::Draining,
            HealthReason::DeregistrationInProgress,
        );
    }

    /// A draining target registered again starts over as a new target would.
    pub fn stop_draining(&self) {
        if self.state() == HealthState::Draining {
            self.drain_deadline.store(0, Ordering::Relaxed);
            self.consecutive_ok.store(0, Ordering::Relaxed);
            self.consecutive_failed.store(0, Ordering::Relaxed);
            self.set_state(HealthState::Initial, HealthReason::InitialHealthChecking);
        }
    }

    /// Draining and done: nothing in flight any more, or the delay is over.
    pub fn drain_finished(&self) -> bool {
        self.in_flight() == 0 || self.drain_remaining().is_zero()
    }

    /// Time left of the deregistration delay.
    pub fn drain_remaining(&self) -> Duration {
        let deadline = self.drain_deadline.load(Ordering::Relaxed);
        Duration::from_millis(deadline.saturating_sub(clock_ms()))
    }

    /// Resolve once no request is in flight (used on draining targets).
    pub async fn idle(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            // Register before checking, so a request ending in between is not missed.
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Ordering::Relaxed);
    }

    pub fn health(&self) -> (HealthState, HealthReason) {
        let v = self.health.load(Ordering::Relaxed);
        (
            HealthState::from_u8((v >> 8) as u8),
            HealthReason::from_u8(v as u8),
        )
    }

    pub fn state(&self) -> HealthState {
        self.health().0
    }

    pub fn is_healthy(&self) -> bool {
        self.state() == HealthState::Healthy
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Count a request in flight until the returned guard is dropped.
    pub fn begin_request(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Record a probe outcome and move the state by the thresholds. Returns the new
    /// state when it changed. From `initial`, one success is enough (the target has
    /// never failed); from `unhealthy`, `healthy_threshold` successes in a row are.
    pub fn record(
        &self,
        probe: Probe,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> Option<HealthState> {
        let (state, _) = self.health();
        if matches!(state, HealthState::Draining | HealthState::Unused) {
            return None;
        }
        match probe {
            Probe::Ok => {
                self.consecutive_failed.store(0, Ordering::Relaxed);
                let ok = self.consecutive_ok.fetch_add(1, Ordering::Relaxed) + 1;
                let needed = if state == HealthState::Initial {
                    1
                } else {
                    healthy_threshold
                };
                if state != HealthState::Healthy && ok >= needed {
                    return self.transition(state, HealthState::Healthy, HealthReason::None);
                }
            }
            Probe::Failed(reason) => {
                self.consecutive_ok.store(0, Ordering::Relaxed);
                let failed = self.consecutive_failed.fetch_add(1, Ordering::Relaxed) + 1;
                if state != HealthState::Unhealthy && failed >= unhealthy_threshold {
                    return self.transition(state, HealthState::Unhealthy, reason);
                }
                if state == HealthState::Unhealthy {
                    // Keep the latest reason visible.
                    let _ = self.transition(state, HealthState::Unhealthy, reason);
                }
            }
        }
        None
    }

    /// A connection attempt from the data path failed: the target is down at once,
    /// without waiting for the health checker's threshold.
    pub fn mark_connect_failed(&self) -> Option<HealthState> {
        self.consecutive_ok.store(0, Ordering::Relaxed);
        let (state, _) = self.health();
        if matches!(
            state,
            HealthState::Draining | HealthState::Unused | HealthState::Unhealthy
        ) {
            return None;
        }
        self.transition(
            state,
            HealthState::Unhealthy,
            HealthReason::ConnectionFailed,
        )
    }

    pub fn set_state(&self, state: HealthState, reason: HealthReason) {
        let before = self.health.swap(pack(state, reason), Ordering::Relaxed);
        let from = HealthState::from_u8((before >> 8) as u8);
        if from != state {
            self.history
                .changed(from, state, transition_reason(state, reason));
        }
    }

    /// Not in use (no listener forwards to the group): no checks, no requests.
    pub fn set_unused(&self) {
        if self.state() != HealthState::Unused {
            self.consecutive_ok.store(0, Ordering::Relaxed);
            self.consecutive_failed.store(0, Ordering::Relaxed);
            self.set_state(HealthState::Unused, HealthReason::NotInUse);
        }
    }

    /// In use again after being unused: checked from the start, as a new target.
    pub fn set_used(&self) {
        if self.state() == HealthState::Unused {
            self.set_state(HealthState::Initial, HealthReason::InitialHealthChecking);
        }
    }

    fn transition(
        &self,
        from: HealthState,
        to: HealthState,
        reason: HealthReason,
    ) -> Option<HealthState> {
        let current = self.health.load(Ordering::Relaxed);
        if (current >> 8) as u8 != from as u8 {
            return None; // someone else moved it first
        }
        let next = pack(to, reason);
        match self
            .health
            .compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) if from != to => {
                self.history
                    .changed(from, to, transition_reason(to, reason));
                if from == HealthState::Healthy && self.ramp_elapsed().is_some() {
                    // Leaving healthy leaves slow start.
                    self.end_ramp();
                }
                Some(to)
            }
            _ => None,
        }
    }
}

/// The reason a transition shows: the new state's reason code, or for a
/// target turning healthy, what made it so.
fn transition_reason(to: HealthState, reason: HealthReason) -> &'static str {
    match (to, reason) {
        (HealthState::Healthy, _) => "Target.HealthChecksPassed",
        (_, reason) => reason.as_str(),
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("group", &self.group)
            .field("addr", &self.addr)
            .field("health", &self.health())
            .field("weight", &self.weight())
            .finish()
    }
}

/// A request in flight to a target; dropping it ends the count.
pub struct InFlight(std::sync::Arc<Target>);

impl InFlight {
    pub fn target(&self) -> &std::sync::Arc<Target> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1
            && self.0.state() == HealthState::Draining
        {
            self.0.drained.notify_waiters();
        }
    }
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;

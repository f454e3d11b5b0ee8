//! Metric cells the data path updates: counters by status code, latency histograms
//! and gauges, each a plain atomic (SPEC §9 names; rendered by `exposition.rs`).
//!
//! Data path, and shaped by it. A hand-written registry rather than the
//! `prometheus` or `metrics` crates: those look a series up by its labels (a map
//! behind a lock or a sharded hash) on every update unless every handle is cached
//! by hand, and their registries are process-global. Here the labels are fixed
//! when the control path builds a snapshot: each listener route and each `Target`
//! owns its cells (and both survive reloads, so counters never reset), and a
//! request does only relaxed `fetch_add`s on memory it already holds. Status codes
//! index a flat array (100–599), so the `code` label costs no lookup either, and
//! every label set is bounded by the config (no per-path or per-client labels).

use crate::hygiene::desync::Class;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Histogram bucket bounds in seconds, 0.5 ms to 10 s: a proxy's own overhead sits
/// in the first buckets, targets' response times in the middle, timeouts at the end.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram; buckets are stored per bucket and summed when rendered.
pub struct Histogram {
    /// `BUCKETS.len()` bounded buckets, then `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        // The first bucket whose bound is >= the value (Prometheus' `le`).
        let i = BUCKETS_US.partition_point(|&b| b < us);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket (the last is `+Inf`, the total), and the sum in
    /// seconds.
    pub fn read(&self) -> ([u64; BUCKETS.len() + 1], f64) {
        let mut acc = 0;
        let cumulative = std::array::from_fn(|i| {
            acc += self.counts[i].load(Ordering::Relaxed);
            acc
        });
        (cumulative, self.sum_us.load(Ordering::Relaxed) as f64 / 1e6)
    }
}

/// Counts by HTTP status code.
pub struct CodeCounts(Box<[AtomicU64]>);

impl Default for CodeCounts {
    fn default() -> Self {
        CodeCounts((100..600).map(|_| AtomicU64::new(0)).collect())
    }
}

impl CodeCounts {
    pub fn inc(&self, code: u16) {
        // hyper only produces 100–599; clamp rather than index out of bounds.
        let i = usize::from(code.clamp(100, 599) - 100);
        if let Some(c) = self.0.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Responses whose code is in `codes` (control path: a scan of the cells).
    pub fn sum(&self, codes: std::ops::Range<u16>) -> u64 {
        let from = usize::from(codes.start.clamp(100, 600) - 100);
        let to = usize::from(codes.end.clamp(100, 600) - 100);
        self.0.get(from..to).map_or(0, |cells| {
            cells.iter().map(|c| c.load(Ordering::Relaxed)).sum()
        })
    }

    /// `(code, count)` for every code seen at least once.
    pub fn read(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.0.iter().enumerate().filter_map(|(i, c)| {
            let n = c.load(Ordering::Relaxed);
            (n > 0).then_some((i as u16 + 100, n))
        })
    }
}

/// Why ballast answered a request itself without trying a target
/// (`ballast_rejected_requests_total{reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    NoHealthyTarget = 0,
    ListenerDraining = 1,
    /// Refused by the listener's desync mitigation mode (`hygiene/`).
    Desync = 2,
    /// A target group's circuit breaker was at one of its limits
    /// (`observe/group.rs`, `resilience/breaker.rs`).
    CircuitOpen = 3,
    /// Over one of the rate limits attached to the listener or the rule
    /// (`admission/`): 429.
    RateLimited = 4,
    /// The target group's adaptive concurrency limit was reached
    /// (`resilience/`): 503.
    Shed = 5,
    /// A connection refused at accept by the listener's allow/deny lists or a
    /// PROXY protocol header it may not send (`admission/`).
    Denied = 6,
    /// A connection refused at accept because its client already holds
    /// `max_connections_per_client` (`admission/`).
    ConnectionLimit = 7,
}

impl Rejection {
    pub const ALL: [Rejection; 8] = [
        Rejection::NoHealthyTarget,
        Rejection::ListenerDraining,
        Rejection::Desync,
        Rejection::CircuitOpen,
        Rejection::RateLimited,
        Rejection::Shed,
        Rejection::Denied,
        Rejection::ConnectionLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::NoHealthyTarget => "no_healthy_target",
            Rejection::ListenerDraining => "listener_draining",
            Rejection::Desync => "desync",
            Rejection::CircuitOpen => "circuit_open",
            Rejection::RateLimited => "rate_limited",
            Rejection::Shed => "shed",
            Rejection::Denied => "denied",
            Rejection::ConnectionLimit => "connection_limit",
        }
    }
}

/// Which limit on slow clients closed a connection or ended a request
/// (`ballast_client_timeouts_total{listener,phase}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// A request head (or a new connection's first one) did not arrive within
    /// `header_read_timeout`: the connection was closed.
    Head = 0,
    /// A request body did not arrive within `request_body_timeout` (as extended
    /// by `request_body_min_rate`): 408, or the exchange aborted if the response
    /// had started.
    Body = 1,
    /// The client took no byte of what ballast wrote for `response_send_timeout`:
    /// the connection was closed.
    Send = 2,
}

impl TimeoutPhase {
    pub const ALL: [TimeoutPhase; 3] = [TimeoutPhase::Head, TimeoutPhase::Body, TimeoutPhase::Send];

    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::Head => "head",
            TimeoutPhase::Body => "body",
            TimeoutPhase::Send => "send",
        }
    }
}

/// One listener's cells; kept by name across reloads.
#[derive(Default)]
pub struct ListenerMetrics {
    pub requests: CodeCounts,
    pub duration: Histogram,
    pub active_connections: AtomicI64,
    /// Upgraded connections being relayed now, and since start.
    pub upgraded: AtomicI64,
    pub upgrades_total: AtomicU64,
    /// Times a quiet keep-alive connection was parked (its HTTP state freed).
    pub parked_total: AtomicU64,
    rejected: [AtomicU64; Rejection::ALL.len()],
    /// HTTP/1 requests by desync class (`hygiene::desync::Class` as index).
    desync: [AtomicU64; Class::ALL.len()],
    /// HTTP/2 connections ballast closed with a GOAWAY carrying an error, by
    /// error code (`HTTP2_REASONS` as index).
    http2_closed: [AtomicU64; HTTP2_REASONS.len()],
    /// Slow clients cut off, by `TimeoutPhase`.
    client_timeouts: [AtomicU64; TimeoutPhase::ALL.len()],
}

/// HTTP/2 error codes (RFC 9113 §7) as `ballast_http2_connections_closed_total`
/// names them, by code; a code past the list counts as the last, `unknown`.
pub const HTTP2_REASONS: [&str; 15] = [
    "no_error",
    "protocol_error",
    "internal_error",
    "flow_control_error",
    "settings_timeout",
    "stream_closed",
    "frame_size_error",
    "refused_stream",
    "cancel",
    "compression_error",
    "connect_error",
    "enhance_your_calm",
    "inadequate_security",
    "http_1_1_required",
    "unknown",
];

impl ListenerMetrics {
    pub fn reject(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, why: Rejection) -> u64 {
        self.rejected[why as usize].load(Ordering::Relaxed)
    }

    pub fn timed_out(&self, phase: TimeoutPhase) {
        self.client_timeouts[phase as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn timeouts(&self, phase: TimeoutPhase) -> u64 {
        self.client_timeouts[phase as usize].load(Ordering::Relaxed)
    }

    pub fn classified(&self, class: Class) {
        self.desync[class as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn desync(&self, class: Class) -> u64 {
        self.desync[class as usize].load(Ordering::Relaxed)
    }

    /// Count an HTTP/2 connection ballast closed with this error code.
    pub fn http2_closed(&self, code: u32) {
        let i = (code as usize).min(HTTP2_REASONS.len() - 1);
        self.http2_closed[i].fetch_add(1, Ordering::Relaxed);
    }

    /// HTTP/2 connections closed with this error code (`HTTP2_REASONS` index).
    pub fn http2_closed_by(&self, index: usize) -> u64 {
        self.http2_closed
            .get(index)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Count a client connection as open until the guard drops.
    pub fn connection(self: &std::sync::Arc<Self>) -> ConnectionGuard {
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.clone())
    }
}

/// Counts an upgraded connection as open until dropped.
pub struct UpgradedGuard(std::sync::Arc<ListenerMetrics>);

impl ListenerMetrics {
    pub fn upgraded(self: &std::sync::Arc<Self>) -> UpgradedGuard {
        self.upgraded.fetch_add(1, Ordering::Relaxed);
        self.upgrades_total.fetch_add(1, Ordering::Relaxed);
        UpgradedGuard(self.clone())
    }
}

impl Drop for UpgradedGuard {
    fn drop(&mut self) {
        self.0.upgraded.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct ConnectionGuard(std::sync::Arc<ListenerMetrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One target's cells; live in its `Target`, so they survive reloads with it.
#[derive(Default)]
pub struct TargetMetrics {
    /// Responses the target sent, by its status code.
    pub requests: CodeCounts,
    /// From sending the request to the target's response head.
    pub duration: Histogram,
    pub connection_errors: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_inclusive() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500)); // exactly on the first bound
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60)); // past the last bound
        let (c, sum) = h.read();
        assert_eq!(c[0], 1);
        assert_eq!(c[3], 2); // le=0.005
        assert_eq!(c[BUCKETS.len() - 1], 2);
        assert_eq!(c[BUCKETS.len()], 3);
        assert!((sum - 60.0035).abs() < 1e-9);
    }

    #[test]
    fn codes_count_separately() {
        let c = CodeCounts::default();
        c.inc(200);
        c.inc(200);
        c.inc(503);
        c.inc(42); // clamped, not a panic
        let seen: Vec<_> = c.read().collect();
        assert_eq!(seen, vec![(100, 1), (200, 2), (503, 1)]);
        assert_eq!(c.sum(500..600), 1);
        assert_eq!(c.sum(100..600), 4);
    }
}

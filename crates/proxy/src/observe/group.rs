//! A target group's own cells: what its circuit breaker counts against each limit,
//! the per-second counts its retry budget reads, and the counters of retries and
//! refusals (`ballast_retries_total`, `ballast_retry_budget_exhausted_total`,
//! `ballast_circuit_breaker_*`), and the requests whose shuffle shard had no
//! target (`ballast_shuffle_shard_*_total`).
//!
//! Data path for counting, control path for reading; the decisions made from these
//! figures live in `resilience/` (`budget.rs`, `breaker.rs`). Like a target's cells
//! (`metrics.rs`), a group's are kept by name across reloads (`snapshot.rs`), so a
//! reload neither forgets the retries of the last seconds nor the connections open.
//! Every update is one atomic operation on memory the request already holds
//! (`TargetGroup::metrics`): a breaker's count is taken with a compare-and-swap
//! against its limit (so ten requests racing for two places get exactly two), and
//! given back by the guard's drop.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use ballast_config::resilience::{CircuitBreaker, RetryOn, RetryPolicy};

use crate::observe::exposition::{family, sample};

/// What a circuit breaker limits (Envoy's thresholds), and the `limit` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Connections open (or being opened) to the group's targets.
    Connections = 0,
    /// Requests waiting for a new connection to a target.
    PendingRequests = 1,
    /// Requests in flight to the group, until their response ends.
    Requests = 2,
    /// Retries in flight, until their response head.
    Retries = 3,
}

impl Limit {
    pub const ALL: [Limit; 4] = [
        Limit::Connections,
        Limit::PendingRequests,
        Limit::Requests,
        Limit::Retries,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::PendingRequests => "pending_requests",
            Limit::Requests => "requests",
            Limit::Retries => "retries",
        }
    }

    /// This limit in a group's config (`None`: no limit).
    pub fn of(self, cb: &CircuitBreaker) -> Option<u32> {
        match self {
            Limit::Connections => cb.max_connections,
            Limit::PendingRequests => cb.max_pending_requests,
            Limit::Requests => cb.max_requests,
            Limit::Retries => cb.max_retries,
        }
    }
}

/// Retry reasons with a counter of their own; statuses follow, 500..=599.
const FIXED_REASONS: [RetryOn; 3] = [RetryOn::ConnectFailure, RetryOn::Reset, RetryOn::Timeout];

/// One target group's cells; kept by name across reloads.
pub struct GroupMetrics {
    usage: [AtomicU32; 4],
    /// Requests refused by each limit.
    open: [AtomicU64; 4],
    /// By reason: the fixed ones, then statuses 500..=599.
    retries: Box<[AtomicU64]>,
    budget_exhausted: AtomicU64,
    pub window: Window,
    /// The adaptive concurrency limit's cells (`load_shedding`).
    pub shedding: Arc<crate::observe::shedding::ShedCells>,
    /// Requests whose shuffle shard had no target that could take them, and
    /// those of them sent to the rest of the group.
    shard_unavailable: AtomicU64,
    shard_fail_open: AtomicU64,
    /// The second (on `runtime::now_ms`) of the last warning about it.
    shard_warned_s: AtomicU64,
}

impl Default for GroupMetrics {
    fn default() -> Self {
        GroupMetrics {
            usage: Default::default(),
            open: Default::default(),
            retries: (0..FIXED_REASONS.len() + 100)
                .map(|_| AtomicU64::new(0))
                .collect(),
            budget_exhausted: AtomicU64::new(0),
            window: Window::default(),
            shedding: Arc::default(),
            shard_unavailable: AtomicU64::new(0),
            shard_fail_open: AtomicU64::new(0),
            shard_warned_s: AtomicU64::new(0),
        }
    }
}

/// One place counted against a limit, given back when dropped.
pub struct Held {
    cells: Arc<GroupMetrics>,
    limit: Limit,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.cells.usage[self.limit as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

impl GroupMetrics {
    /// Take one place of `limit`, if fewer than `max` are taken (always, without
    /// a max). `None`: the limit is reached, and the refusal is counted.
    pub fn hold(self: &Arc<Self>, limit: Limit, max: Option<u32>) -> Option<Held> {
        let cell = &self.usage[limit as usize];
        match max {
            None => {
                cell.fetch_add(1, Ordering::Relaxed);
            }
            Some(max) => {
                let taken = cell
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .is_ok();
                if !taken {
                    self.open[limit as usize].fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        Some(Held {
            cells: self.clone(),
            limit,
        })
    }

    pub fn usage(&self, limit: Limit) -> u32 {
        self.usage[limit as usize].load(Ordering::Relaxed)
    }

    /// Requests refused because `limit` was reached.
    pub fn opened(&self, limit: Limit) -> u64 {
        self.open[limit as usize].load(Ordering::Relaxed)
    }

    fn reason_index(why: RetryOn) -> usize {
        match why {
            RetryOn::ConnectFailure => 0,
            RetryOn::Reset => 1,
            RetryOn::Timeout => 2,
            RetryOn::Status(code) => FIXED_REASONS.len() + usize::from(code.clamp(500, 599) - 500),
        }
    }

    /// A retry was made after a failure of this kind.
    pub fn retried(&self, why: RetryOn) {
        self.retries[Self::reason_index(why)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn retries(&self, why: RetryOn) -> u64 {
        self.retries[Self::reason_index(why)].load(Ordering::Relaxed)
    }

    /// A retry the budget did not allow.
    pub fn budget_exhausted(&self) {
        self.budget_exhausted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn budget_exhausted_total(&self) -> u64 {
        self.budget_exhausted.load(Ordering::Relaxed)
    }

    /// A request's shuffle shard had no target that could take it (`fail_open`:
    /// it goes to the rest of the group). Whether to warn about it now: true at
    /// most once every `every_s` seconds (one compare-and-swap claims the turn).
    pub fn shard_unavailable(&self, fail_open: bool, now_s: u64, every_s: u64) -> bool {
        self.shard_unavailable.fetch_add(1, Ordering::Relaxed);
        if fail_open {
            self.shard_fail_open.fetch_add(1, Ordering::Relaxed);
        }
        let last = self.shard_warned_s.load(Ordering::Relaxed);
        (last == 0 || now_s >= last + every_s)
            && self
                .shard_warned_s
                .compare_exchange(last, now_s.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Requests whose shard had no target that could take them, and those sent
    /// to the rest of the group.
    pub fn shard_unavailable_total(&self) -> (u64, u64) {
        (
            self.shard_unavailable.load(Ordering::Relaxed),
            self.shard_fail_open.load(Ordering::Relaxed),
        )
    }
}

/// The places a new connection to one of a group's targets takes: one among the
/// requests pending while it is opened, one among the connections while it is
/// open. Built by `resilience::breaker::connect`, used where connections are
/// opened (`forward/handler.rs` for HTTP/1.1, `upstream/http2.rs`).
pub struct ConnectGate<'a> {
    pub cells: &'a Arc<GroupMetrics>,
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
}

impl ConnectGate<'_> {
    pub fn pending(&self) -> Result<Held, Limit> {
        let limit = Limit::PendingRequests;
        self.cells
            .hold(limit, self.max_pending_requests)
            .ok_or(limit)
    }

    pub fn connection(&self) -> Result<Held, Limit> {
        let limit = Limit::Connections;
        self.cells.hold(limit, self.max_connections).ok_or(limit)
    }
}

/// Seconds a `Window` looks back.
pub const WINDOW_SECS: u32 = 10;

/// Requests and retries per second over the last `WINDOW_SECS` seconds: a ring
/// of per-second slots, each one atomic word holding the second it counts (high
/// half) and its count (low half). Adding is a `fetch_add` while the slot is the
/// current second's, and one compare-and-swap to claim it for a new second, so no
/// count is lost at the turn of a second and no task has to turn the ring.
pub struct Window {
    requests: [AtomicU64; WINDOW_SECS as usize],
    retries: [AtomicU64; WINDOW_SECS as usize],
    /// When the first request was counted, in ms on the caller's clock (0: none yet).
    born_ms: AtomicU64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            requests: Default::default(),
            retries: Default::default(),
            born_ms: AtomicU64::new(0),
        }
    }
}

/// What a window holds at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sums {
    pub requests: u64,
    pub retries: u64,
    /// Seconds the window covers: those begun since the first request, at most
    /// `WINDOW_SECS` (the second under way counts whole).
    pub seconds: u64,
}

const COUNT: u64 = 0xffff_ffff;

fn add(slots: &[AtomicU64; WINDOW_SECS as usize], now_s: u32) {
    let slot = &slots[(now_s % WINDOW_SECS) as usize];
    let tag = u64::from(now_s) << 32;
    let mut seen = slot.load(Ordering::Relaxed);
    loop {
        if seen & !COUNT == tag {
            slot.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // A slot of an older second: claim it for this one, counting 1.
        match slot.compare_exchange_weak(seen, tag | 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => seen = now,
        }
    }
}

fn sum(slots: &[AtomicU64; WINDOW_SECS as usize], now_s: u32) -> u64 {
    slots
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|v| now_s.wrapping_sub((v >> 32) as u32) < WINDOW_SECS)
        .map(|v| v & COUNT)
        .sum()
}

impl Window {
    /// Count a request at `now_ms` (ms on a monotonic clock, never 0).
    pub fn request(&self, now_ms: u64) {
        if self.born_ms.load(Ordering::Relaxed) == 0 {
            let _ = self
                .born_ms
                .compare_exchange(0, now_ms, Ordering::Relaxed, Ordering::Relaxed);
        }
        add(&self.requests, (now_ms / 1000) as u32);
    }

    /// Count a retry at `now_ms`.
    pub fn retry(&self, now_ms: u64) {
        add(&self.retries, (now_ms / 1000) as u32);
    }

    /// Take back a retry counted at `now_ms` (one the budget then refused), if its
    /// second's slot still holds it.
    pub fn unretry(&self, now_ms: u64) {
        let now_s = (now_ms / 1000) as u32;
        let tag = u64::from(now_s) << 32;
        let slot = &self.retries[(now_s % WINDOW_SECS) as usize];
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v & !COUNT == tag && v & COUNT > 0).then(|| v - 1)
        });
    }

    pub fn sums(&self, now_ms: u64) -> Sums {
        let now_s = (now_ms / 1000) as u32;
        let born = self.born_ms.load(Ordering::Relaxed);
        let seconds = if born == 0 {
            0
        } else {
            (now_ms.saturating_sub(born) / 1000 + 1).min(u64::from(WINDOW_SECS))
        };
        Sums {
            requests: sum(&self.requests, now_s),
            retries: sum(&self.retries, now_s),
            seconds,
        }
    }
}

/// One group as a scrape shows its resilience cells.
pub struct GroupCells<'a> {
    pub name: &'a str,
    pub cells: &'a GroupMetrics,
    pub retry: Option<&'a RetryPolicy>,
    pub breaker: &'a CircuitBreaker,
    /// The group has `shuffle_shard`.
    pub sharded: bool,
}

/// The retry and circuit-breaker families, for these groups.
pub fn render(out: &mut String, groups: &[GroupCells<'_>]) {
    let name = "ballast_retries_total";
    family(
        out,
        name,
        "counter",
        "Retries made, by target group and the failure retried (connect_failure, reset, timeout, or the target's status).",
    );
    for g in groups {
        let mut reasons: Vec<RetryOn> = FIXED_REASONS.to_vec();
        for code in 500..=599 {
            let why = RetryOn::Status(code);
            let listed = g.retry.is_some_and(|p| p.retries(why));
            if listed || g.cells.retries(why) > 0 {
                reasons.push(why);
            }
        }
        for why in reasons {
            let reason = String::from(why);
            let labels = [("target_group", g.name), ("reason", reason.as_str())];
            sample(out, name, &labels, g.cells.retries(why));
        }
    }
    let name = "ballast_retry_budget_exhausted_total";
    family(
        out,
        name,
        "counter",
        "Retries not made because the target group's retry budget was spent.",
    );
    for g in groups {
        let labels = [("target_group", g.name)];
        sample(out, name, &labels, g.cells.budget_exhausted_total());
    }
    for (name, help) in [
        ("ballast_shuffle_shard_unavailable_total", "Requests whose shuffle shard had no target that could take them, by target group."),
        ("ballast_shuffle_shard_fail_open_total", "Requests sent to the healthy rest of the target group because their shuffle shard had no target that could take them (fail_open = true)."),
    ] {
        family(out, name, "counter", help);
        for g in groups.iter().filter(|g| g.sharded) {
            let (unavailable, failed_open) = g.cells.shard_unavailable_total();
            let value = if name.ends_with("fail_open_total") {
                failed_open
            } else {
                unavailable
            };
            sample(out, name, &[("target_group", g.name)], value);
        }
    }
    let with_breaker: Vec<_> = groups.iter().filter(|g| !g.breaker.is_off()).collect();
    for (name, kind, help) in [
        ("ballast_circuit_breaker_usage", "gauge", "Current use against each circuit-breaker limit (connections, pending_requests, requests, retries), by target group."),
        ("ballast_circuit_breaker_limit", "gauge", "Each circuit-breaker limit that is set, by target group."),
        ("ballast_circuit_breaker_open_total", "counter", "Requests refused (503 circuit_open) or retries not made because a limit was reached, by target group and limit."),
    ] {
        family(out, name, kind, help);
        for g in &with_breaker {
            for limit in Limit::ALL {
                let labels = [("target_group", g.name), ("limit", limit.as_str())];
                match name {
                    "ballast_circuit_breaker_usage" => {
                        sample(out, name, &labels, g.cells.usage(limit))
                    }
                    "ballast_circuit_breaker_limit" => {
                        if let Some(max) = limit.of(g.breaker) {
                            sample(out, name, &labels, max);
                        }
                    }
                    _ => sample(out, name, &labels, g.cells.opened(limit)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_gives_exactly_its_places_and_takes_them_back() {
        let g = Arc::new(GroupMetrics::default());
        let a = g.hold(Limit::Requests, Some(2)).expect("first");
        let _b = g.hold(Limit::Requests, Some(2)).expect("second");
        assert!(g.hold(Limit::Requests, Some(2)).is_none());
        assert_eq!(g.usage(Limit::Requests), 2);
        assert_eq!(g.opened(Limit::Requests), 1);
        drop(a);
        assert!(g.hold(Limit::Requests, Some(2)).is_some());
        let _c = g.hold(Limit::Connections, None).expect("no limit");
        assert_eq!(g.usage(Limit::Connections), 1);
    }

    #[test]
    fn a_shard_warning_comes_at_most_once_per_period() {
        let g = GroupMetrics::default();
        assert!(g.shard_unavailable(true, 100, 10));
        assert!(!g.shard_unavailable(true, 105, 10));
        assert!(!g.shard_unavailable(false, 109, 10));
        assert!(g.shard_unavailable(true, 110, 10));
        assert_eq!(g.shard_unavailable_total(), (4, 3));
    }

    #[test]
    fn the_window_forgets_seconds_older_than_ten() {
        let w = Window::default();
        assert_eq!(w.sums(5_000).seconds, 0);
        w.request(5_000);
        w.request(5_900);
        w.retry(5_900);
        w.request(6_100);
        assert_eq!(
            w.sums(6_200),
            Sums {
                requests: 3,
                retries: 1,
                seconds: 2
            }
        );
        // 14.9 s: seconds 5 to 14 are in the window.
        assert_eq!(w.sums(14_900).requests, 3);
        assert_eq!(w.sums(14_900).seconds, 10);
        // 15 s: second 5 has left it; second 6's slot is reused by second 16.
        assert_eq!(w.sums(15_000).requests, 1);
        assert_eq!(w.sums(15_000).retries, 0);
        w.request(16_000);
        assert_eq!(w.sums(16_000).requests, 1);
        w.retry(16_500);
        w.unretry(16_600);
        w.unretry(16_700);
        assert_eq!(w.sums(16_800).retries, 0, "taken back once, never below 0");
    }
}

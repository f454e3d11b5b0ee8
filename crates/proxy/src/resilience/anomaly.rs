//! Anomaly detection: which targets of a group fail markedly more than their peers
//! (a gray failure: passing its health check, yet answering a share of requests
//! with 5xx or refusing connections).
//!
//! Control path, on the group's tick (`resilience::spawn`, every `TICK` = 1 s).
//! Always on, whatever `anomaly_mitigation` says; `mitigation.rs` decides what to
//! do with the verdicts, and `Target::anomaly` (`upstream/verdict.rs`) publishes
//! them to the API and the metrics. Anomalous never changes a target's health.
//!
//! - **Signal**: per target, the share of its requests that failed: answers with a
//!   5xx status from the target itself, plus connection failures (TCP connect,
//!   TLS). Read from the counters the data path keeps anyway
//!   (`TargetMetrics::requests` by code, `connection_errors`), as differences
//!   between readings one tick apart, so detection costs the data path nothing.
//!   Latency is not a signal (as ALB): a slow target is not a broken one.
//! - **Window**: the last `WINDOW` ticks (10 s, Envoy's outlier-detection
//!   interval), sliding by one tick. The readings live in the group's state in the
//!   server's registry (`registry.rs`), so a reload keeps the window; a target whose
//!   counters went backwards (a new `Target` for the same address) starts anew.
//! - **Baseline**: the median of the peers' shares: the other healthy targets of the
//!   group with enough requests. The median, not the mean, so one bad target does
//!   not raise the bar for the others (with 5 targets and one at 30%, a good
//!   target's baseline is still a good target's share).
//! - **Verdict**: anomalous when the target has at least `MIN_REQUESTS` in the
//!   window, the group at least `MIN_TARGETS` healthy targets (two peers with
//!   enough requests to compare with), and the *lower* bound of the Wilson score
//!   interval of its share (z = `Z` = 3.5, about 1 in 4300 one-sided) exceeds
//!   `threshold(baseline)` = max(baseline + `MARGIN`, `RATIO` × baseline):
//!   5 percentage points and twice the peers' share. The margin is why equal
//!   targets at the same low error rate are never anomalous (1% against 1% needs
//!   a lower bound above 6%), the ratio why a fleet-wide 20% does not flag the
//!   unlucky one at 28%, and the Wilson bound why a small sample is not enough:
//!   against peers at 0%, 5 failures in 20 requests are anomalous and 4 are not;
//!   a target failing 1% of its requests reaches 5 in 20 with a chance of about
//!   1e-6 per window, and with 100 requests it would need 15. A target failing
//!   30% is flagged from 20 requests on (a lower bound of 8% against 5%).
//!
//! Without enough requests or peers there is no verdict: the target is reported
//! `normal` with its figures, and `mitigation.rs` treats it as recovered (no
//! evidence against it). A target already cut is judged with hysteresis: it stays
//! anomalous until its share itself is back under the threshold (see `judge`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use crate::upstream::target::Target;
use crate::upstream::verdict::VerdictView;

/// Ticks in the sliding window (10 s at `TICK` = 1 s).
pub const WINDOW: usize = 10;
/// Requests a target needs in the window before any verdict on it.
pub const MIN_REQUESTS: u64 = 20;
/// Healthy targets a group needs before any verdict (a target and two peers).
pub const MIN_TARGETS: usize = 3;
/// How much worse than the baseline a target must be: at least this many more
/// (absolute share) ...
pub const MARGIN: f64 = 0.05;
/// ... and at least this many times the baseline.
pub const RATIO: f64 = 2.0;
/// Standard deviations of the Wilson score bound.
pub const Z: f64 = 3.5;

/// A target's requests and failures: cumulative (a reading) or over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Answers from the target (any status) plus connection failures.
    pub requests: u64,
    /// 5xx answers from the target plus connection failures.
    pub errors: u64,
}

impl Counters {
    /// The target's cumulative counters now.
    pub fn read(t: &Target) -> Counters {
        let refused = t.metrics.connection_errors.load(Ordering::Relaxed);
        Counters {
            requests: t.metrics.requests.sum(100..600) + refused,
            errors: t.metrics.requests.sum(500..600) + refused,
        }
    }

    /// The share that failed; 0 without requests.
    pub fn share(self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// The last `WINDOW + 1` readings of one target's counters.
#[derive(Debug, Default)]
pub struct Window {
    readings: VecDeque<Counters>,
}

impl Window {
    /// Add this tick's reading.
    pub fn push(&mut self, now: Counters) {
        if let Some(last) = self.readings.back() {
            if now.requests < last.requests || now.errors < last.errors {
                self.readings.clear(); // a new `Target`: its counters started at 0
            }
        }
        self.readings.push_back(now);
        while self.readings.len() > WINDOW + 1 {
            self.readings.pop_front();
        }
    }

    /// Requests and failures over the window (less while it fills).
    pub fn sum(&self) -> Counters {
        match (self.readings.front(), self.readings.back()) {
            (Some(first), Some(last)) => Counters {
                requests: last.requests - first.requests,
                errors: last.errors - first.errors,
            },
            _ => Counters::default(),
        }
    }
}

/// The share a target must be above (by its Wilson lower bound) to be anomalous.
pub fn threshold(baseline: f64) -> f64 {
    (baseline + MARGIN).max(baseline * RATIO)
}

/// The lower bound of the Wilson score interval of `errors` in `requests`
/// (Wilson 1927): unlike the normal approximation it stays sensible for small
/// samples and shares near 0.
pub fn wilson_lower(errors: u64, requests: u64) -> f64 {
    if requests == 0 {
        return 0.0;
    }
    let n = requests as f64;
    let p = errors as f64 / n;
    let z2 = Z * Z;
    let centre = p + z2 / (2.0 * n);
    let spread = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).max(0.0)
}

/// The median of some shares; 0 for none.
pub fn median(mut shares: Vec<f64>) -> f64 {
    if shares.is_empty() {
        return 0.0;
    }
    shares.sort_by(f64::total_cmp);
    let mid = shares.len() / 2;
    if shares.len() % 2 == 1 {
        shares[mid]
    } else {
        (shares[mid - 1] + shares[mid]) / 2.0
    }
}

/// What the detector knows of one target this tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    pub healthy: bool,
    /// Requests and failures over the window.
    pub window: Counters,
    /// Whether mitigation has cut it (in `monitor`: would have).
    pub cut: bool,
}

/// The verdict on every target of a group. Only healthy targets are judged and
/// serve as peers; the others get their figures and `normal`.
///
/// Hysteresis: a target already cut stays anomalous until its share itself (not
/// its Wilson bound) is back at or under the threshold. A cut target gets a
/// trickle, too few requests for the bound to be confident either way; without
/// this it would be let back up one step whenever a small sample happened to
/// look good, and cut again at the next. With no request at all in the window
/// there is no evidence against it, and it is `normal`.
pub fn judge(targets: &[Reading]) -> Vec<VerdictView> {
    let healthy = targets.iter().filter(|r| r.healthy).count();
    let judged: Vec<usize> = (0..targets.len())
        .filter(|&i| targets[i].healthy && targets[i].window.requests >= MIN_REQUESTS)
        .collect();
    targets
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let c = r.window;
            let peers: Vec<f64> = judged
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| targets[j].window.share())
                .collect();
            let enough_peers = peers.len() + 1 >= MIN_TARGETS;
            let baseline = median(peers);
            let worse = if r.cut {
                c.requests > 0 && c.share() > threshold(baseline)
            } else {
                c.requests >= MIN_REQUESTS
                    && wilson_lower(c.errors, c.requests) > threshold(baseline)
            };
            VerdictView {
                anomalous: r.healthy && healthy >= MIN_TARGETS && enough_peers && worse,
                error_rate: c.share(),
                baseline,
                requests: c.requests,
            }
        })
        .collect()
}

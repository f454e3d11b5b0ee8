//! Choosing a target for a request: `round_robin`, `least_outstanding_requests` and
//! `weighted_random` (SPEC §2).
//!
//! Data path. A pick is synchronous and lock-free: it reads per-target atomics
//! (weight, requests in flight) and, for round robin, one shared counter. Lookup
//! tables are built off the data path, when a snapshot is built (sozu's `rebuild`).
//! The caller says which targets may be chosen (healthy, not yet tried for this
//! request); every algorithm honours the *effective* weights (the configured
//! weight shaped by slow start and anomaly mitigation, `target.rs`), and a weight
//! of 0 is never chosen.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ballast_config::Algorithm;

use crate::upstream::target::Target;

pub enum Balancer {
    RoundRobin(SmoothRoundRobin),
    LeastOutstanding(AtomicUsize),
    WeightedRandom,
}

impl Balancer {
    pub fn new(algorithm: Algorithm, targets: &[Arc<Target>]) -> Self {
        match algorithm {
            Algorithm::RoundRobin => Balancer::RoundRobin(SmoothRoundRobin::new(targets)),
            Algorithm::LeastOutstandingRequests => Balancer::LeastOutstanding(AtomicUsize::new(0)),
            Algorithm::WeightedRandom => Balancer::WeightedRandom,
        }
    }

    /// The index of the chosen target among those for which `eligible` holds.
    pub fn pick(&self, targets: &[Arc<Target>], eligible: impl Fn(usize) -> bool) -> Option<usize> {
        match self {
            Balancer::RoundRobin(rr) => rr.pick(targets, eligible),
            Balancer::LeastOutstanding(offset) => least_outstanding(targets, offset, eligible),
            Balancer::WeightedRandom => weighted_random(targets, eligible),
        }
    }
}

/// Weighted round robin in nginx's smooth order (a weight-3 target is spread out,
/// `A B A C A`, not bunched, `A A A B C`). The order for the configured weights is
/// computed once per snapshot; a pick is one atomic increment. When the target in
/// turn may not be chosen, the pick falls back to a weighted random choice among
/// those that may, so a missing target's share spreads in proportion to the others'
/// weights instead of all landing on its neighbour in the order.
///
/// The order follows the configured weights. A target whose effective weight is
/// cut (a factor f < 1: ramping up, or mitigated) keeps its turn with probability
/// f; a turn it gives up goes to a weighted random choice by effective weight.
/// That makes each target's share exactly proportional to its effective weight:
/// target i gets w_i·f_i/W of the turns plus its share w_i·f_i/E of the turns
/// given up (R = 1 − E/W), which sums to w_i·f_i/E. With no cut in effect a pick
/// costs one more atomic load than before.
pub struct SmoothRoundRobin {
    order: Vec<u32>,
    next: AtomicUsize,
}

impl SmoothRoundRobin {
    /// The longest order kept; heavier weight sets are scaled down to fit.
    const MAX_ORDER: u64 = 4096;

    fn new(targets: &[Arc<Target>]) -> Self {
        let mut weights: Vec<u64> = targets.iter().map(|t| u64::from(t.weight())).collect();
        let g = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd);
        if g > 1 {
            weights.iter_mut().for_each(|w| *w /= g);
        }
        let total: u64 = weights.iter().sum();
        if total > Self::MAX_ORDER {
            // Keep proportions approximately; every non-zero weight stays at least 1.
            weights
                .iter_mut()
                .filter(|w| **w > 0)
                .for_each(|w| *w = (*w * Self::MAX_ORDER / total).max(1));
        }
        let total: i64 = weights.iter().sum::<u64>() as i64;
        let mut current = vec![0i64; weights.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best = None;
            for (i, w) in weights.iter().enumerate() {
                if *w == 0 {
                    continue;
                }
                current[i] += *w as i64;
                if best.is_none_or(|b: usize| current[i] > current[b]) {
                    best = Some(i);
                }
            }
            if let Some(b) = best {
                current[b] -= total;
                order.push(b as u32);
            }
        }
        SmoothRoundRobin {
            order,
            next: AtomicUsize::new(0),
        }
    }

    fn pick(&self, targets: &[Arc<Target>], eligible: impl Fn(usize) -> bool) -> Option<usize> {
        if self.order.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let i = self.order[n % self.order.len()] as usize;
        if eligible(i) {
            let factor = targets[i].factor();
            if factor >= Target::FULL || fastrand::u32(..Target::FULL) < factor {
                return Some(i);
            }
        }
        weighted_random(targets, eligible)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The target with the fewest requests in flight relative to its weight. Ties are
/// broken by a rotating start, so equal targets share the load instead of the first
/// one taking it all.
fn least_outstanding(
    targets: &[Arc<Target>],
    offset: &AtomicUsize,
    eligible: impl Fn(usize) -> bool,
) -> Option<usize> {
    let n = targets.len();
    if n == 0 {
        return None;
    }
    let start = offset.fetch_add(1, Ordering::Relaxed) % n;
    let mut best: Option<(usize, u64, u64)> = None; // (index, load, weight)
    for k in 0..n {
        let i = (start + k) % n;
        let w = targets[i].effective_weight();
        if w == 0 || !eligible(i) {
            continue;
        }
        let load = u64::from(targets[i].in_flight());
        // load/w < best_load/best_w, without division.
        let better = best.is_none_or(|(_, bl, bw)| load * bw < bl * w);
        if better {
            best = Some((i, load, w));
        }
    }
    best.map(|(i, _, _)| i)
}

/// A target chosen at random with probability proportional to its weight.
fn weighted_random(targets: &[Arc<Target>], eligible: impl Fn(usize) -> bool) -> Option<usize> {
    let total: u64 = (0..targets.len())
        .filter(|&i| eligible(i))
        .map(|i| targets[i].effective_weight())
        .sum();
    if total == 0 {
        return None;
    }
    let mut r = fastrand::u64(..total);
    for (i, t) in targets.iter().enumerate() {
        if !eligible(i) {
            continue;
        }
        let w = t.effective_weight();
        if r < w {
            return Some(i);
        }
        r -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn targets(weights: &[u32]) -> Vec<Arc<Target>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let addr = format!("127.0.0.1:{}", 1000 + i).parse().expect("addr");
                Arc::new(Target::new("g", addr, *w, Duration::from_secs(1)))
            })
            .collect()
    }

    fn counts(
        b: &Balancer,
        ts: &[Arc<Target>],
        n: usize,
        eligible: impl Fn(usize) -> bool + Copy,
    ) -> Vec<usize> {
        let mut c = vec![0; ts.len()];
        for _ in 0..n {
            c[b.pick(ts, eligible).expect("a pick")] += 1;
        }
        c
    }

    #[test]
    fn smooth_round_robin_is_exact_and_spread() {
        let ts = targets(&[5, 1, 1]);
        let b = Balancer::new(Algorithm::RoundRobin, &ts);
        let Balancer::RoundRobin(rr) = &b else {
            unreachable!()
        };
        assert_eq!(rr.order, vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(counts(&b, &ts, 700, |_| true), vec![500, 100, 100]);
    }

    #[test]
    fn round_robin_spreads_a_missing_targets_share_by_weight() {
        let ts = targets(&[1, 1, 2]);
        let b = Balancer::new(Algorithm::RoundRobin, &ts);
        let c = counts(&b, &ts, 40_000, |i| i != 0);
        // Target 0's quarter goes to 1 and 2 in proportion 1:2.
        let share1 = c[1] as f64 / 40_000.0;
        assert!((share1 - 1.0 / 3.0).abs() < 0.02, "{c:?}");
    }

    #[test]
    fn heavy_weights_are_scaled_into_a_bounded_order() {
        let ts = targets(&[999, 998, 1, 500, 7, 3, 2, 1, 900, 999]);
        let b = Balancer::new(Algorithm::RoundRobin, &ts);
        let Balancer::RoundRobin(rr) = &b else {
            unreachable!()
        };
        assert!(rr.order.len() as u64 <= SmoothRoundRobin::MAX_ORDER + 10);
        assert!(rr.order.contains(&7), "every non-zero weight keeps a slot");
    }

    /// Every algorithm gives a target its share by effective weight: a target cut
    /// to a quarter (slow start or mitigation) gets a quarter of a fair share.
    #[test]
    fn effective_weights_shape_every_algorithm() {
        for alg in [Algorithm::RoundRobin, Algorithm::WeightedRandom] {
            let ts = targets(&[1, 1, 1, 1]);
            ts[0].set_mitigation_factor(250);
            let b = Balancer::new(alg, &ts);
            let c = counts(&b, &ts, 40_000, |_| true);
            // Fair share of 0: 0.25 / (0.25 + 3) of the picks.
            let share = c[0] as f64 / 40_000.0;
            assert!((share - 0.25 / 3.25).abs() < 0.012, "{alg:?} {c:?}");
        }
        // Least outstanding: with 4 requests held on each of the others, the cut
        // target takes requests until its load per effective weight catches up.
        let ts = targets(&[1, 1]);
        ts[0].set_slow_start_factor(500);
        let b = Balancer::new(Algorithm::LeastOutstandingRequests, &ts);
        let held: Vec<_> = (0..4).map(|_| ts[1].begin_request()).collect();
        let mut taken = Vec::new();
        while b.pick(&ts, |_| true) == Some(0) {
            taken.push(ts[0].begin_request());
        }
        // Half the weight: half the requests in flight (a tie may go either way).
        assert!((2..=3).contains(&taken.len()), "{}", taken.len());
        drop(held);
    }

    #[test]
    fn zero_weight_is_never_chosen() {
        let ts = targets(&[0, 1]);
        for alg in [
            Algorithm::RoundRobin,
            Algorithm::LeastOutstandingRequests,
            Algorithm::WeightedRandom,
        ] {
            let b = Balancer::new(alg, &ts);
            assert_eq!(counts(&b, &ts, 100, |_| true)[0], 0, "{alg:?}");
        }
    }

    #[test]
    fn weighted_random_follows_weights() {
        let ts = targets(&[1, 3]);
        let b = Balancer::new(Algorithm::WeightedRandom, &ts);
        let c = counts(&b, &ts, 40_000, |_| true);
        let share = c[1] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "{c:?}");
    }

    #[test]
    fn least_outstanding_prefers_the_least_loaded() {
        let ts = targets(&[1, 1, 1]);
        let _busy: Vec<_> = (0..3).map(|_| ts[0].begin_request()).collect();
        let _one = ts[1].begin_request();
        let b = Balancer::new(Algorithm::LeastOutstandingRequests, &ts);
        assert_eq!(counts(&b, &ts, 10, |_| true), vec![0, 0, 10]);
        // Equal loads share.
        let c = counts(&b, &ts, 100, |i| i != 2);
        assert_eq!(c, vec![0, 100, 0]);
    }

    #[test]
    fn nothing_eligible_is_none() {
        let ts = targets(&[1, 1]);
        for alg in [
            Algorithm::RoundRobin,
            Algorithm::LeastOutstandingRequests,
            Algorithm::WeightedRandom,
        ] {
            assert_eq!(Balancer::new(alg, &ts).pick(&ts, |_| false), None);
        }
    }
}

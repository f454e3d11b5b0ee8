//! One reading of the traffic counters, and the rates and latency percentiles
//! between two readings: the arithmetic behind the dashboard's history
//! (`history.rs`).
//!
//! Control path, pure functions. A [`Reading`] copies what the data path counted
//! (responses by class, the latency histogram's cumulative buckets) from the same
//! cells `/metrics` renders (`Snapshot::metric_views`), so the charts and a
//! Prometheus scrape can never disagree. Counters only grow while their cells
//! live; a cell that was replaced (a listener removed and added again) can read
//! lower than before, so every difference saturates at zero instead of going
//! negative. Percentiles are estimated from the histogram of the interval's
//! requests only (the difference of two readings), interpolating linearly inside
//! the bucket the rank falls in, as Prometheus' `histogram_quantile` does: the
//! first bucket starts at 0, and a rank in the `+Inf` bucket reads as the last
//! finite bound (10 s), the most that can be said of it.

use ballast_proxy::{CodeCounts, Histogram, BUCKETS};

/// Cumulative bucket counts (`BUCKETS.len()` bounds, then `+Inf`, the total).
pub type Buckets = [u64; BUCKETS.len() + 1];

/// The counters of one listener or target at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// Responses, any status.
    pub requests: u64,
    pub r4xx: u64,
    pub r5xx: u64,
    /// Connections to a target that failed (always 0 for a listener).
    pub connection_errors: u64,
    /// A gauge, not a counter: a listener's open client connections at the
    /// reading (0 for a target).
    pub open: u64,
    pub latency: Buckets,
}

impl Reading {
    pub fn of(requests: &CodeCounts, latency: &Histogram, connection_errors: u64) -> Reading {
        Reading {
            requests: requests.sum(100..600),
            r4xx: requests.sum(400..500),
            r5xx: requests.sum(500..600),
            connection_errors,
            open: 0,
            latency: latency.read().0,
        }
    }

    /// What was counted since `earlier` (each figure saturating at zero); the
    /// gauge `open` is this reading's.
    pub fn since(&self, earlier: &Reading) -> Reading {
        Reading {
            requests: self.requests.saturating_sub(earlier.requests),
            r4xx: self.r4xx.saturating_sub(earlier.r4xx),
            r5xx: self.r5xx.saturating_sub(earlier.r5xx),
            connection_errors: self
                .connection_errors
                .saturating_sub(earlier.connection_errors),
            open: self.open,
            latency: std::array::from_fn(|i| self.latency[i].saturating_sub(earlier.latency[i])),
        }
    }

    /// The sum of two intervals' counts (a group is the sum of its targets).
    pub fn plus(&self, other: &Reading) -> Reading {
        Reading {
            requests: self.requests + other.requests,
            r4xx: self.r4xx + other.r4xx,
            r5xx: self.r5xx + other.r5xx,
            connection_errors: self.connection_errors + other.connection_errors,
            open: self.open + other.open,
            latency: std::array::from_fn(|i| self.latency[i] + other.latency[i]),
        }
    }
}

/// One point of a series: an interval's counts as rates per second and its
/// latency percentiles in milliseconds (`None` without a request).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Unix time in milliseconds at the end of the interval.
    pub t: u64,
    pub rps: f64,
    pub r4xx: f64,
    pub r5xx: f64,
    pub conn_err: f64,
    /// Open connections at the end of the interval.
    pub open: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Point {
    /// `delta` (counts over an interval of `seconds`, ending at `t`) as a point.
    pub fn new(t: u64, delta: &Reading, seconds: f64) -> Point {
        let per_s = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        let ms = |q| quantile(&delta.latency, q).map(|s| s * 1000.0);
        Point {
            t,
            rps: per_s(delta.requests),
            r4xx: per_s(delta.r4xx),
            r5xx: per_s(delta.r5xx),
            conn_err: per_s(delta.connection_errors),
            open: delta.open,
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
        }
    }
}

/// The `q`-quantile (0..=1) in seconds of the requests counted in `buckets`
/// (cumulative), or `None` if there are none.
pub fn quantile(buckets: &Buckets, q: f64) -> Option<f64> {
    let total = *buckets.last()?;
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    // The first bucket whose cumulative count reaches the rank.
    let i = buckets.iter().position(|&c| c as f64 >= rank)?;
    let Some(&upper) = BUCKETS.get(i) else {
        return BUCKETS.last().copied();
    };
    let (lower, below) = match i.checked_sub(1) {
        Some(j) => (BUCKETS[j], buckets[j]),
        None => (0.0, 0),
    };
    let inside = buckets[i] - below;
    if inside == 0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below as f64) / inside as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn buckets(observations: &[(Duration, u64)]) -> Buckets {
        let h = Histogram::default();
        for &(d, n) in observations {
            for _ in 0..n {
                h.observe(d);
            }
        }
        h.read().0
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn no_requests_no_percentile() {
        assert_eq!(quantile(&[0; BUCKETS.len() + 1], 0.5), None);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        // 100 requests, all in (1 ms, 2.5 ms]: the median is halfway through it.
        let b = buckets(&[(Duration::from_millis(2), 100)]);
        assert!(close(quantile(&b, 0.5), 0.00175));
        assert!(close(quantile(&b, 0.9), 0.001 + 0.0015 * 0.9));
        // 90 fast (≤ 0.5 ms, the first bucket, from 0) and 10 slow (in (50, 100] ms).
        let b = buckets(&[
            (Duration::from_micros(300), 90),
            (Duration::from_millis(80), 10),
        ]);
        assert!(close(quantile(&b, 0.5), 0.0005 * 50.0 / 90.0));
        assert!(close(quantile(&b, 0.8), 0.0005 * 80.0 / 90.0));
        assert!(close(quantile(&b, 0.99), 0.05 + 0.05 * 9.0 / 10.0));
    }

    #[test]
    fn a_rank_past_the_last_bound_reads_as_the_last_bound() {
        let b = buckets(&[(Duration::from_millis(1), 1), (Duration::from_secs(30), 99)]);
        assert!(close(quantile(&b, 0.99), 10.0));
    }

    #[test]
    fn percentiles_come_from_the_interval_only() {
        let h = Histogram::default();
        let codes = CodeCounts::default();
        for _ in 0..1000 {
            h.observe(Duration::from_secs(3)); // a slow past
            codes.inc(200);
        }
        let before = Reading::of(&codes, &h, 0);
        for _ in 0..10 {
            h.observe(Duration::from_micros(200));
            codes.inc(404);
        }
        codes.inc(503);
        h.observe(Duration::from_micros(200));
        let delta = Reading::of(&codes, &h, 2).since(&before);
        assert_eq!((delta.requests, delta.r4xx, delta.r5xx), (11, 10, 1));
        let p = Point::new(7, &delta, 2.0);
        assert_eq!(
            (p.t, p.rps, p.r4xx, p.r5xx, p.conn_err),
            (7, 5.5, 5.0, 0.5, 1.0)
        );
        // All eleven in the first bucket: well under 0.5 ms, not near 3 s.
        assert!(p.p99_ms.is_some_and(|ms| ms <= 0.5));
    }

    #[test]
    fn a_counter_that_went_back_counts_zero() {
        let later = Reading {
            requests: 5,
            ..Reading::default()
        };
        let earlier = Reading {
            requests: 9,
            r5xx: 2,
            ..Reading::default()
        };
        assert_eq!(later.since(&earlier), Reading::default());
        let p = Point::new(1, &Reading::default(), 5.0);
        assert_eq!((p.rps, p.p50_ms), (0.0, None));
    }

    #[test]
    fn a_group_sums_its_targets() {
        let a = Reading {
            requests: 3,
            r5xx: 1,
            latency: [1; BUCKETS.len() + 1],
            ..Reading::default()
        };
        let sum = a.plus(&a);
        assert_eq!((sum.requests, sum.r5xx, sum.latency[0]), (6, 2, 2));
    }
}

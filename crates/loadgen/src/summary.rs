//! The result of a run in report units (milliseconds, per second), computed once from
//! the merged tally; the text report, the JSON document and the plot all read this, so
//! they cannot disagree.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::outcome::ErrorKind;
use crate::plan::Plan;
use crate::stats::Tally;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

/// One second of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Seconds since measuring started, at the start of this bucket.
    pub t: f64,
    pub requests: u64,
    pub errors: u64,
    /// Responses per second (the last bucket may be shorter than a second).
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Summary {
    pub url: String,
    pub description: String,
    pub connections: u32,
    pub threads: usize,
    pub http2: bool,
    pub rate: Option<f64>,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    pub duration: Duration,
    /// Responses received (any status).
    pub requests: u64,
    /// Response body bytes.
    pub bytes: u64,
    pub status: BTreeMap<u16, u64>,
    pub errors: Vec<(&'static str, u64)>,
    pub late: u64,
    pub latency: Latency,
    /// Of 2xx responses only.
    pub latency_2xx: Latency,
    pub timeline: Vec<Point>,
    /// The latency distribution as HdrHistogram prints it: (percentile as a
    /// fraction, latency in ms) from 0 up to the largest value, five steps per
    /// halving of the distance to 100%.
    pub distribution: Vec<(f64, f64)>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn latency(h: &Histogram<u64>) -> Latency {
    let q = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            ms(h.value_at_quantile(q))
        }
    };
    Latency {
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        p9999: q(0.9999),
        max: if h.is_empty() { 0.0 } else { ms(h.max()) },
    }
}

impl Summary {
    pub fn new(plan: &Plan, tally: &Tally, duration: Duration, interrupted: bool) -> Self {
        let total = duration.as_secs_f64();
        let timeline = tally
            .seconds
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let t = i as f64;
                let width = (total - t).clamp(1e-3, 1.0);
                let l = latency(&s.latency);
                Point {
                    t,
                    requests: s.responses,
                    errors: s.errors,
                    rps: s.responses as f64 / width,
                    p50_ms: l.p50,
                    p99_ms: l.p99,
                    max_ms: l.max,
                }
            })
            .collect();
        Self {
            url: plan.url.to_string(),
            description: plan.describe(),
            connections: plan.connections,
            threads: plan.threads,
            http2: plan.http2,
            rate: plan.rate,
            interrupted,
            duration,
            requests: tally.responses,
            bytes: tally.bytes,
            status: (0u16..)
                .zip(&tally.status)
                .filter(|(_, n)| **n > 0)
                .map(|(code, n)| (code, *n))
                .collect(),
            errors: ErrorKind::ALL
                .iter()
                .map(|k| (k.name(), tally.errors[k.index()]))
                .collect(),
            late: tally.late,
            latency: latency(&tally.latency),
            latency_2xx: latency(&tally.latency_2xx),
            timeline,
            distribution: tally
                .latency
                .iter_quantiles(5)
                .map(|v| {
                    let value = tally.latency.highest_equivalent(v.value_iterated_to());
                    (v.quantile_iterated_to(), ms(value.min(tally.latency.max())))
                })
                .collect(),
        }
    }

    pub fn seconds(&self) -> f64 {
        self.duration.as_secs_f64()
    }

    pub fn rps(&self) -> f64 {
        per_second(self.requests, self.seconds())
    }

    pub fn bytes_per_s(&self) -> f64 {
        per_second(self.bytes, self.seconds())
    }

    pub fn error_count(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }
}

fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

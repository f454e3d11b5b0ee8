//! A target group's load-shedding cells: the concurrency limit its controller
//! publishes, the requests in flight against it, the requests shed, and the
//! latencies of the current window (`ballast_concurrency_limit`,
//! `ballast_concurrency_in_flight`, `ballast_shed_requests_total`,
//! `ballast_concurrency_latency_seconds`).
//!
//! Data path for counting, control path for reading. A request takes its place
//! with one compare-and-swap of the in-flight count against the limit (so ten
//! requests racing for two places get exactly two), records its latency with two
//! atomic adds when its response head arrives (`Admitted::answered`), and gives
//! its place back when its response body ends (the guard's drop). The
//! controller (`resilience/shedding.rs`) empties the window on its tick with a
//! swap of each accumulator and stores the new limit; no lock anywhere. The cells
//! belong to the group's `GroupMetrics`, kept by name across reloads, so a reload
//! keeps the limit it had learnt.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_config::shedding::LoadShedding;

use crate::observe::exposition::{family, sample};

#[derive(Default)]
pub struct ShedCells {
    limit: AtomicU32,
    in_flight: AtomicU32,
    /// The highest in-flight count since the controller last looked.
    peak: AtomicU32,
    shed: AtomicU64,
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
    /// The mean latency of the last window the controller decided on, in µs.
    measured_us: AtomicU64,
}

/// What the controller reads off one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Mean latency (admission to response head) of the requests answered.
    pub latency: Duration,
    /// How many were answered.
    pub requests: u64,
    /// The most requests in flight at once.
    pub peak: u32,
}

/// A request's place among the group's requests in flight, given back on drop.
pub struct Admitted {
    cells: Arc<ShedCells>,
    since: Instant,
}

impl Admitted {
    /// The response head arrived (or the request failed): its latency joins the
    /// window.
    pub fn answered(&self) {
        let us = u64::try_from(self.since.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.cells.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        self.cells.latency_count.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.cells.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ShedCells {
    /// Bring the limit within the bounds of `config` (at a snapshot's build, so
    /// the data path never sees an unset one): the first time it is `max_limit`,
    /// after that the limit learnt so far, clamped.
    pub fn configure(&self, config: &LoadShedding) {
        let now = self.limit.load(Ordering::Relaxed);
        let limit = if now == 0 {
            config.max_limit
        } else {
            now.clamp(config.min_limit, config.max_limit)
        };
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Take a place if fewer than the limit are in flight; otherwise count the
    /// request as shed.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let limit = self.limit.load(Ordering::Relaxed);
        match self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            }) {
            Ok(before) => {
                if before + 1 > self.peak.load(Ordering::Relaxed) {
                    self.peak.fetch_max(before + 1, Ordering::Relaxed);
                }
                Some(Admitted {
                    cells: self.clone(),
                    since: Instant::now(),
                })
            }
            Err(_) => {
                self.shed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The window so far, emptied, once it holds at least `min_requests`
    /// answers (`None`, and the window keeps growing, before that).
    pub fn take_window(&self, min_requests: u64) -> Option<Sample> {
        if self.latency_count.load(Ordering::Relaxed) < min_requests {
            return None;
        }
        let requests = self.latency_count.swap(0, Ordering::Relaxed);
        let sum = self.latency_sum_us.swap(0, Ordering::Relaxed);
        let now = self.in_flight.load(Ordering::Relaxed);
        let peak = self.peak.swap(now, Ordering::Relaxed).max(now);
        Some(Sample {
            latency: Duration::from_micros(sum / requests.max(1)),
            requests,
            peak,
        })
    }

    /// The controller's decision: the new limit, and the latency it saw.
    pub fn publish(&self, limit: u32, measured: Duration) {
        self.limit.store(limit, Ordering::Relaxed);
        let us = u64::try_from(measured.as_micros()).unwrap_or(u64::MAX);
        self.measured_us.store(us, Ordering::Relaxed);
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// The mean latency of the last window decided on (zero before the first).
    pub fn measured(&self) -> Duration {
        Duration::from_micros(self.measured_us.load(Ordering::Relaxed))
    }
}

/// The load-shedding families, for the groups that have `load_shedding`.
pub fn render(out: &mut String, groups: &[(&str, &ShedCells)]) {
    let families: [(&str, &str, &str); 4] = [
        ("ballast_concurrency_limit", "gauge", "The adaptive concurrency limit of the target group (load_shedding)."),
        ("ballast_concurrency_in_flight", "gauge", "Requests in flight counted against the target group's concurrency limit."),
        ("ballast_shed_requests_total", "counter", "Requests answered 503 shed because the target group was at its concurrency limit."),
        ("ballast_concurrency_latency_seconds", "gauge", "Mean latency (admission to response head) of the last window the concurrency controller decided on."),
    ];
    for (name, kind, help) in families {
        family(out, name, kind, help);
        for (group, cells) in groups {
            let labels = [("target_group", *group)];
            match name {
                "ballast_concurrency_limit" => sample(out, name, &labels, cells.limit()),
                "ballast_concurrency_in_flight" => sample(out, name, &labels, cells.in_flight()),
                "ballast_shed_requests_total" => sample(out, name, &labels, cells.shed()),
                _ => sample(out, name, &labels, cells.measured().as_secs_f64()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(limit: u32) -> Arc<ShedCells> {
        let c = Arc::new(ShedCells::default());
        c.publish(limit, Duration::ZERO);
        c
    }

    #[test]
    fn the_limit_gives_exactly_its_places_and_takes_them_back() {
        let c = cells(2);
        let a = c.admit().expect("first");
        let _b = c.admit().expect("second");
        assert!(c.admit().is_none());
        assert_eq!((c.in_flight(), c.shed()), (2, 1));
        drop(a);
        assert!(c.admit().is_some());
        assert_eq!(c.shed(), 1);
    }

    #[test]
    fn a_window_is_taken_once_it_has_enough_answers() {
        let c = cells(10);
        let held: Vec<_> = (0..3).filter_map(|_| c.admit()).collect();
        held[0].answered();
        assert_eq!(c.take_window(2), None);
        held[1].answered();
        let w = c.take_window(2).expect("two answers");
        assert_eq!((w.requests, w.peak), (2, 3));
        drop(held);
        // Emptied: the next window starts from nothing; its peak from the three
        // in flight when it began.
        assert_eq!(c.take_window(1), None);
        let one = c.admit().expect("place");
        one.answered();
        assert_eq!(c.take_window(1).expect("one").peak, 3);
        one.answered();
        assert_eq!(c.take_window(1).expect("one").peak, 1);
    }

    #[test]
    fn configure_starts_at_the_max_and_then_keeps_what_was_learnt() {
        let mut config = LoadShedding {
            latency_target: Duration::from_millis(50),
            window: Duration::from_millis(100),
            min_limit: 4,
            max_limit: 100,
        };
        let c = ShedCells::default();
        c.configure(&config);
        assert_eq!(c.limit(), 100);
        c.publish(30, Duration::ZERO);
        c.configure(&config);
        assert_eq!(c.limit(), 30);
        config.max_limit = 20;
        c.configure(&config);
        assert_eq!(c.limit(), 20);
    }
}

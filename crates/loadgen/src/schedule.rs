//! When each request is sent: closed loop (back to back) or open loop (a constant
//! arrival rate), and which requests fall inside the measured window.
//!
//! Open loop follows wrk2: the run has one global arrival sequence, request `j`
//! intended at `origin + j / rate`, dealt round-robin to the `L` lanes (a lane is an
//! HTTP/1.1 connection, or one stream slot of an HTTP/2 connection), so lane `k` sends
//! `j = i·L + k` for `i = 0, 1, 2…`. Arrivals are therefore evenly spaced across the
//! whole run, not bunched per connection. A lane that falls behind (its previous
//! response came back after its next intended start) sends at once and the latency is
//! still measured from the *intended* start: the time a real user would have waited.
//! Measuring from the actual send instead is coordinated omission, which hides stalls.
//! A request sent more than [`LATE_SLACK`] after its intended start counts as `late`.
//!
//! Closed loop has no timetable: each lane sends its next request when the previous
//! answer arrived. With `-n`, lanes claim requests from one shared atomic budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// How far behind its intended start a request may leave and still be on time. The
/// tokio timer wheel has a 1 ms resolution, so a sleep can overshoot by about that much.
pub const LATE_SLACK: Duration = Duration::from_millis(2);

/// The run's clock: when load starts, when measuring starts (after warm-up) and, for
/// `-d`, when it ends.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub origin: Instant,
    pub measure_from: Instant,
    pub end: Option<Instant>,
}

impl Window {
    /// Seconds since measuring started (negative during warm-up).
    pub fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.measure_from)
    }

    pub fn has_ended(&self, now: Instant) -> bool {
        self.end.is_some_and(|end| now >= end)
    }
}

/// What a lane should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send now (closed loop).
    Now,
    /// Send at this intended instant (open loop).
    At(Instant),
    /// This lane is finished.
    Done,
}

/// Whether the request about to be sent is recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    Measured,
    Unmeasured,
    Done,
}

/// One lane's pacing state.
#[derive(Debug)]
pub enum Lane {
    Closed {
        window: Window,
        /// Requests left to claim with `-n`; `None` with `-d`.
        budget: Option<Arc<AtomicU64>>,
    },
    Open {
        window: Window,
        rate: f64,
        index: u64,
        lanes: u64,
        /// This lane's next `i`; its sequence number is `i·lanes + index`.
        next: u64,
        /// First sequence number intended at or after `measure_from`.
        first_measured: u64,
        /// With `-n`: one past the last measured sequence number.
        end_seq: Option<u64>,
    },
}

impl Lane {
    /// A closed-loop lane.
    pub fn closed(window: Window, budget: Option<Arc<AtomicU64>>) -> Self {
        Lane::Closed { window, budget }
    }

    /// Lane `index` of `lanes` in an open loop at `rate` requests per second in total.
    pub fn open(window: Window, rate: f64, index: u64, lanes: u64, requests: Option<u64>) -> Self {
        let warmup = window
            .measure_from
            .duration_since(window.origin)
            .as_secs_f64();
        let first_measured = (warmup * rate).ceil() as u64;
        Lane::Open {
            window,
            rate,
            index,
            lanes,
            next: 0,
            first_measured,
            end_seq: requests.map(|n| first_measured + n),
        }
    }

    /// The global sequence number of this lane's next request (open loop only).
    pub fn seq(&self) -> Option<u64> {
        match self {
            Lane::Closed { .. } => None,
            Lane::Open {
                index, lanes, next, ..
            } => Some(next * lanes + index),
        }
    }

    /// When the next request should leave.
    pub fn next(&self, now: Instant) -> Next {
        match self {
            Lane::Closed { window, budget } => {
                let spent = budget
                    .as_ref()
                    .is_some_and(|b| b.load(Ordering::Relaxed) == 0);
                if spent || window.has_ended(now) {
                    Next::Done
                } else {
                    Next::Now
                }
            }
            Lane::Open {
                window,
                rate,
                end_seq,
                ..
            } => {
                let seq = self.seq().unwrap_or_default();
                if end_seq.is_some_and(|end| seq >= end) {
                    return Next::Done;
                }
                let at = window.origin + intended_offset(seq, *rate);
                if window.has_ended(at) {
                    Next::Done
                } else {
                    Next::At(at)
                }
            }
        }
    }

    /// Commits to sending the next request at `sent` and says whether it is measured.
    pub fn take(&mut self, sent: Instant) -> Take {
        match self {
            Lane::Closed { window, budget } => {
                if window.has_ended(sent) {
                    return Take::Done;
                }
                if sent < window.measure_from {
                    return Take::Unmeasured;
                }
                match budget {
                    None => Take::Measured,
                    Some(b) => match b
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    {
                        Ok(_) => Take::Measured,
                        Err(_) => Take::Done,
                    },
                }
            }
            Lane::Open {
                index,
                lanes,
                next,
                first_measured,
                ..
            } => {
                let seq = *next * *lanes + *index;
                *next += 1;
                if seq >= *first_measured {
                    Take::Measured
                } else {
                    Take::Unmeasured
                }
            }
        }
    }
}

/// `seq / rate` as a `Duration`, exact to the nanosecond for any realistic run.
pub fn intended_offset(seq: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(seq as f64 / rate)
}

/// Whether a request sent at `sent` missed its intended start.
pub fn is_late(intended: Instant, sent: Instant) -> bool {
    sent.saturating_duration_since(intended) > LATE_SLACK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(warmup_ms: u64, run_ms: Option<u64>) -> Window {
        let origin = Instant::now();
        let measure_from = origin + Duration::from_millis(warmup_ms);
        Window {
            origin,
            measure_from,
            end: run_ms.map(|ms| measure_from + Duration::from_millis(ms)),
        }
    }

    /// Walks every lane to its end and returns (intended offset in µs, measured) pairs.
    fn walk(lanes: Vec<Lane>, origin: Instant) -> Vec<(u128, bool)> {
        let mut out = Vec::new();
        for mut lane in lanes {
            while let Next::At(at) = lane.next(origin) {
                let measured = lane.take(at) == Take::Measured;
                out.push((at.duration_since(origin).as_micros(), measured));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn open_loop_interleaves_lanes_into_one_even_sequence() {
        let w = window(0, Some(1000));
        let lanes = (0..3).map(|k| Lane::open(w, 100.0, k, 3, None)).collect();
        let sent = walk(lanes, w.origin);
        assert_eq!(sent.len(), 100, "rate × duration requests");
        for (i, (at_us, measured)) in sent.iter().enumerate() {
            assert_eq!(
                *at_us,
                i as u128 * 10_000,
                "request {i} 10 ms after the previous"
            );
            assert!(measured);
        }
    }

    #[test]
    fn lane_k_sends_every_lanes_th_arrival() {
        let w = window(0, None);
        let mut lane = Lane::open(w, 1000.0, 2, 5, None);
        let mut seqs = Vec::new();
        for _ in 0..4 {
            seqs.push(lane.seq().unwrap_or_default());
            lane.take(w.origin);
        }
        assert_eq!(seqs, [2, 7, 12, 17]);
    }

    #[test]
    fn open_loop_warmup_and_request_count() {
        // 200 ms of warm-up at 50/s = 10 unmeasured arrivals, then exactly 25 measured.
        let w = window(200, None);
        let lanes = (0..4)
            .map(|k| Lane::open(w, 50.0, k, 4, Some(25)))
            .collect();
        let sent = walk(lanes, w.origin);
        assert_eq!(sent.iter().filter(|(_, m)| !m).count(), 10);
        assert_eq!(sent.iter().filter(|(_, m)| *m).count(), 25);
        assert!(sent.iter().all(|(at, m)| *m == (*at >= 200_000)));
    }

    #[test]
    fn intended_offsets_do_not_drift() {
        assert_eq!(intended_offset(0, 3.0), Duration::ZERO);
        assert_eq!(
            intended_offset(3_000_000, 3.0),
            Duration::from_secs(1_000_000)
        );
        assert_eq!(intended_offset(1, 0.5), Duration::from_secs(2));
    }

    #[test]
    fn closed_loop_budget_is_shared_exactly() {
        let w = window(0, None);
        let budget = Arc::new(AtomicU64::new(1000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let mut lane = Lane::closed(w, Some(budget.clone()));
                std::thread::spawn(move || {
                    let mut n = 0;
                    while lane.next(w.origin) == Next::Now
                        && lane.take(Instant::now()) == Take::Measured
                    {
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        assert_eq!(total, 1000);
    }

    #[test]
    fn closed_loop_warmup_is_unmeasured_and_end_stops() {
        let w = window(100, Some(100));
        let mut lane = Lane::closed(w, None);
        assert_eq!(lane.take(w.origin), Take::Unmeasured);
        assert_eq!(lane.take(w.measure_from), Take::Measured);
        assert_eq!(
            lane.next(w.measure_from + Duration::from_millis(100)),
            Next::Done
        );
    }

    #[test]
    fn lateness_has_slack_for_the_timer() {
        let t = Instant::now();
        assert!(!is_late(t, t + Duration::from_millis(1)));
        assert!(is_late(t, t + Duration::from_millis(3)));
        assert!(!is_late(t + Duration::from_millis(5), t));
    }
}

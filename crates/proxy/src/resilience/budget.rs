//! The retry budget (Linkerd's and Envoy's): retries may add at most a share of
//! the group's requests, plus a small floor, so that a failure of the whole fleet
//! can never multiply the load on it — every request failing costs the targets
//! at most (1 + ratio) times the requests, not (1 + attempts) times.
//!
//! Data path, a gate. Signal: the group's requests and retries per second over
//! the last 10 s (`observe::group::Window`, one atomic add per request of a group
//! with `retry`). Decision, at each retry: the retries of the window, this one
//! included, must stay within `ratio` × the requests of the window +
//! `min_per_second` × the seconds the window covers. Bounds: the floor lets a group
//! with little traffic retry at all (ratio × 3 requests is no retry); counting it
//! per second covered (the second under way counts whole, up to 10) rather than
//! granting 10 s of it at once keeps "(1 + ratio) × requests + floor × seconds"
//! true over any stretch of time, from a group's first request on. Why a window
//! and not a token bucket refilled by a task: the window needs no task (the
//! slots turn themselves, `Window`), and an operator can check the figures
//! (requests, retries, seconds) the decision was made from.
//!
//! A retry is counted before it is checked and taken back when refused, so
//! retries racing each other see each other: the bound holds under concurrency,
//! never overshooting (at worst one of two racers is refused that could have gone).

use ballast_config::resilience::RetryBudget;

use crate::observe::group::{Sums, Window};

/// Whether the retries in `sums` (the one asked for included) fit the budget.
pub fn fits(budget: &RetryBudget, sums: &Sums) -> bool {
    let allowed = budget.ratio * sums.requests as f64
        + f64::from(budget.min_per_second) * sums.seconds as f64;
    sums.retries as f64 <= allowed
}

/// Count a request of the group towards its budget.
pub fn request(window: &Window, now_ms: u64) {
    window.request(now_ms);
}

/// Take one retry from the budget: `true` if it fits (and is now counted).
pub fn withdraw(window: &Window, budget: &RetryBudget, now_ms: u64) -> bool {
    window.retry(now_ms);
    if fits(budget, &window.sums(now_ms)) {
        return true;
    }
    window.unretry(now_ms);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, min_per_second: u32) -> RetryBudget {
        RetryBudget {
            ratio,
            min_per_second,
        }
    }

    #[test]
    fn retries_fit_within_ratio_plus_floor() {
        let b = budget(0.2, 10);
        let at = |requests, retries, seconds| Sums {
            requests,
            retries,
            seconds,
        };
        // 1,000 requests over 10 s: 200 + 100 retries.
        assert!(fits(&b, &at(1000, 300, 10)));
        assert!(!fits(&b, &at(1000, 301, 10)));
        // The floor alone, 1 s into a group's life.
        assert!(fits(&b, &at(0, 10, 1)));
        assert!(!fits(&b, &at(0, 11, 1)));
        // No floor: the ratio alone; no ratio: the floor alone.
        assert!(!fits(&budget(0.2, 0), &at(4, 1, 10)));
        assert!(fits(&budget(0.2, 0), &at(5, 1, 10)));
        assert!(fits(&budget(0.0, 1), &at(1000, 10, 10)));
        assert!(!fits(&budget(0.0, 1), &at(1000, 11, 10)));
    }

    /// Every request failing and retried at once, 50 requests a second for 20 s:
    /// the retries stay within ratio × requests + floor × seconds at every moment,
    /// and settle at what the budget allows.
    #[test]
    fn a_fleet_wide_failure_never_multiplies_the_load() {
        let b = budget(0.2, 2);
        let w = Window::default();
        let (mut requests, mut retries) = (0u64, 0u64);
        for i in 0..1000u64 {
            let now = 1_000 + i * 20;
            request(&w, now);
            requests += 1;
            // Up to 2 retries per request (attempts = 2).
            for _ in 0..2 {
                if withdraw(&w, &b, now) {
                    retries += 1;
                }
            }
            let seconds = (now - 1_000) / 1000 + 1;
            let bound = 0.2 * requests as f64 + 2.0 * seconds as f64;
            assert!(
                retries as f64 <= bound,
                "{retries} retries > {bound} at {now} ms"
            );
        }
        // In steady state: 0.2 × 500 + 2 × 10 = 120 retries per 10 s window.
        let s = w.sums(1_000 + 999 * 20);
        assert_eq!(s.seconds, 10);
        assert!((100..=120).contains(&s.retries), "{s:?}");
        assert!(retries <= 20 * 12 + 20, "{retries}");
    }
}

//! The anomaly detector's latest verdict on one target, and the figures behind it.
//!
//! Control path only: `resilience/anomaly.rs` writes it once per tick, the admin
//! API and the metrics scrape read it; the data path never touches it. It lives in
//! the `Target` so that it survives reloads with it. Each figure is its own atomic:
//! a reader may see figures of two consecutive ticks side by side, which is fine
//! for a report refreshed every second.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Shares are kept in millionths.
const PPM: f64 = 1_000_000.0;

#[derive(Default)]
pub struct Verdict {
    anomalous: AtomicBool,
    error_ppm: AtomicU32,
    baseline_ppm: AtomicU32,
    requests: AtomicU64,
}

/// One verdict as read: the result and what it was based on.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct VerdictView {
    pub anomalous: bool,
    /// The target's share of 5xx answers and connection failures over the window.
    pub error_rate: f64,
    /// Its peers' median share over the same window.
    pub baseline: f64,
    /// Requests (answers and connection failures) in the window.
    pub requests: u64,
}

fn ppm(share: f64) -> u32 {
    (share.clamp(0.0, 1.0) * PPM).round() as u32
}

impl Verdict {
    pub fn store(&self, v: VerdictView) {
        self.anomalous.store(v.anomalous, Ordering::Relaxed);
        self.error_ppm.store(ppm(v.error_rate), Ordering::Relaxed);
        self.baseline_ppm.store(ppm(v.baseline), Ordering::Relaxed);
        self.requests.store(v.requests, Ordering::Relaxed);
    }

    pub fn load(&self) -> VerdictView {
        VerdictView {
            anomalous: self.anomalous.load(Ordering::Relaxed),
            error_rate: f64::from(self.error_ppm.load(Ordering::Relaxed)) / PPM,
            baseline: f64::from(self.baseline_ppm.load(Ordering::Relaxed)) / PPM,
            requests: self.requests.load(Ordering::Relaxed),
        }
    }

    pub fn is_anomalous(&self) -> bool {
        self.anomalous.load(Ordering::Relaxed)
    }
}

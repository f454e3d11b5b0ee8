//! The demo's misbehaving backend: a fixed cycle of good and bad periods.
//!
//! Control path: one task flips the backend's own knobs (`set_latency`,
//! `set_fail_rate`, the same ones `ballast backend --latency --fail-rate` sets)
//! on a timer. Health checks stay green throughout (the backend never fails
//! them), which is the interesting case: only the answers to real requests go
//! bad, which is what the dashboard's 5xx and latency charts and anomaly
//! mitigation are for. Each change of period is logged once.

use std::time::Duration;

use ballast_backend::BackendHandle;

/// How long the backend behaves, then misbehaves, in each cycle.
const GOOD: Duration = Duration::from_secs(40);
const BAD: Duration = Duration::from_secs(20);
/// While misbehaving: added latency and the share of requests answered 500.
const SLOW: Duration = Duration::from_millis(250);
const FAIL_RATE: f64 = 0.3;

/// For the startup banner.
pub const DESCRIPTION: &str =
    "every minute, for 20 s, it answers 250 ms slower and 30% of requests with 500";

/// Runs until aborted (the demo stops).
pub async fn run(backend: BackendHandle) {
    loop {
        tokio::time::sleep(GOOD).await;
        backend.set_latency(SLOW);
        backend.set_fail_rate(FAIL_RATE);
        tracing::warn!(
            backend = backend.name(),
            "demo: misbehaving for {}s (+{}ms, {}% answered 500)",
            BAD.as_secs(),
            SLOW.as_millis(),
            FAIL_RATE * 100.0
        );
        tokio::time::sleep(BAD).await;
        backend.set_latency(Duration::ZERO);
        backend.set_fail_rate(0.0);
        tracing::info!(backend = backend.name(), "demo: behaving again");
    }
}

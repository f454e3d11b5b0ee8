//! Giving memory freed by parked connections back to the operating system.
//!
//! Control path. A quiet keep-alive connection parks and frees hyper's buffers
//! (`ballast_proxy`'s `connection.rs`), but glibc's allocator keeps freed memory
//! inside its heaps: between the live allocations of other connections it cannot
//! return it by itself, so after a burst of connections went quiet the process
//! kept their ~16 KiB each, parked or not. HAProxy meets the same thing and calls
//! `malloc_trim` after releasing its pools; ballast does the same from a thread of
//! its own, after at least `MIN_PARKED` connections parked since the last trim: once
//! a burst of parking has settled, or once a second while parking goes on. A
//! steady load whose connections never go quiet never pays for it.
//!
//! Measured (`bench/run.py --scenarios idle`, 9,000 idle keep-alive connections):
//! see BENCHMARKS.md.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ballast_proxy::PARKED_CONNECTIONS;

/// How often the trimmer looks.
const PERIOD: Duration = Duration::from_millis(250);
/// While connections keep parking, trim at most this often.
const MAX_INTERVAL: Duration = Duration::from_secs(1);
/// Parked connections since the last trim that make one worth its cost (a trim
/// walks every heap, holding each arena's lock in turn).
const MIN_PARKED: u64 = 256;

/// Start the trimmer thread (glibc only; elsewhere nothing to do).
pub fn start() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("ballast-trim".into())
        .spawn(|| {
            let mut trimmed_at = PARKED_CONNECTIONS.load(Ordering::Relaxed);
            let mut last_seen = trimmed_at;
            let mut last_trim = Instant::now();
            loop {
                std::thread::sleep(PERIOD);
                let now = PARKED_CONNECTIONS.load(Ordering::Relaxed);
                // Trim once a burst of parking has settled (nothing parked in the
                // last period), or every `MAX_INTERVAL` while parking goes on.
                let settled = now == last_seen || last_trim.elapsed() >= MAX_INTERVAL;
                last_seen = now;
                if now.wrapping_sub(trimmed_at) >= MIN_PARKED && settled {
                    trimmed_at = now;
                    last_trim = Instant::now();
                    sys::trim();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the memory trimmer thread");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod sys {
    extern "C" {
        /// glibc: release free memory from the heaps to the system; returns 1 if
        /// any was released. Thread-safe (it takes each arena's lock in turn).
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }

    pub fn trim() {
        // SAFETY: `malloc_trim` takes a plain integer, touches only the allocator's
        // own state under its locks, and is safe to call from any thread at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod sys {
    pub fn trim() {}
}

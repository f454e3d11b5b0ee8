//! Shared state and the [`BackendHandle`] tests and the CLI hold.
//!
//! Control path, but read on every request: the request handler loads the health flag,
//! the latency and the fail rate, and bumps the counters, so everything here is a plain
//! atomic (no lock is ever taken per request). The handle is a cheap clone of one `Arc`;
//! its lifecycle half (stopping, killing) lives in [`crate::server`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::server::Lifecycle;
use crate::BackendConfig;

/// State shared by the handle, the accept loop, every connection and every request.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: String,
    /// `x-backend` value, built once. Control characters in the name are dropped, as a
    /// header value cannot carry them.
    pub(crate) name_header: HeaderValue,
    /// Share of requests answered `500`, as `f64` bits (changed by `set_fail_rate`).
    fail_rate_bits: AtomicU64,
    latency_nanos: AtomicU64,
    /// `capacity`'s workers: a fair (FIFO) semaphore, one permit per request served.
    workers: Option<tokio::sync::Semaphore>,
    healthy: AtomicBool,
    requests: AtomicU64,
    health_checks: AtomicU64,
    open_connections: AtomicUsize,
    /// Set by `kill()`: connections closed from now on reset instead of ending cleanly.
    killed: AtomicBool,
    pub(crate) poison: Option<crate::Poison>,
    /// A poison request arrived: every request fails from now on.
    poisoned: AtomicBool,
}

impl Shared {
    pub(crate) fn new(config: BackendConfig) -> Self {
        let name_header = HeaderValue::from_bytes(config.name.as_bytes()).unwrap_or_else(|_| {
            let clean: String = config.name.chars().filter(|c| !c.is_control()).collect();
            HeaderValue::from_bytes(clean.as_bytes())
                .unwrap_or_else(|_| HeaderValue::from_static("backend"))
        });
        Self {
            name: config.name,
            name_header,
            fail_rate_bits: AtomicU64::new(config.fail_rate.to_bits()),
            latency_nanos: AtomicU64::new(duration_nanos(config.latency)),
            workers: config.capacity.map(|n| {
                tokio::sync::Semaphore::new(n.clamp(1, tokio::sync::Semaphore::MAX_PERMITS))
            }),
            healthy: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            health_checks: AtomicU64::new(0),
            open_connections: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
            poison: config.poison,
            poisoned: AtomicBool::new(false),
        }
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    /// A worker to serve one request, waiting in line for it under `capacity`
    /// (`None` without one: nothing to wait for).
    pub(crate) async fn worker(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match &self.workers {
            Some(workers) => workers.acquire().await.ok(),
            None => None,
        }
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_health_check(&self) {
        self.health_checks.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this request is one of the `fail_rate` share answered `500`.
    pub(crate) fn should_fail(&self) -> bool {
        let rate = f64::from_bits(self.fail_rate_bits.load(Ordering::Relaxed));
        rate > 0.0 && fastrand::f64() < rate
    }

    /// Counts a connection as open until the returned guard drops (also when its task
    /// is aborted).
    pub(crate) fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(self))
    }

    /// Whether the backend is poisoned, after taking in this request's headers.
    pub(crate) fn poisoned_by(&self, headers: &http::HeaderMap) -> bool {
        if self.poisoned.load(Ordering::Relaxed) {
            return true;
        }
        let hit = self.poison.as_ref().is_some_and(|p| p.matches(headers));
        if hit {
            self.poisoned.store(true, Ordering::Relaxed);
        }
        hit
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_killed(&self) {
        self.killed.store(true, Ordering::Release);
    }
}

/// Saturates at ~584 years, which is as good as forever for a test backend.
fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Keeps [`BackendHandle::open_connections`] honest: one per live connection.
#[derive(Debug)]
pub(crate) struct OpenConnection(Arc<Shared>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running backend. Clones share it; when the last clone drops, the backend stops
/// (listener closed, connections closed).
#[derive(Debug, Clone)]
pub struct BackendHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: SocketAddr,
    shared: Arc<Shared>,
    lifecycle: Lifecycle,
}

impl BackendHandle {
    pub(crate) fn new(addr: SocketAddr, shared: Arc<Shared>, lifecycle: Lifecycle) -> Self {
        Self {
            inner: Arc::new(Inner {
                addr,
                shared,
                lifecycle,
            }),
        }
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Its name, as echoed in `backend` and `x-backend`.
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// Requests seen, `/healthz` excluded. Counted when a request arrives, so a test can
    /// tell that a delayed request has reached the backend.
    pub fn requests(&self) -> u64 {
        self.inner.shared.requests.load(Ordering::Relaxed)
    }

    /// `/healthz` requests seen.
    pub fn health_checks(&self) -> u64 {
        self.inner.shared.health_checks.load(Ordering::Relaxed)
    }

    /// Whether a poison request (`BackendConfig::poison`) has arrived.
    pub fn is_poisoned(&self) -> bool {
        self.inner.shared.is_poisoned()
    }

    /// `/healthz` answers `503` while false; other requests are unaffected.
    pub fn set_healthy(&self, healthy: bool) {
        self.inner.shared.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Replaces the latency added before every non-health-check response, from the next
    /// request on (requests already waiting keep theirs).
    pub fn set_latency(&self, latency: Duration) {
        self.inner
            .shared
            .latency_nanos
            .store(duration_nanos(latency), Ordering::Relaxed);
    }

    /// Replaces the share of requests answered `500` (`--fail-rate`), from the next
    /// request on: a test can make a target fail, then recover, without restarting it.
    pub fn set_fail_rate(&self, rate: f64) {
        self.inner
            .shared
            .fail_rate_bits
            .store(rate.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    /// Connections currently open, idle keep-alive ones included.
    pub fn open_connections(&self) -> usize {
        self.inner.shared.open_connections.load(Ordering::Relaxed)
    }

    /// Graceful stop: the port refuses new connections at once, idle connections close,
    /// in-flight requests finish; resolves when every connection is gone. Safe to call
    /// from several clones and more than once.
    pub async fn shutdown(&self) {
        self.inner.lifecycle.shutdown().await;
    }

    /// Abrupt stop, like a crashed process: the port refuses new connections before this
    /// returns and every open connection is reset (RST, `SO_LINGER` 0) as its task is
    /// aborted, in-flight requests included.
    pub fn kill(&self) {
        self.inner.shared.mark_killed();
        self.inner.lifecycle.kill();
    }
}

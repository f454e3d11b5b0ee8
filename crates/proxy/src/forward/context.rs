//! The client connection as its requests see it: what every request on one
//! connection shares (`ConnCtx`), the connection's activity (`ConnState`: requests
//! in flight and when a request head started to arrive, shared by the connection's
//! timer and the response bodies), what its listener asks of it (`Drain`), and the
//! hand-off of its socket to a tunnel after an upgrade.
//!
//! Data path. Made by `frontend/` for each connection; read by the handler, the
//! bodies and the upgrade path. Every field a request touches is an atomic or
//! immutable, so requests and the connection's timer never wait for each other.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::forward::headers::{self, ForwardedInfo};
use crate::forward::upgrade::Tunnels;
use crate::observe::metrics::{ListenerMetrics, TimeoutPhase};
use crate::runtime::now_ms;
use crate::snapshot::Shared;

/// What every request on one client connection shares.
pub struct ConnCtx {
    pub shared: Arc<Shared>,
    pub listener: Arc<str>,
    pub forwarded: Arc<ForwardedInfo>,
    pub client: SocketAddr,
    /// The client's address as a header value (`X-Forwarded-For`), made once.
    pub client_ip: headers::ClientIp,
    pub state: Arc<ConnState>,
    /// The listener's metric cells (the same across reloads).
    pub metrics: Arc<ListenerMetrics>,
    /// The TLS session on `https` listeners (version, cipher, client certificate).
    pub tls: Option<Arc<crate::tls::TlsConnInfo>>,
    /// Where upgraded connections (WebSocket) run once they leave hyper.
    pub tunnels: Tunnels,
    /// Set by an upgrade that got its 101: where the connection sends the client's
    /// socket once hyper has written the 101 and let go of it.
    pub client_handoff: std::sync::Mutex<Option<ClientHandoff>>,
    /// The connection's place under the listener's connection limits
    /// (`admission/connections.rs`); an upgraded connection's tunnel holds it
    /// too, so that it counts until the tunnel ends.
    pub admitted: Option<Arc<crate::admission::connections::Admitted>>,
    /// How long a request body may take to arrive (`upstream/body.rs`).
    pub body_pace: crate::upstream::body::BodyPace,
}

/// Hands an upgraded client socket over to its tunnel.
pub type ClientHandoff = tokio::sync::oneshot::Sender<Box<dyn ClientIo>>;

/// A client socket as an upgraded (WebSocket) connection takes it over.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientIo for T {}

/// What a listener asks of its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drain {
    Running,
    /// Finish in-flight requests, take no new ones, then close.
    Draining,
    /// Drain time is up: close now.
    Closing,
}

/// Activity of one connection, shared by its reader, its requests and its timer.
pub struct ConnState {
    in_flight: AtomicU32,
    idle_since: AtomicU64,
    /// When the first byte of a request head arrived while no request was in flight.
    head_started: AtomicU64,
    /// HTTP/2 connections read frames (PING, SETTINGS) between requests; for them,
    /// bytes while idle do not start a request head.
    http2: AtomicBool,
    /// Writes to the client that take no byte for this long end the connection
    /// (`frontend/connection.rs`).
    pub send_timeout: Duration,
    /// The listener's cells, for the slow clients cut off.
    metrics: Arc<ListenerMetrics>,
}

impl ConnState {
    pub fn new(metrics: Arc<ListenerMetrics>, send_timeout: Duration) -> Arc<Self> {
        let now = now_ms();
        Arc::new(ConnState {
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now),
            // A new connection must send its first request head in time.
            head_started: AtomicU64::new(now),
            http2: AtomicBool::new(false),
            send_timeout,
            metrics,
        })
    }

    /// A limit on slow clients cut this connection off (or one of its requests).
    pub fn timed_out(&self, phase: TimeoutPhase) {
        self.metrics.timed_out(phase);
    }

    /// A request head was read: count it until the guard (kept by its response body)
    /// is dropped.
    pub fn begin(self: &Arc<Self>, http2: bool) -> Activity {
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        Activity(self.clone())
    }

    /// How long no request has been in flight (zero while one is).
    pub fn quiet_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let since = self.idle_since.load(Ordering::Relaxed);
        Duration::from_millis(now_ms().saturating_sub(since))
    }

    /// When the idle timeout `idle` ends a connection that stays quiet from now
    /// on (ms on `now_ms`'s clock).
    pub fn idle_deadline(&self, idle: Duration) -> u64 {
        let quiet = self.quiet_for().as_millis() as u64;
        now_ms() + (idle.as_millis() as u64).saturating_sub(quiet)
    }

    /// Bytes were read from the client.
    pub fn on_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
            && !self.http2.load(Ordering::Relaxed)
        {
            self.head_started.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Requests in flight (each counted until its response body is done).
    pub fn requests_in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// When the first byte of a pending request head arrived (0: none pending).
    pub fn head_started_ms(&self) -> u64 {
        self.head_started.load(Ordering::Relaxed)
    }

    /// When the last request in flight ended.
    pub fn idle_since_ms(&self) -> u64 {
        self.idle_since.load(Ordering::Relaxed)
    }
}

/// Counts one request as in flight on its connection while alive.
pub struct Activity(Arc<ConnState>);

impl Drop for Activity {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle_since.store(now_ms(), Ordering::Relaxed);
        }
    }
}

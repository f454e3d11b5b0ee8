//! HTTP/2 connections to one target (`protocol = "http2"` groups): requests are
//! multiplexed as streams over a few shared connections instead of pooled one
//! request per connection.
//!
//! Data path. The target's open connections sit in one `ArcSwap<Vec<_>>`, each with
//! an atomic count of its streams in flight. A request takes the first open
//! connection with fewer than `MAX_STREAMS` streams by a compare-and-swap on that
//! count (no lock), clones its `SendRequest` (a channel handle) and holds a
//! `StreamGuard` until its response body ends. Only when every connection is full
//! or closed does it take the `connecting` mutex to open a new one; requests that
//! queue behind it re-check first, so a burst of 200 opens two connections, not
//! 200. A connection closed by the target (GOAWAY, reset, keep-alive ping timeout)
//! reports `is_closed` and is skipped, and dropped from the list at the next
//! connect. Streams beyond what the target's `SETTINGS_MAX_CONCURRENT_STREAMS`
//! allows wait inside hyper/h2 for a free stream, with flow control per stream, so
//! bodies stream with backpressure and nothing is buffered whole.
//!
//! A request that has to wait for a new connection holds a place among its group's
//! pending requests meanwhile, and each connection one among the group's
//! connections for as long as its task runs (`ConnectGate`, the circuit breaker's
//! counts: `resilience/breaker.rs`); over a limit the checkout fails at once.
//!
//! The connect step (`dial::tcp`) is separate from the HTTP/2 handshake
//! (`handshake`, generic over the stream): a group with `tls` dials, runs the TLS
//! handshake with ALPN `h2` (`tls/upstream.rs`, which refuses a target that does
//! not pick `h2`) and then this handshake, over the same pool, so TLS costs one
//! handshake per connection, not per request.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::observe::group::{ConnectGate, Held, Limit};
use crate::tls::Connector;
use crate::upstream::body::UpstreamBody;
use crate::upstream::dial;
use crate::upstream::target::InFlight;

pub type H2Sender = http2::SendRequest<UpstreamBody>;

/// Why no stream could be had.
pub enum CheckoutError {
    /// Connecting to the target failed.
    Connect(io::Error),
    /// The group's circuit breaker is at this limit.
    Limit(Limit),
}

/// Streams one connection carries before another is opened. Below the common
/// server limits (nginx 128, Go 250, hyper 200) so that a new connection is opened
/// before requests queue on the target's limit.
pub const MAX_STREAMS: u32 = 100;

pub struct H2Pool {
    addr: SocketAddr,
    conns: ArcSwap<Vec<Arc<H2Conn>>>,
    connecting: tokio::sync::Mutex<()>,
    /// Bumped by every failed connect, so requests waiting for it fail too rather
    /// than each trying (and timing out) in turn.
    failures: AtomicU64,
}

struct H2Conn {
    sender: H2Sender,
    streams: AtomicU32,
}

/// One stream in flight on a connection, and its request counted on the target.
pub struct StreamGuard {
    _slot: Slot,
    in_flight: InFlight,
}

impl StreamGuard {
    /// Give up the stream but keep the request counted on its target.
    pub fn into_in_flight(self) -> InFlight {
        self.in_flight
    }
}

/// A stream's place in its connection's count; given back on drop.
struct Slot(Arc<H2Conn>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl H2Pool {
    pub fn new(addr: SocketAddr) -> Self {
        H2Pool {
            addr,
            conns: ArcSwap::from_pointee(Vec::new()),
            connecting: tokio::sync::Mutex::new(()),
            failures: AtomicU64::new(0),
        }
    }

    /// A stream on an open connection, opening a connection when all are full.
    /// A request that has to wait for a new connection takes a place among its
    /// group's pending requests meanwhile, and the connection one among its
    /// connections (`gate`, the circuit breaker's). `tls`: the group's, if any.
    pub async fn checkout(
        &self,
        in_flight: InFlight,
        connect_timeout: Duration,
        gate: &ConnectGate<'_>,
        tls: Option<&Connector>,
    ) -> Result<(H2Sender, StreamGuard), (CheckoutError, InFlight)> {
        let in_flight = match self.reserve(in_flight) {
            Ok(s) => return Ok(s),
            Err(in_flight) => in_flight,
        };
        let _pending = match gate.pending() {
            Ok(place) => place,
            Err(limit) => return Err((CheckoutError::Limit(limit), in_flight)),
        };
        let failures = self.failures.load(Ordering::Relaxed);
        let _connecting = self.connecting.lock().await;
        let in_flight = match self.reserve(in_flight) {
            Ok(s) => return Ok(s),
            Err(in_flight) => in_flight,
        };
        if self.failures.load(Ordering::Relaxed) != failures {
            let e = io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "a concurrent connection attempt to this target just failed",
            );
            return Err((CheckoutError::Connect(e), in_flight));
        }
        let place = match gate.connection() {
            Ok(place) => place,
            Err(limit) => return Err((CheckoutError::Limit(limit), in_flight)),
        };
        // Boxed: a TLS handshake's state is large, and every request's future
        // would otherwise carry room for it (as in `pool.rs`).
        let sender = match Box::pin(self.open(connect_timeout, place, tls)).await {
            Ok(sender) => sender,
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err((CheckoutError::Connect(e), in_flight));
            }
        };
        let conn = Arc::new(H2Conn {
            sender: sender.clone(),
            streams: AtomicU32::new(1),
        });
        self.conns.rcu(|conns| {
            let mut next: Vec<Arc<H2Conn>> = conns
                .iter()
                .filter(|c| !c.sender.is_closed())
                .cloned()
                .collect();
            next.push(conn.clone());
            next
        });
        let guard = StreamGuard {
            _slot: Slot(conn),
            in_flight,
        };
        Ok((sender, guard))
    }

    /// Take a stream on an open connection with room, if there is one.
    fn reserve(&self, in_flight: InFlight) -> Result<(H2Sender, StreamGuard), InFlight> {
        for conn in self.conns.load().iter() {
            if conn.sender.is_closed() {
                continue;
            }
            let taken = conn
                .streams
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < MAX_STREAMS).then_some(n + 1)
                })
                .is_ok();
            if taken {
                let guard = StreamGuard {
                    _slot: Slot(conn.clone()),
                    in_flight,
                };
                return Ok((conn.sender.clone(), guard));
            }
        }
        Err(in_flight)
    }

    /// Open a connection; `place` (its count among the group's connections) lives
    /// as long as the connection's task.
    async fn open(
        &self,
        connect_timeout: Duration,
        place: Held,
        tls: Option<&Connector>,
    ) -> io::Result<H2Sender> {
        let stream = dial::tcp(self.addr, connect_timeout).await?;
        let handshake = async {
            match tls {
                None => handshake_holding(stream, Some(place)).await,
                Some(tls) => {
                    let stream = tls.connect(stream, self.addr).await?;
                    handshake_holding(stream, Some(place)).await
                }
            }
        };
        match tokio::time::timeout(connect_timeout, handshake).await {
            Ok(sender) => sender,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                match tls {
                    None => "HTTP/2 handshake timed out",
                    Some(_) => "TLS and HTTP/2 handshakes timed out",
                },
            )),
        }
    }

    /// Open connections (for tests and the admin view).
    pub fn connection_count(&self) -> usize {
        self.conns
            .load()
            .iter()
            .filter(|c| !c.sender.is_closed())
            .count()
    }
}

/// The HTTP/2 client handshake on an already connected stream (TCP with prior
/// knowledge, or TLS once ALPN agreed `h2`); the connection is driven by its own
/// task until the target or ballast closes it.
pub async fn handshake<T, B>(io: T) -> io::Result<http2::SendRequest<B>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    handshake_holding(io, None).await
}

/// `handshake`, keeping `place` until the connection ends.
async fn handshake_holding<T, B>(io: T, place: Option<Held>) -> io::Result<http2::SendRequest<B>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // Find a dead target while streams wait on it, rather than at the
        // response timeout; idle connections are left alone.
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        // Grow windows with the bandwidth-delay product, for large messages.
        .adaptive_window(true)
        .max_header_list_size(64 * 1024)
        .handshake(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        let _place = place;
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HTTP/2 connection to target ended with an error");
        }
    });
    Ok(sender)
}

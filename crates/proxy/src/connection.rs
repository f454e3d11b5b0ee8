//! One client connection: serving it with hyper (HTTP/1.1 and h2c on the same port),
//! its header-read and idle timeouts, and its part in a drain.
//!
//! Data path. hyper's own `header_read_timeout` also runs while a keep-alive
//! connection waits for its next request, so it cannot give the two separate limits
//! operators expect (10 s to send a request head, 60 s idle between requests). So
//! the connection keeps a tiny shared state instead: requests in flight (counted by
//! `Activity` guards that live as long as each response body) and the time the
//! first byte of a pending request head arrived (noted by `TrackedIo` on read). One
//! timer per connection wakes at the nearest deadline and decides; nothing is done
//! per byte beyond one relaxed atomic load.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// What a listener asks of its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drain {
    Running,
    /// Finish in-flight requests, take no new ones, then close.
    Draining,
    /// Drain time is up: close now.
    Closing,
}

/// Milliseconds on a process-wide monotonic clock; 0 means "not set".
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Activity of one connection, shared by its reader, its requests and its timer.
#[derive(Default)]
pub struct ConnState {
    in_flight: AtomicU32,
    idle_since: AtomicU64,
    /// When the first byte of a request head arrived while no request was in flight.
    head_started: AtomicU64,
    /// HTTP/2 connections read frames (PING, SETTINGS) between requests; for them,
    /// bytes while idle do not start a request head.
    http2: AtomicBool,
}

impl ConnState {
    fn new() -> Arc<Self> {
        let now = now_ms();
        Arc::new(ConnState {
            idle_since: AtomicU64::new(now),
            // A new connection must send its first request head in time.
            head_started: AtomicU64::new(now),
            ..Default::default()
        })
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

    fn on_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
            && !self.http2.load(Ordering::Relaxed)
        {
            self.head_started.store(now_ms(), Ordering::Relaxed);
        }
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

/// The client's socket (or the TLS stream over it), noting when a request head
/// starts to arrive.
pub struct TrackedIo<T = TcpStream> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.state.on_read();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Limits of one listener's connections.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

/// Wrap an accepted socket for serving, returning the state its requests report to.
pub fn track<T>(stream: T) -> (TokioIo<TrackedIo<T>>, Arc<ConnState>) {
    let state = ConnState::new();
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        state: state.clone(),
    });
    (io, state)
}

/// What the timer decided.
enum Verdict {
    /// Check again after this long.
    Wait(Duration),
    /// Idle too long: close gracefully.
    Idle,
    /// A request head took too long: close now.
    HeadTimeout,
}

fn judge(state: &ConnState, t: Timeouts) -> Verdict {
    let now = now_ms();
    if state.in_flight.load(Ordering::Relaxed) > 0 {
        // Requests have their own limits (target timeouts); check again later.
        return Verdict::Wait(t.idle);
    }
    let head = state.head_started.load(Ordering::Relaxed);
    if head != 0 {
        let limit = t.header_read.as_millis() as u64;
        let waited = now.saturating_sub(head);
        return if waited >= limit {
            Verdict::HeadTimeout
        } else {
            Verdict::Wait(Duration::from_millis(limit - waited))
        };
    }
    let limit = t.idle.as_millis() as u64;
    let idle = now.saturating_sub(state.idle_since.load(Ordering::Relaxed));
    if idle >= limit {
        Verdict::Idle
    } else {
        Verdict::Wait(Duration::from_millis(limit - idle))
    }
}

/// Drive a hyper connection to its end, enforcing the timeouts and the drain.
/// `shutdown` starts a graceful shutdown of the connection (hyper's own).
pub async fn supervise<C, S>(
    mut conn: Pin<&mut C>,
    mut shutdown: S,
    state: &ConnState,
    timeouts: Timeouts,
    mut drain: watch::Receiver<Drain>,
) where
    C: std::future::Future,
    S: FnMut(Pin<&mut C>),
{
    let sleep = tokio::time::sleep(timeouts.header_read.min(timeouts.idle));
    tokio::pin!(sleep);
    let mut closing = false;
    if *drain.borrow() != Drain::Running {
        shutdown(conn.as_mut());
        closing = true;
    }
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            changed = drain.changed(), if !closing || *drain.borrow() != Drain::Closing => {
                let now = if changed.is_ok() { *drain.borrow() } else { Drain::Closing };
                match now {
                    Drain::Running => {}
                    Drain::Draining => {
                        if !closing {
                            shutdown(conn.as_mut());
                            closing = true;
                        }
                    }
                    Drain::Closing => return,
                }
            }
            () = &mut sleep, if !closing => {
                match judge(state, timeouts) {
                    Verdict::Wait(d) => sleep.as_mut().reset(tokio::time::Instant::now() + d),
                    Verdict::Idle => {
                        shutdown(conn.as_mut());
                        closing = true;
                    }
                    Verdict::HeadTimeout => return,
                }
            }
        }
    }
}

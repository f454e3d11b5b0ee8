//! The limits h2 does not keep itself: floods of PING, SETTINGS and RST_STREAM
//! frames, and a client that lets nothing be sent (flow-control window at zero)
//! while its requests wait.
//!
//! Data path, HTTP/2 connections only. The guard sits between hyper's HTTP/2
//! server and the client's stream and reads the frame headers passing both ways
//! (`frames.rs`): a few integer operations per frame, nothing per byte, no
//! allocation. h2 answers every PING and acknowledges every SETTINGS frame
//! (applying a new initial window touches every open stream) and, once a stream
//! was accepted, a RST_STREAM costs ballast the work started for it (the request
//! already sent to a target): bounded in memory by h2, unbounded in CPU. So the
//! guard counts them per one-second window and, over a limit, closes the
//! connection the way h2 itself does for the floods it knows: a GOAWAY with
//! ENHANCE_YOUR_CALM, written at a frame boundary of what h2 has sent (the
//! outbound scanner knows where), then an error for h2, which ends the
//! connection and drops its streams. hyper gives no way to make h2 send a GOAWAY
//! with an error code of ballast's choosing, hence the frame written here; a
//! client that reads nothing may not get it, and is closed all the same.
//!
//! The stall: a client that opens streams and never returns window (no
//! WINDOW_UPDATE; or SETTINGS_INITIAL_WINDOW_SIZE = 0) holds its requests, their
//! targets' connections and up to `max_send_buf_size` of each response, and
//! never looks idle (requests are in flight). When the connection's send window
//! is spent (or streams start with none) and nothing moved for the listener's
//! `idle_timeout` (no DATA sent, no WINDOW_UPDATE received), the connection is
//! closed with ENHANCE_YOUR_CALM. A client that waits on a long poll keeps its
//! windows open and is never judged stalled.

use std::fmt;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use h2::Reason;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::forward::context::ConnState;
use crate::frontend::http2::frames::{self, Scanner, Seen};
use crate::runtime::now_ms;

/// More PINGs than this in one second, with no response HEADERS or DATA sent
/// since the last one, close the connection. gRPC clients measure bandwidth with
/// one PING per round trip while response data flows (their BDP estimate): a
/// PING after response data is free. 100 a second is far above any keepalive.
pub const MAX_PINGS_PER_SECOND: u32 = 100;

/// More SETTINGS frames than this in one second close the connection. A client
/// sends one when it connects and rarely another; each is acknowledged, and a
/// new initial window is applied to every open stream.
pub const MAX_SETTINGS_PER_SECOND: u32 = 16;

/// More RST_STREAM frames than this in one second close the connection (rapid
/// reset, CVE-2023-44487). h2 bounds only the streams reset before hyper
/// accepts them (`max_pending_accept_reset_streams`); hyper accepts at once, so
/// a reset that comes a moment later cancels a request ballast has started.
/// Browsers and gRPC cancel a few streams a second, not a hundred.
pub const MAX_RESETS_PER_SECOND: u32 = 100;

/// The connection-level send window every HTTP/2 connection starts with
/// (RFC 9113 §6.9.2).
const DEFAULT_WINDOW: i64 = 65_535;

/// Why the guard closed a connection: the error h2 sees (and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tripped {
    pub reason: Reason,
    pub what: &'static str,
}

impl fmt::Display for Tripped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP/2 client closed: {} ({:?})", self.what, self.reason)
    }
}

impl std::error::Error for Tripped {}

/// Counts of the current one-second window.
#[derive(Default)]
struct Window {
    started_ms: u64,
    pings: u32,
    settings: u32,
    resets: u32,
}

/// A client's stream as hyper's HTTP/2 server reads and writes it.
pub struct Guard<T> {
    io: T,
    state: Arc<ConnState>,
    inbound: Scanner,
    outbound: Scanner,
    window: Window,
    /// The highest stream the client opened (for the GOAWAY).
    last_stream: u32,
    /// The connection-level window the client gave ballast to send in.
    send_window: i64,
    /// The window each new stream starts with (SETTINGS_INITIAL_WINDOW_SIZE).
    stream_window: u32,
    /// When ballast last sent DATA or was last given window.
    progress_ms: u64,
    /// How long a connection may stay stalled (the listener's idle timeout).
    stall_limit: Duration,
    /// Armed while the connection is blocked: when it is due (ms), its timer.
    stall: Option<(u64, Pin<Box<Sleep>>)>,
    tripped: Option<Tripped>,
    /// The error code it closed the connection with (0: not closed), for the
    /// connection's task to count: h2 keeps only the text of an I/O error.
    verdict: Arc<AtomicU32>,
}

impl<T> Guard<T> {
    pub fn new(io: T, state: Arc<ConnState>, stall_limit: Duration) -> Guard<T> {
        Guard {
            verdict: Arc::default(),
            io,
            state,
            inbound: Scanner::after(frames::PREFACE_LEN),
            outbound: Scanner::default(),
            // The first window starts with the connection. (Starting it at the
            // clock's zero made a connection opened in the process's first second
            // see its window end early: a flood split across that boundary went
            // unseen, and the guard's own test failed now and then.)
            window: Window {
                started_ms: now_ms(),
                ..Window::default()
            },
            last_stream: 0,
            send_window: DEFAULT_WINDOW,
            stream_window: DEFAULT_WINDOW as u32,
            progress_ms: now_ms(),
            stall_limit,
            stall: None,
            tripped: None,
        }
    }

    /// Where the guard will leave the error code it closed the connection with.
    pub fn verdict(&self) -> Arc<AtomicU32> {
        self.verdict.clone()
    }

    /// Count what the client sent; the limit it went over, if any.
    fn inbound(&mut self, bytes: &[u8], now: u64) -> Option<Tripped> {
        let mut over = None;
        let Guard {
            inbound,
            window,
            last_stream,
            send_window,
            stream_window,
            progress_ms,
            ..
        } = self;
        inbound.feed(bytes, |seen| match seen {
            Seen::Frame(head) => {
                if now.saturating_sub(window.started_ms) >= 1000 {
                    *window = Window {
                        started_ms: now,
                        ..Window::default()
                    };
                }
                let (count, limit, what) = match head.kind {
                    frames::PING if head.flags & frames::ACK == 0 => {
                        (&mut window.pings, MAX_PINGS_PER_SECOND, "ping_flood")
                    }
                    frames::SETTINGS if head.flags & frames::ACK == 0 => (
                        &mut window.settings,
                        MAX_SETTINGS_PER_SECOND,
                        "settings_flood",
                    ),
                    frames::RST_STREAM => {
                        (&mut window.resets, MAX_RESETS_PER_SECOND, "rapid_reset")
                    }
                    frames::HEADERS => {
                        *last_stream = (*last_stream).max(head.stream);
                        return;
                    }
                    _ => return,
                };
                *count += 1;
                if *count > limit && over.is_none() {
                    over = Some(Tripped {
                        reason: Reason::ENHANCE_YOUR_CALM,
                        what,
                    });
                }
            }
            Seen::Setting(frames::INITIAL_WINDOW_SIZE, value) => *stream_window = value,
            Seen::Setting(..) => {}
            Seen::WindowUpdate(stream, increment) => {
                if stream == 0 {
                    *send_window += i64::from(increment);
                }
                *progress_ms = now;
            }
        });
        over
    }

    /// Note what h2 wrote.
    fn outbound(&mut self, bytes: &[u8]) {
        let Guard {
            outbound,
            window,
            send_window,
            progress_ms,
            ..
        } = self;
        outbound.feed(bytes, |seen| {
            if let Seen::Frame(head) = seen {
                match head.kind {
                    frames::DATA => {
                        *send_window -= i64::from(head.len);
                        *progress_ms = now_ms();
                        window.pings = 0;
                    }
                    frames::HEADERS => window.pings = 0,
                    _ => {}
                }
            }
        });
    }

    /// Whether the client lets nothing be sent while requests wait.
    fn blocked(&self) -> bool {
        (self.send_window <= 0 || self.stream_window == 0) && self.state.requests_in_flight() > 0
    }
}

impl<T: AsyncWrite + Unpin> Guard<T> {
    /// Close the connection: a GOAWAY if one can go out whole now, then an error
    /// for h2 (and for every later read or write).
    fn trip(&mut self, cx: &mut Context<'_>, tripped: Tripped) -> io::Error {
        self.tripped = Some(tripped);
        self.verdict
            .store(u32::from(tripped.reason), Ordering::Relaxed);
        if self.outbound.at_boundary() {
            let code = u32::from(tripped.reason);
            let frame = frames::goaway(self.last_stream, code, tripped.what.as_bytes());
            let io = Pin::new(&mut self.io);
            if let Poll::Ready(Ok(_)) = io.poll_write(cx, &frame) {
                let _ = Pin::new(&mut self.io).poll_flush(cx);
            }
        }
        tracing::debug!(reason = tripped.what, "HTTP/2 connection closed");
        io::Error::other(tripped)
    }

    /// Check the stall, arming its timer while the connection is blocked; the
    /// stall is timed from when it became blocked or last moved.
    fn stalled(&mut self, cx: &mut Context<'_>, now: u64) -> bool {
        if !self.blocked() {
            self.stall = None;
            self.progress_ms = now;
            return false;
        }
        let due = self.progress_ms + self.stall_limit.as_millis() as u64;
        if now >= due {
            return true;
        }
        let at = tokio::time::Instant::now() + Duration::from_millis(due - now);
        let (armed, sleep) = self
            .stall
            .get_or_insert_with(|| (due, Box::pin(tokio::time::sleep_until(at))));
        if *armed != due {
            sleep.as_mut().reset(at);
            *armed = due;
        }
        sleep.as_mut().poll(cx).is_ready()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(tripped) = this.tripped {
            return Poll::Ready(Err(io::Error::other(tripped)));
        }
        let now = now_ms();
        if this.stalled(cx, now) {
            let stalled = Tripped {
                reason: Reason::ENHANCE_YOUR_CALM,
                what: "zero_window",
            };
            return Poll::Ready(Err(this.trip(cx, stalled)));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some(tripped) = this.inbound(&buf.filled()[before..], now) {
            return Poll::Ready(Err(this.trip(cx, tripped)));
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(tripped) = this.tripped {
            return Poll::Ready(Err(io::Error::other(tripped)));
        }
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.outbound(&buf[..n]);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(tripped) = this.tripped {
            return Poll::Ready(Err(io::Error::other(tripped)));
        }
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = r {
            for b in bufs {
                let take = n.min(b.len());
                this.outbound(&b[..take]);
                n -= take;
                if n == 0 {
                    break;
                }
            }
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;

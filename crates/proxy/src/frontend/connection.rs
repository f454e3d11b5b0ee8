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
//!
//! Parking. A plain-TCP HTTP/1 connection that has been quiet for `PARK_AFTER`
//! is parked: whatever served its last burst of requests (ballast's own server,
//! or hyper's connection, ended without closing the socket by
//! `poll_without_shutdown`) is freed with its buffers and its task, and the
//! socket waits in the listener's parking lot (`parking.rs`) with nothing but
//! this state and its context. The next request starts a new task and a new
//! burst over the same socket. Busy connections never park: a request in flight
//! or a head arriving keeps them served. TLS connections do not park (rustls may
//! hold decrypted bytes that the socket's readiness would not announce), nor do
//! HTTP/2 ones.
//!
//! Slow readers. Each write's outcome goes to the connection's `Stall`
//! (`send_timeout.rs`), which fails writes that have taken no byte for the
//! listener's `response_send_timeout`. What a stalled connection holds is bounded
//! by what serves it: the socket's buffers, one response frame or buffer, and
//! for TLS rustls's 64 KiB of pending output.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::forward::context::{ConnState, Drain};
use crate::frontend::send_timeout::Stall;
use crate::frontend::socket::Socket;
use crate::observe::metrics::{ListenerMetrics, TimeoutPhase};
use crate::runtime::now_ms;
use crate::upstream::body::BodyPace;

/// How long an HTTP/1 keep-alive connection stays quiet before it gives its
/// buffers back (see the module docs). Long enough that a client sending request
/// after request never pays for setting hyper's connection up again; short enough
/// that thousands of idle connections cost little.
pub const PARK_AFTER: Duration = Duration::from_millis(250);

/// A client connection's byte stream: plain TCP or TLS over it.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether nothing above the socket buffers data of its own, so that the
    /// socket's readiness means the client sent something (what parking waits on).
    fn parkable(&self) -> bool {
        false
    }

    /// The connection as plain TCP, which ballast's own HTTP/1.1 server serves
    /// (`frontend/http1`).
    fn plain(_io: &mut TrackedIo<Self>) -> Option<&mut TrackedIo<Socket>>
    where
        Self: Sized,
    {
        None
    }
}

impl Transport for Socket {
    fn parkable(&self) -> bool {
        true
    }

    fn plain(io: &mut TrackedIo<Self>) -> Option<&mut TrackedIo<Socket>> {
        Some(io)
    }
}

/// Boxed: a TLS session is large, and the connection task keeps the size of its
/// largest state for its whole life.
impl Transport for Box<tokio_rustls::server::TlsStream<Socket>> {}

/// The client's socket (or the TLS stream over it), noting when a request head
/// starts to arrive, with bytes already read from it put back in front (`pre`:
/// what ballast's own HTTP/1.1 server read before handing the connection over,
/// or what hyper had read but not used when the connection parked or upgraded).
pub struct TrackedIo<T = Socket> {
    inner: T,
    state: Arc<ConnState>,
    pre: Bytes,
    stall: Stall,
}

impl<T> TrackedIo<T> {
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Put bytes back, to be read before the socket's.
    pub fn put_back(&mut self, pre: Bytes) {
        debug_assert!(self.pre.is_empty());
        self.pre = pre;
    }

    /// The stream itself, for parking (nothing may be left put back).
    pub fn into_inner(self) -> T {
        debug_assert!(self.pre.is_empty());
        self.inner
    }

    /// The put-back bytes not read yet.
    pub fn take_unread(&mut self) -> Bytes {
        std::mem::take(&mut self.pre)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pre.is_empty() {
            let n = this.pre.len().min(buf.remaining());
            buf.put_slice(&this.pre[..n]);
            this.pre.advance(n);
            if this.pre.is_empty() {
                // Let go of the buffer the bytes came in (it may be a lent one).
                this.pre = Bytes::new();
            }
            this.state.on_read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.state.on_read();
        }
        r
    }
}

/// Responses up to this size are written with one `send` instead of a `writev`
/// (`TrackedIo::poll_write_vectored`).
const GATHER: usize = 2048;

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stall.sent(cx, &this.state, polled)
    }

    /// hyper writes a response as a list of buffers (head, then body). A
    /// `writev` costs the kernel more than a `send` of one buffer (the list is
    /// imported and checked segment by segment), so a small response goes out as
    /// one `send`, gathered through the stack; a large one stays a `writev`,
    /// where a copy here would cost more than it saves.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Self::write_gathered(&mut this.inner, cx, bufs);
        this.stall.sent(cx, &this.state, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.stall.sent(cx, &this.state, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.stall.sent(cx, &this.state, polled)
    }
}

impl<T: AsyncWrite + Unpin> TrackedIo<T> {
    /// See `poll_write_vectored`.
    fn write_gathered(
        inner: &mut T,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut parts = bufs.iter().filter(|b| !b.is_empty());
        let (Some(first), second) = (parts.next(), parts.next()) else {
            return Poll::Ready(Ok(0));
        };
        let Some(second) = second else {
            return Pin::new(inner).poll_write(cx, first);
        };
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total > GATHER {
            return Pin::new(inner).poll_write_vectored(cx, bufs);
        }
        let mut gathered = [0u8; GATHER];
        let mut len = 0;
        for part in [first, second].into_iter().chain(parts) {
            gathered[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        Pin::new(inner).poll_write(cx, &gathered[..len])
    }
}

/// Limits of one listener's connections.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
    /// The largest request head taken (`max_request_head_size`).
    pub max_request_head: usize,
    /// How long a request body may take (`upstream/body.rs`).
    pub request_body: BodyPace,
    /// Writes that take no byte for this long end the connection.
    pub send: Duration,
}

/// Wrap an accepted socket for serving, returning the state its requests report to.
pub fn track<T>(
    stream: T,
    metrics: Arc<ListenerMetrics>,
    send_timeout: Duration,
) -> (TrackedIo<T>, Arc<ConnState>) {
    let state = ConnState::new(metrics, send_timeout);
    let io = TrackedIo {
        inner: stream,
        state: state.clone(),
        pre: Bytes::new(),
        stall: Stall::default(),
    };
    (io, state)
}

/// The client's stream as hyper serves it.
pub type Served<T> = TokioIo<TrackedIo<T>>;

/// Hand the stream to hyper, with the bytes already read from it in front.
pub fn serve_over<T>(mut io: TrackedIo<T>, pre: Bytes) -> Served<T> {
    io.put_back(pre);
    TokioIo::new(io)
}

/// What the timer decided.
enum Verdict {
    /// Check again after this long.
    Wait(Duration),
    /// Idle too long: close gracefully.
    Idle,
    /// A request head took too long: close now.
    HeadTimeout,
    /// Quiet long enough to park.
    Park,
}

/// How a supervised connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The connection is over (the client closed, an error, a timeout, the drain).
    Closed,
    /// hyper let go of a quiet connection; the socket is open and can be parked.
    Parked,
}

fn judge(state: &ConnState, t: Timeouts, park: bool) -> Verdict {
    let now = now_ms();
    if state.requests_in_flight() > 0 {
        // Requests have their own limits (target timeouts); check again later.
        return Verdict::Wait(t.idle);
    }
    let head = state.head_started_ms();
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
    let idle = now.saturating_sub(state.idle_since_ms());
    if idle >= limit {
        return Verdict::Idle;
    }
    let park_at = PARK_AFTER.as_millis() as u64;
    if park && limit > park_at {
        if idle >= park_at {
            return Verdict::Park;
        }
        return Verdict::Wait(Duration::from_millis(park_at - idle));
    }
    Verdict::Wait(Duration::from_millis(limit - idle))
}

/// Drive a hyper connection to its end, enforcing the timeouts and the drain.
/// `shutdown` starts a graceful shutdown of the connection (hyper's own). With
/// `park`, a connection quiet for `PARK_AFTER` is shut down gracefully too, and
/// reported `Parked` when hyper has let go of it.
pub async fn supervise<C, S>(
    mut conn: Pin<&mut C>,
    mut shutdown: S,
    state: &ConnState,
    timeouts: Timeouts,
    drain: &mut watch::Receiver<Drain>,
    park: bool,
) -> Ended
where
    C: std::future::Future,
    S: FnMut(Pin<&mut C>),
{
    let first = timeouts.header_read.min(timeouts.idle);
    let sleep = tokio::time::sleep(if park { first.min(PARK_AFTER) } else { first });
    tokio::pin!(sleep);
    let mut closing = false;
    let mut parking = false;
    if *drain.borrow() != Drain::Running {
        shutdown(conn.as_mut());
        closing = true;
    }
    loop {
        tokio::select! {
            _ = conn.as_mut() => return if parking { Ended::Parked } else { Ended::Closed },
            changed = drain.changed(), if !closing || *drain.borrow() != Drain::Closing => {
                let now = if changed.is_ok() { *drain.borrow() } else { Drain::Closing };
                match now {
                    Drain::Running => {}
                    Drain::Draining => {
                        if !closing {
                            shutdown(conn.as_mut());
                            closing = true;
                        }
                        parking = false;
                    }
                    Drain::Closing => return Ended::Closed,
                }
            }
            () = &mut sleep, if !closing => {
                match judge(state, timeouts, park) {
                    Verdict::Wait(d) => {
                        // A connection that may park looks again at least that often.
                        let d = if park { d.min(PARK_AFTER) } else { d };
                        sleep.as_mut().reset(tokio::time::Instant::now() + d);
                    }
                    Verdict::Idle => {
                        shutdown(conn.as_mut());
                        closing = true;
                    }
                    Verdict::Park => {
                        shutdown(conn.as_mut());
                        closing = true;
                        parking = true;
                    }
                    Verdict::HeadTimeout => {
                        state.timed_out(TimeoutPhase::Head);
                        return Ended::Closed;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// Small lists are gathered into one write, large ones stay vectored; either
    /// way every byte arrives, in order.
    #[tokio::test]
    async fn vectored_writes_arrive_whole_and_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        let (mut io, _state) = track(client, Arc::default(), Duration::from_secs(30));
        let big = vec![b'x'; GATHER + 1];
        let cases: [&[&[u8]]; 4] = [
            &[b"HTTP/1.1 200 OK\r\n\r\n", b"", b"hello"],
            &[b"", b"only one"],
            &[b"a", b"b", b"c", b"d"],
            &[b"head:", &big],
        ];
        for parts in cases {
            let want: Vec<u8> = parts.concat();
            let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            let n = io.write_vectored(&slices).await.expect("write");
            assert!(n > 0);
            // The rest, as hyper does after a partial write.
            io.write_all(&want[n..]).await.expect("write the rest");
            let mut got = vec![0; want.len()];
            server.read_exact(&mut got).await.expect("read");
            assert_eq!(got, want);
        }
        let none = io
            .write_vectored(&[IoSlice::new(b"")])
            .await
            .expect("empty");
        assert_eq!(none, 0);
    }
}

//! ballast's own HTTP/1.1 server for the common request: a complete head, no body
//! (`request.rs` says which), its response written by `response.rs`.
//!
//! Data path. Most requests a load balancer sees are `GET`s whose head arrives in
//! one read. hyper serves them through its dispatcher with a boxed future per
//! request (`poll_without_shutdown` needs one) and with read and write buffers
//! owned by each connection, which under load are as many distinct buffers as
//! busy connections, spread over the cache. Here such a request is parsed from a
//! read buffer lent by the worker (`buffers.rs`, given back as soon as it is
//! empty), its head copied into one allocation of its own size that every header
//! value slices, and the response is written from a lent buffer too, head and
//! small body in one `send`. The handler's future lives in this serving loop,
//! which is allocated once per burst of requests, not once per request.
//!
//! Everything else is hyper's, unchanged: a request with a body, an upgrade, an
//! `Expect`, HTTP/1.0, a head that arrives in pieces or does not parse, TLS
//! connections. Such a request is handed over whole (`Outcome::Hyper`) with the
//! bytes read so far, and hyper serves the connection until it goes quiet, so
//! its answers to bad requests (400, 431, ...) stay exactly what they were.
//!
//! A new plain-TCP connection starts here, with nothing read yet: its first bytes
//! are looked at for the HTTP/2 preface (h2c with prior knowledge,
//! `Outcome::Http2`) where they land in the lent buffer, so a connection costs no
//! separate first read, buffer or timer. Until it has sent its first bytes it is
//! given `header_read` to do so, and it is not parked. Bytes that go as far as the
//! preface's request line (`PRI * HTTP/2.0`) and then differ from the preface are
//! a broken HTTP/2 connection, not an HTTP/1.1 request: the connection is closed
//! (RFC 9113 §3.4), where hyper would have answered `400` in HTTP/1.1 (`opening`).
//!
//! A connection is served here until it has been quiet for `PARK_AFTER`; then it
//! parks in its listener's lot (`parking.rs`) holding no buffer. However the
//! connection ends, its buffers go back to the worker (`buffers::Lent`). The drain is honoured as by
//! hyper: a request in flight finishes and the connection closes after it, and
//! when the drain time is up the connection closes at once.

pub(crate) mod request;
mod response;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use http::Method;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::forward::context::{ConnState, Drain};
use crate::forward::{self, ConnCtx};
use crate::frontend::connection::{self, Timeouts, TrackedIo};
use crate::frontend::socket::Socket;
use crate::hygiene::desync::Verdict;
use crate::hygiene::Seen;
use crate::observe::metrics::TimeoutPhase;
use crate::runtime::buffers::{self, Lent};
use request::{parse, Head, Parsed};
use response::{write_response, Write};

/// How serving here ended.
#[derive(Debug)]
pub enum Outcome {
    /// The connection is over.
    Closed,
    /// Quiet for `PARK_AFTER`, with nothing read: park it.
    Park,
    /// A request this server does not take: hyper serves the connection from
    /// these bytes on; the first head's desync verdict if it was complete.
    Hyper(Bytes, Option<Verdict>),
    /// A new connection opened with the HTTP/2 preface: these bytes, the preface
    /// first, are HTTP/2's.
    Http2(Bytes),
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How far the preface's request line goes: bytes that match this much of the
/// preface mean HTTP/2 (no HTTP/1.1 request starts with it).
const PREFACE_LINE: usize = b"PRI * HTTP/2.0".len();

/// What the first bytes of a new plain-TCP connection say it speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// The whole HTTP/2 preface: h2c with prior knowledge.
    Http2,
    /// A beginning of the preface: more bytes decide.
    Undecided,
    /// The preface's request line, then something else: a broken HTTP/2
    /// connection, to be closed (RFC 9113 §3.4).
    Broken,
    /// Not the preface's request line: HTTP/1.
    Http1,
}

/// Tell what a new connection opening with `buf` speaks (see `Opening`).
pub fn opening(buf: &[u8]) -> Opening {
    let same = buf.iter().zip(PREFACE).take_while(|(a, b)| a == b).count();
    if same == PREFACE.len() {
        Opening::Http2
    } else if same == buf.len() {
        Opening::Undecided
    } else if same >= PREFACE_LINE {
        Opening::Broken
    } else {
        Opening::Http1
    }
}

/// Serve requests on a plain TCP connection, starting with the bytes in `pre`;
/// `fresh` if nothing has been read from it yet.
pub async fn serve(
    io: &mut TrackedIo<Socket>,
    pre: Bytes,
    conn: &Arc<ConnCtx>,
    state: &ConnState,
    timeouts: Timeouts,
    drain: &watch::Receiver<Drain>,
    mut fresh: bool,
) -> Outcome {
    // The bytes already read are parsed where they are (no copy) when nothing
    // else holds them; a small buffer like that is freed, not lent, once used.
    let mut rbuf = Lent(
        pre.try_into_mut()
            .unwrap_or_else(|pre| BytesMut::from(&pre[..])),
    );
    let mut wbuf = Lent::default();
    // Set up once for the whole burst, not per request: a drain to notice while
    // waiting (any) or while serving (the drain time is up), and one timer.
    let draining = until(drain.clone(), |d| d != Drain::Running);
    let closing = until(drain.clone(), |d| d == Drain::Closing);
    let quiet = tokio::time::sleep(connection::PARK_AFTER.min(timeouts.idle));
    tokio::pin!(draining, closing, quiet);
    let mut draining = Gated::new(drain, draining);
    let mut closing = Gated::new(drain, closing);
    // Running, as long as nothing has been sent on the watch since: then no
    // request needs to take the watch's lock to know it.
    let calm = unchanged(drain) && *drain.borrow() == Drain::Running;
    let running = || (calm && unchanged(drain)) || *drain.borrow() == Drain::Running;
    loop {
        let mut wait = rbuf.is_empty();
        if fresh && !wait {
            match opening(&rbuf) {
                Opening::Http2 => return Outcome::Http2(rbuf.split().freeze()),
                Opening::Undecided => wait = true,
                Opening::Broken => {
                    tracing::debug!(client = %conn.client, "broken HTTP/2 preface: closed");
                    return Outcome::Closed;
                }
                Opening::Http1 => fresh = false,
            }
        }
        if wait {
            buffers::give_back(&mut rbuf);
            loop {
                tokio::select! {
                    biased;
                    read = read_next(io, &mut rbuf) => match read {
                        Ok(()) => break,
                        Err(()) => return Outcome::Closed,
                    },
                    () = &mut draining => return Outcome::Closed,
                    () = &mut quiet => {
                        let idle = state.quiet_for();
                        // A new connection has `header_read` to say something, and
                        // is not parked before it has.
                        let limit = if fresh {
                            timeouts.header_read.min(timeouts.idle)
                        } else {
                            timeouts.idle
                        };
                        if idle >= limit {
                            if fresh && timeouts.header_read <= timeouts.idle {
                                // Connected and said nothing: a slow head.
                                state.timed_out(TimeoutPhase::Head);
                            }
                            return Outcome::Closed;
                        }
                        if !fresh && idle >= connection::PARK_AFTER {
                            return Outcome::Park;
                        }
                        let next = if fresh {
                            limit
                        } else {
                            connection::PARK_AFTER.min(timeouts.idle)
                        };
                        quiet.as_mut().reset(tokio::time::Instant::now() + (next - idle));
                    }
                }
            }
            continue;
        }
        let Head {
            len,
            request,
            close,
            trailers,
            verdict,
        } = match parse(&rbuf, timeouts.max_request_head) {
            Parsed::Take(head) => head,
            Parsed::Leave(verdict) => return Outcome::Hyper(rbuf.split().freeze(), verdict),
        };
        rbuf.advance(len);
        // The head now lives in the request's own allocation: with nothing
        // pipelined behind it, the buffer goes back while the request is served,
        // so requests waiting on their targets hold none.
        buffers::give_back(&mut rbuf);
        let head_only = request.method() == Method::HEAD;
        // Pinned where it is made: `select!` moves its futures into a tuple, and
        // moving this one would copy all the room the request path takes.
        let served = std::pin::pin!(async {
            let response = forward::handle(request, conn.clone(), Seen::Raw(verdict)).await;
            // A `Connection` field on the response is ballast's own `close`
            // (`hygiene/`): the targets' hop-by-hop fields were removed.
            let closing = response.headers().contains_key(http::header::CONNECTION);
            let how = Write {
                head_only,
                keep_alive: !close && !closing && running(),
                trailers,
            };
            let written = write_response(io, response, how, &mut wbuf).await;
            buffers::give_back(&mut wbuf);
            written
        });
        let kept = tokio::select! {
            biased;
            kept = served => kept,
            () = &mut closing => false,
        };
        if !kept {
            return Outcome::Closed;
        }
    }
}

/// Read what has arrived once the socket turns readable; `Err` if the client
/// closed or the socket failed. A lent buffer is taken only once there is
/// something to read. The read goes through `poll_read`, which also forgets the
/// socket's readiness after a short read, so the next wait does not begin with a
/// read that finds nothing. A socket not registered yet (`socket.rs`) is read
/// at once, and registered if that finds nothing.
async fn read_next(io: &mut TrackedIo<Socket>, rbuf: &mut BytesMut) -> Result<(), ()> {
    loop {
        std::future::poll_fn(|cx| io.get_ref().poll_read_ready(cx))
            .await
            .map_err(drop)?;
        buffers::reserve(rbuf);
        match io.read_buf(rbuf).now_or_never() {
            Some(Ok(0)) | Some(Err(_)) => return Err(()),
            Some(Ok(_)) => return Ok(()),
            // The readiness was stale, or the socket had never waited: wait,
            // holding no lent buffer.
            None => buffers::give_back(rbuf),
        }
    }
}

/// A drain future (`until`) polled again only once something was sent on the
/// watch, or by a task it has not registered with. Each wake-up of a connection
/// polls every branch of its `select!`; polling the watch's `Notified` takes
/// the watch's lock and reads this connection's waiter node, cold in the cache
/// when a thousand connections take turns. Gated, it is one atomic load.
struct Gated<'a, F> {
    drain: &'a watch::Receiver<Drain>,
    inner: Pin<&'a mut F>,
    registered: Option<Waker>,
}

impl<'a, F: Future<Output = ()>> Gated<'a, F> {
    fn new(drain: &'a watch::Receiver<Drain>, inner: Pin<&'a mut F>) -> Self {
        Gated {
            drain,
            inner,
            registered: None,
        }
    }
}

impl<F: Future<Output = ()>> Future for Gated<'_, F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if unchanged(this.drain)
            && this
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            // `inner` waits on the watch with this very waker: a send wakes it.
            return Poll::Pending;
        }
        let polled = this.inner.as_mut().poll(cx);
        if polled.is_pending() {
            this.registered = Some(cx.waker().clone());
        }
        polled
    }
}

/// Nothing was sent on the watch since this receiver last looked (and the
/// listener is still there): one atomic load, no lock.
fn unchanged(drain: &watch::Receiver<Drain>) -> bool {
    matches!(drain.has_changed(), Ok(false))
}

/// Resolves once the drain state satisfies `pred`.
async fn until(mut drain: watch::Receiver<Drain>, pred: fn(Drain) -> bool) {
    loop {
        if pred(*drain.borrow_and_update()) {
            return;
        }
        if drain.changed().await.is_err() {
            // The listener is gone: treat it as the end of the drain.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_opens_with_the_preface_a_part_of_it_a_broken_one_or_http1() {
        use Opening::*;
        let cases: [(&[u8], Opening); 14] = [
            (b"", Undecided),
            (b"P", Undecided),
            (b"PRI * HT", Undecided),
            (b"PRI * HTTP/2.0", Undecided),
            (b"PRI * HTTP/2.0\r\n\r\nS", Undecided),
            (PREFACE, Http2),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04", Http2),
            (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", Broken),
            (b"PRI * HTTP/2.0\r\nHost: x\r\n\r\n", Broken),
            (b"PRI * HTTP/2.0 ", Broken),
            (b"PRI * HTTP/2.1\r\n\r\n", Http1),
            (b"PRI * HTTP/1.1\r\nHost: x\r\n\r\n", Http1),
            (b"POST / HTTP/1.1\r\n", Http1),
            (b"PUT / HTTP/1.1\r\n", Http1),
        ];
        for (bytes, want) in cases {
            assert_eq!(opening(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    /// A gated drain future skips its watch while nothing was sent, yet is
    /// woken by a send and then sees it.
    #[test]
    fn a_gated_drain_future_is_woken_by_the_drain() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let woken = Arc::new(Count(Default::default()));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let wakes = || woken.0.load(std::sync::atomic::Ordering::SeqCst);

        let (tx, rx) = watch::channel(Drain::Running);
        let closing = std::pin::pin!(until(rx.clone(), |d| d == Drain::Closing));
        let mut gated = Gated::new(&rx, closing);
        assert!(Pin::new(&mut gated).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut gated).poll(&mut cx).is_pending());
        assert_eq!(wakes(), 0);
        tx.send(Drain::Draining).unwrap();
        assert_eq!(wakes(), 1, "a send wakes the registered task");
        assert!(Pin::new(&mut gated).poll(&mut cx).is_pending());
        tx.send(Drain::Closing).unwrap();
        assert_eq!(wakes(), 2);
        assert!(Pin::new(&mut gated).poll(&mut cx).is_ready());
    }
}

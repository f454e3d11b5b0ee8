//! ballast's own HTTP/1.1 server for the common request: a complete head, no body.
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
//! given `header_read` to do so, and it is not parked.
//!
//! A connection is served here until it has been quiet for `PARK_AFTER`; then it
//! parks in its listener's lot (`parking.rs`) holding no buffer. However the
//! connection ends, its buffers go back to the worker (`buffers::Lent`). The drain is honoured as by
//! hyper: a request in flight finishes and the connection closes after it, and
//! when the drain time is up the connection closes at once.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, DATE, EXPECT, TE,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::buffers::{self, Lent};
use super::codec::{self, Framing};
use crate::body::{RequestBody, ResponseBody};
use crate::connection::{self, ConnState, Drain, Timeouts, TrackedIo};
use crate::forward::{self, ConnCtx};
use crate::headers::has_token;
use crate::socket::Socket;

/// The most header fields in a request served here (hyper's limit too).
const MAX_HEADERS: usize = 100;
/// The largest request head served here; larger ones go to hyper.
const MAX_HEAD: usize = 16 * 1024;
/// Response bytes gathered before they are written.
const FLUSH_AT: usize = 16 * 1024;
/// Body data larger than this is written from where it is, not copied.
const COPY_UP_TO: usize = 4 * 1024;

/// How serving here ended.
#[derive(Debug)]
pub enum Outcome {
    /// The connection is over.
    Closed,
    /// Quiet for `PARK_AFTER`, with nothing read: park it.
    Park,
    /// A request this server does not take: hyper serves the connection from
    /// these bytes on.
    Hyper(Bytes),
    /// A new connection opened with the HTTP/2 preface: these bytes, the preface
    /// first, are HTTP/2's.
    Http2(Bytes),
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// `Some(true)` if `buf` starts with the whole HTTP/2 preface, `Some(false)` if
/// it is a beginning of it (more bytes decide), `None` if it is not HTTP/2.
pub fn preface(buf: &[u8]) -> Option<bool> {
    let n = buf.len().min(PREFACE.len());
    (buf[..n] == PREFACE[..n]).then_some(n == PREFACE.len())
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
            match preface(&rbuf) {
                Some(true) => return Outcome::Http2(rbuf.split().freeze()),
                Some(false) => wait = true,
                None => fresh = false,
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
        let Some(Head {
            len,
            request,
            close,
            trailers,
        }) = parse(&rbuf)
        else {
            return Outcome::Hyper(rbuf.split().freeze());
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
            let response = forward::handle(request, conn.clone()).await;
            let how = Write {
                head_only,
                keep_alive: !close && running(),
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

/// A request head this server takes.
struct Head {
    /// Bytes of the head in the read buffer.
    len: usize,
    request: Request<RequestBody>,
    /// The client asked to close after the response.
    close: bool,
    /// The client accepts trailers (`TE: trailers`).
    trailers: bool,
}

/// Parse a complete request head without a body, or `None` for anything hyper
/// should see instead (see the module docs).
fn parse(buf: &[u8]) -> Option<Head> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        _ => return None,
    };
    if parsed.version != Some(1) {
        return None;
    }
    let method = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    if method == Method::CONNECT {
        return None;
    }
    // One copy of the head, which the target and every header value slice.
    let head = Bytes::copy_from_slice(&buf[..len]);
    let start = buf.as_ptr() as usize;
    let slice = |part: &[u8]| {
        let at = part.as_ptr() as usize - start;
        head.slice(at..at + part.len())
    };
    let uri = Uri::from_maybe_shared(slice(parsed.path?.as_bytes())).ok()?;
    // Room for the headers the proxy adds (X-Forwarded-*, X-Request-Id).
    let mut headers = HeaderMap::with_capacity(parsed.headers.len() + 4);
    let (mut close, mut trailers) = (false, false);
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == UPGRADE || name == EXPECT
        {
            return None;
        }
        if name == CONNECTION {
            if has_token(field.value, "upgrade") {
                return None;
            }
            close |= has_token(field.value, "close");
        } else if name == TE {
            trailers |= has_token(field.value, "trailers");
        }
        let value = HeaderValue::from_maybe_shared(slice(field.value)).ok()?;
        headers.append(name, value);
    }
    let mut request = Request::new(RequestBody::Empty);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(Head {
        len,
        request,
        close,
        trailers,
    })
}

/// How a response is written.
struct Write {
    /// The request was a HEAD: the head only, whatever the body.
    head_only: bool,
    keep_alive: bool,
    /// Trailers may be sent (the client said `TE: trailers`).
    trailers: bool,
}

/// Write a response; `true` if the connection can take another request.
async fn write_response(
    io: &mut TrackedIo<Socket>,
    response: Response<ResponseBody>,
    how: Write,
    wbuf: &mut BytesMut,
) -> bool {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let no_content = status.is_informational() || status == StatusCode::NO_CONTENT;
    let framing = if how.head_only || no_content || status == StatusCode::NOT_MODIFIED {
        Framing::Empty
    } else {
        match body.size_hint().exact() {
            Some(n) => Framing::Length(n),
            None => Framing::Chunked,
        }
    };
    // A HEAD answered by ballast itself announces the length a GET would get;
    // a target's answer keeps whatever length the target gave.
    let announced = match body.own_length() {
        Some(n) if how.head_only && !no_content && status != StatusCode::NOT_MODIFIED => {
            Framing::Length(n)
        }
        _ => framing,
    };
    buffers::reserve(wbuf);
    encode_head(
        status,
        &parts.headers,
        announced,
        no_content,
        how.keep_alive,
        wbuf,
    );
    if framing != Framing::Empty {
        match write_body(io, &mut body, framing, how.trailers, wbuf).await {
            Ok(true) => {}
            // The body broke off or came out short: the client must see the
            // connection close rather than a response that looks whole.
            Ok(false) | Err(_) => return false,
        }
    }
    if !wbuf.is_empty() && io.write_all(wbuf).await.is_err() {
        return false;
    }
    wbuf.clear();
    how.keep_alive
}

/// Stream a response body after its head (which is in `wbuf`); `Ok(false)` if it
/// ended short or failed.
async fn write_body(
    io: &mut TrackedIo<Socket>,
    body: &mut ResponseBody,
    framing: Framing,
    trailers_allowed: bool,
    wbuf: &mut BytesMut,
) -> io::Result<bool> {
    let chunked = framing == Framing::Chunked;
    let mut sent = 0u64;
    let mut trailers = None;
    loop {
        // What is ready now is gathered; before waiting, what is gathered goes out.
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                if !wbuf.is_empty() {
                    io.write_all(wbuf).await?;
                    wbuf.clear();
                }
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(_)) => return Ok(false),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    continue;
                }
            },
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if let Framing::Length(n) = framing {
            if sent > n {
                return Ok(false);
            }
        }
        if chunked {
            codec::encode_chunk_size(data.len(), wbuf);
        }
        if data.len() <= COPY_UP_TO {
            wbuf.extend_from_slice(&data);
        } else {
            write_two(io, wbuf, &data).await?;
            wbuf.clear();
        }
        if chunked {
            wbuf.extend_from_slice(b"\r\n");
        }
        if wbuf.len() >= FLUSH_AT {
            io.write_all(wbuf).await?;
            wbuf.clear();
        }
    }
    match framing {
        Framing::Length(n) if sent != n => return Ok(false),
        Framing::Chunked => {
            wbuf.extend_from_slice(b"0\r\n");
            if let (true, Some(trailers)) = (trailers_allowed, trailers) {
                for (name, value) in &trailers {
                    put_field(wbuf, name, value.as_bytes());
                }
            }
            wbuf.extend_from_slice(b"\r\n");
        }
        _ => {}
    }
    Ok(true)
}

/// Write `a` then `b` with as few writes as the socket allows.
async fn write_two(io: &mut TrackedIo<Socket>, a: &[u8], b: &[u8]) -> io::Result<()> {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() {
        let n = io
            .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n >= a.len() {
            b = &b[n - a.len()..];
            a = &[];
        } else {
            a = &a[n..];
        }
    }
    io.write_all(b).await
}

/// The status line and header section, with the framing this server chose.
fn encode_head(
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    no_content: bool,
    keep_alive: bool,
    out: &mut BytesMut,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // A HEAD or 304 response keeps the length the target gave; any other is
    // framed here.
    let ours = framing != Framing::Empty || no_content;
    let mut dated = false;
    for (name, value) in headers {
        if name == CONNECTION || (ours && (name == CONTENT_LENGTH || name == TRANSFER_ENCODING)) {
            continue;
        }
        dated |= name == DATE;
        put_field(out, name, value.as_bytes());
    }
    if !dated {
        put_date(out);
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            codec::push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::Close => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn put_field(out: &mut BytesMut, name: &HeaderName, value: &[u8]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `date: <IMF-fixdate>` (RFC 9110 §6.6.1), formatted once a second per thread.
fn put_date(out: &mut BytesMut) {
    use std::cell::RefCell;
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second || cached.1.is_empty() {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(cached.1.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Option<Head> {
        parse(raw.as_bytes())
    }

    #[test]
    fn a_plain_get_is_taken_with_its_head_shared() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: example\r\nX-Y: z\r\nTE: trailers\r\n\r\nGET /next";
        let h = head(raw).expect("taken");
        assert_eq!(h.len, raw.len() - "GET /next".len());
        assert_eq!(h.request.method(), Method::GET);
        assert_eq!(h.request.uri(), "/a?b=1");
        assert_eq!(h.request.headers()["host"], "example");
        assert_eq!(h.request.headers()["x-y"], "z");
        assert!(!h.close);
        assert!(h.trailers);
        let h = head("HEAD / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").expect("taken");
        assert!(h.close);
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

    /// The server gives its read buffer back while a request is served: that
    /// takes a head that shares nothing with the buffer it was read into.
    #[test]
    fn a_parsed_head_leaves_its_read_buffer_free_to_go_back() {
        let mut rbuf = BytesMut::new();
        buffers::reserve(&mut rbuf);
        rbuf.extend_from_slice(b"GET /a HTTP/1.1\r\nHost: example\r\n\r\n");
        let h = parse(&rbuf).expect("taken");
        rbuf.advance(h.len);
        let free = buffers::free_count();
        buffers::give_back(&mut rbuf);
        assert_eq!(
            buffers::free_count(),
            free + 1,
            "the buffer went back whole"
        );
        assert_eq!(h.request.headers()["host"], "example");
        assert_eq!(h.request.uri(), "/a");
    }

    #[test]
    fn everything_else_is_left_to_hyper() {
        for raw in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
            "PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "CONNECT example:443 HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: exam",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "G@T / HTTP/1.1\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
        ] {
            assert!(head(raw).is_none(), "{raw:?} taken");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
        assert!(head(&format!("GET / HTTP/1.1\r\n{many}\r\n")).is_none());
    }

    fn encoded(
        status: u16,
        headers: &[(&str, &str)],
        framing: Framing,
        keep_alive: bool,
    ) -> String {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        let status = StatusCode::from_u16(status).expect("status");
        let no_content = status == StatusCode::NO_CONTENT;
        let mut out = BytesMut::new();
        encode_head(status, &map, framing, no_content, keep_alive, &mut out);
        String::from_utf8(out.to_vec()).expect("text")
    }

    #[test]
    fn the_head_carries_this_servers_framing() {
        let dated = [("date", "Sun, 22 Nov 2026 00:00:00 GMT")];
        let text = encoded(
            200,
            &[("content-length", "999"), dated[0]],
            Framing::Length(5),
            true,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ndate: Sun, 22 Nov 2026 00:00:00 GMT\r\ncontent-length: 5\r\n\r\n"
        );
        let text = encoded(599, &dated, Framing::Chunked, false);
        assert!(text.starts_with("HTTP/1.1 599 \r\n"), "{text}");
        assert!(text.ends_with("transfer-encoding: chunked\r\nconnection: close\r\n\r\n"));
        // HEAD and 304 keep the target's length; 204 has none.
        let text = encoded(
            200,
            &[("content-length", "7"), dated[0]],
            Framing::Empty,
            true,
        );
        assert!(text.contains("content-length: 7\r\n"), "{text}");
        let text = encoded(
            204,
            &[("content-length", "7"), dated[0]],
            Framing::Empty,
            true,
        );
        assert!(!text.contains("content-length"), "{text}");
        // A date is added when the response has none.
        let text = encoded(200, &[], Framing::Length(0), true);
        assert!(
            text.contains("\r\ndate: ") && text.contains(" GMT\r\n"),
            "{text}"
        );
    }
}

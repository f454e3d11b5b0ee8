//! Serving one accepted connection: telling its protocol apart and serving it.
//!
//! Data path, one task per connection. On plain TCP its first bytes say which
//! protocol it speaks, both on one port: the HTTP/2 connection preface (h2c with
//! prior knowledge) or HTTP/1.1; one that starts like the preface and then breaks
//! it is closed (`frontend/http1`). The common HTTP/1.1 request (a complete head,
//! no body) is served by ballast's own server (`frontend/http1`); hyper serves
//! the rest, and HTTP/2, supervised by `connection::supervise` for timeouts and
//! drain. An HTTP/1 connection over plain TCP waits between bursts of requests
//! without a task, in the listener's parking lot on its worker (`parking.rs`),
//! and is handed to a tunnel after a WebSocket upgrade (`forward/upgrade.rs`).
//!
//! On an `https` listener the connection task first runs the TLS handshake
//! (`tls::Terminator`, bounded by the header-read timeout). The protocol is then
//! the one ALPN agreed (`h2`, else HTTP/1.1), never guessed from the bytes: a
//! client that agreed on one and speaks the other is not answered in the other.
//! After `h2`, HTTP/1.1 bytes are a broken preface and hyper's HTTP/2 server
//! closes the connection (RFC 9113 §3.4); after `http/1.1` or no ALPN, hyper's
//! HTTP/1.1 server closes one that sends the HTTP/2 preface, answering nothing.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use ballast_config::client_timeouts::ClientTimeouts;
use ballast_config::ListenerConfig;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::{service_fn, HttpService};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;

use crate::admission::connections::{Admitted, Gate};
use crate::admission::policy::Policy;
use crate::forward::body::{RequestBody, ResponseBody};
use crate::forward::context::{ConnState, Drain};
use crate::forward::headers::ForwardedInfo;
use crate::forward::upgrade::Tunnels;
use crate::forward::{self, ConnCtx};
use crate::frontend::admit::{self, Admission};
use crate::frontend::connection::{self, Ended, Served, Timeouts, TrackedIo, Transport};
use crate::frontend::http1::{self as own_http1, Outcome};
use crate::frontend::http2 as own_http2;
use crate::frontend::parking::Lot;
use crate::frontend::socket::Socket;
use crate::hygiene::Seen;
use crate::observe::metrics::{ConnectionGuard, ListenerMetrics};
use crate::snapshot::Shared;
use crate::tls::{AppProtocol, Terminator, TlsConnInfo};
use crate::upstream::body::BodyPace;

/// What a parked connection keeps to be served again: the client's address,
/// inline in the lot's slot. Its context and state are made again when it wakes
/// (as for a new connection, whose first head is on its way); kept, they would be
/// small allocations left alone among the freed ones of every connection, and
/// the allocator could give back no page.
pub(super) struct Resume {
    pub(super) client: SocketAddr,
    /// Counts it as open while parked.
    pub(super) _open: ConnectionGuard,
    /// Its place under the listener's connection limits, held while parked.
    pub(super) admitted: Option<Arc<Admitted>>,
}

pub(super) struct AcceptCtx {
    pub(super) name: Arc<str>,
    pub(super) forwarded: Arc<ForwardedInfo>,
    pub(super) shared: Arc<Shared>,
    pub(super) h1: http1::Builder,
    pub(super) h2: http2::Builder<TokioExecutor>,
    pub(super) tls: Option<Arc<Terminator>>,
    /// The listener's connection limits (`admission/connections.rs`).
    pub(super) gate: Arc<Gate>,
}

impl AcceptCtx {
    /// The listener's timeouts and metric cells as the current snapshot has them.
    fn settings(&self) -> (Timeouts, Arc<ListenerMetrics>) {
        let (timeouts, metrics, _) = self.settings_and_policy();
        (timeouts, metrics)
    }

    /// The settings, and the listener's address policy if it has one.
    fn settings_and_policy(&self) -> (Timeouts, Arc<ListenerMetrics>, Option<Arc<Policy>>) {
        let snapshot = self.shared.snapshot.load();
        match snapshot.listener(&self.name) {
            Some(l) => (
                Timeouts {
                    header_read: l.config.header_read_timeout,
                    idle: l.config.idle_timeout,
                    max_request_head: l.config.max_request_head_size,
                    request_body: BodyPace::new(
                        l.config.client_timeouts.request_body_timeout,
                        l.config.client_timeouts.request_body_min_rate,
                    ),
                    send: l.config.client_timeouts.response_send_timeout,
                },
                l.metrics.clone(),
                l.admission.clone(),
            ),
            // Removed by a reload just now: serve with defaults; not counted.
            None => (
                Timeouts {
                    header_read: ListenerConfig::DEFAULT_HEADER_READ_TIMEOUT,
                    idle: ListenerConfig::DEFAULT_IDLE_TIMEOUT,
                    max_request_head: ListenerConfig::DEFAULT_MAX_REQUEST_HEAD_SIZE,
                    request_body: BodyPace::default(),
                    send: ClientTimeouts::DEFAULT_RESPONSE_SEND_TIMEOUT,
                },
                Arc::default(),
                None,
            ),
        }
    }
}

pub(super) fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Timeouts are enforced by `connection::supervise` (see there for why).
        .header_read_timeout(None)
        .max_buf_size(ListenerConfig::DEFAULT_MAX_REQUEST_HEAD_SIZE);
    builder
}

/// hyper's HTTP/2 server with ballast's limits (`frontend/http2`).
pub(super) fn http2_builder() -> http2::Builder<TokioExecutor> {
    own_http2::builder()
}

/// Serve one accepted connection.
///
/// The task is kept small (688 bytes) and what serves the connection is boxed
/// (TLS connections as a whole, HTTP/2, plain HTTP/1.1): tokio moves a task's
/// future several times while spawning it and once more when it ends, and with
/// the request path inline (3.5 KB) those copies cost 2,500 instructions per
/// connection, against one allocation and one copy for the box. A box is
/// awaited from a variable of its own: a temporary in the awaiting statement
/// would keep room in the task for the future it was made from.
///
/// `seat` is the connection's place under `max_connections`, taken by the
/// accept loop. A listener with an address policy or a per-client limit first
/// admits the connection (`admit.rs`), which may read a PROXY protocol header
/// and so change the address it is served as coming from.
pub(super) async fn serve(
    mut stream: Socket,
    mut client: SocketAddr,
    ctx: Arc<AcceptCtx>,
    lot: Arc<Lot<Resume>>,
    tunnels: Tunnels,
    mut admitted: Option<Admitted>,
) {
    let (timeouts, metrics, policy) = ctx.settings_and_policy();
    if policy.is_some() || ctx.gate.limits_clients() {
        let admission = Admission {
            listener: &ctx.name,
            policy: policy.as_deref(),
            gate: &ctx.gate,
            header_read: timeouts.header_read,
            metrics: &metrics,
        };
        let admit = Box::pin(admit::admit(&mut stream, client, admitted, admission));
        let Some(admission) = admit.await else {
            return; // refused: closed as the socket drops
        };
        (client, admitted) = admission;
    }
    let admitted = admitted.map(Arc::new);
    let open = metrics.connection();
    if ctx.tls.is_some() {
        let tls = Box::pin(serve_tls(
            stream, client, &ctx, timeouts, metrics, tunnels, admitted,
        ));
        return tls.await;
    }
    // Nothing is read here: ballast's own HTTP/1.1 server reads the first bytes
    // and tells HTTP/2's preface apart (`Burst::Http2`).
    let (io, _, conn_ctx) = start(
        stream,
        client,
        None,
        &ctx,
        (metrics, timeouts),
        tunnels,
        admitted,
    );
    let plain = Box::pin(serve_plain(io, &ctx, conn_ctx, timeouts, &lot, open, true));
    plain.await;
}

/// Serve a plain-TCP connection (`fresh`: new, nothing read yet) until it goes
/// quiet, then park it in the lot: its task ends there (see `parking.rs`). A new
/// connection that opens with HTTP/2's preface is served by HTTP/2 instead.
async fn serve_plain(
    io: TrackedIo<Socket>,
    ctx: &Arc<AcceptCtx>,
    conn_ctx: Arc<ConnCtx>,
    timeouts: Timeouts,
    lot: &Lot<Resume>,
    open: ConnectionGuard,
    fresh: bool,
) {
    let mut drain = conn_ctx.tunnels.drain.clone();
    let served = burst(
        io,
        Bytes::new(),
        ctx,
        &conn_ctx,
        timeouts,
        &mut drain,
        fresh,
    );
    let quiet = match served.await {
        Burst::Quiet(quiet) => quiet,
        Burst::Closed => return,
        Burst::Http2(io, pre) => {
            let state = conn_ctx.state.clone();
            let h2 = Box::pin(serve_h2(io, pre, ctx, conn_ctx, &state, timeouts, drain));
            return h2.await;
        }
    };
    if *drain.borrow() != Drain::Running {
        return;
    }
    let deadline = conn_ctx.state.idle_deadline(timeouts.idle);
    let metrics = conn_ctx.metrics.clone();
    let resume = Resume {
        client: conn_ctx.client,
        _open: open,
        admitted: conn_ctx.admitted.clone(),
    };
    drop(conn_ctx);
    match lot.park(quiet.into_inner(), resume, deadline) {
        Ok(()) => {
            metrics.parked_total.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::debug!(error = %e, "could not park a connection: closed"),
    }
}

/// A parked connection whose client sent again (or half-closed after sending):
/// a new task serves it from where it was.
pub(super) async fn resumed(
    socket: std::net::TcpStream,
    resume: Resume,
    ctx: Arc<AcceptCtx>,
    lot: Arc<Lot<Resume>>,
    tunnels: Tunnels,
) {
    // What woke it is there to be read: served before it is registered.
    let socket = Socket::direct(socket);
    let (timeouts, metrics) = ctx.settings();
    let Resume {
        client,
        _open: open,
        admitted,
    } = resume;
    let (io, _, conn_ctx) = start(
        socket,
        client,
        None,
        &ctx,
        (metrics, timeouts),
        tunnels,
        admitted,
    );
    let plain = Box::pin(serve_plain(io, &ctx, conn_ctx, timeouts, &lot, open, false));
    plain.await;
}

/// A TLS connection: the handshake, then HTTP/2 or HTTP/1.1 as ALPN agreed
/// (never parked: rustls may hold decrypted bytes that the socket's readiness
/// would not show).
async fn serve_tls(
    stream: Socket,
    client: SocketAddr,
    ctx: &Arc<AcceptCtx>,
    timeouts: Timeouts,
    metrics: Arc<ListenerMetrics>,
    tunnels: Tunnels,
    admitted: Option<Arc<Admitted>>,
) {
    let Some(terminator) = ctx.tls.clone() else {
        return;
    };
    let accept = terminator.accept(stream, client, timeouts.header_read);
    let Some((tls, info)) = accept.await else {
        return; // counted and logged by the terminator
    };
    let protocol = info.protocol;
    let info = Some(Arc::new(info));
    // The connection's state starts its header-read clock now: the first request
    // (for HTTP/2, the preface and a request) must come within `header_read`
    // (`connection::supervise`).
    let listener = (metrics, timeouts);
    let (io, state, conn_ctx) = start(
        Box::new(tls),
        client,
        info,
        ctx,
        listener,
        tunnels,
        admitted,
    );
    let mut drain = conn_ctx.tunnels.drain.clone();
    match protocol {
        AppProtocol::Http2 => {
            serve_h2(io, Bytes::new(), ctx, conn_ctx, &state, timeouts, drain).await;
        }
        AppProtocol::Http1 => {
            burst(
                io,
                Bytes::new(),
                ctx,
                &conn_ctx,
                timeouts,
                &mut drain,
                false,
            )
            .await;
        }
    }
}

/// A connection's tracked stream, its activity state and its context, with its
/// listener's metric cells and limits.
fn start<T: Transport>(
    stream: T,
    client: SocketAddr,
    tls: Option<Arc<TlsConnInfo>>,
    ctx: &AcceptCtx,
    (metrics, timeouts): (Arc<ListenerMetrics>, Timeouts),
    tunnels: Tunnels,
    admitted: Option<Arc<Admitted>>,
) -> (TrackedIo<T>, Arc<ConnState>, Arc<ConnCtx>) {
    let (io, state) = connection::track(stream, metrics.clone(), timeouts.send);
    let conn_ctx = Arc::new(ConnCtx {
        shared: ctx.shared.clone(),
        listener: ctx.name.clone(),
        forwarded: ctx.forwarded.clone(),
        client,
        client_ip: crate::forward::headers::ClientIp::new(client.ip()),
        state: state.clone(),
        metrics,
        tls,
        tunnels,
        client_handoff: Mutex::new(None),
        admitted,
        body_pace: timeouts.request_body,
    });
    (io, state, conn_ctx)
}

/// Serve HTTP/2 (h2c with prior knowledge, or h2 by ALPN) with hyper.
async fn serve_h2<T: Transport>(
    mut io: TrackedIo<T>,
    pre: Bytes,
    ctx: &AcceptCtx,
    conn_ctx: Arc<ConnCtx>,
    state: &ConnState,
    timeouts: Timeouts,
    mut drain: watch::Receiver<Drain>,
) {
    let metrics = conn_ctx.metrics.clone();
    let conn_state = conn_ctx.state.clone();
    // Boxed: hyper spawns each stream's future as a task of its own, and tokio
    // copies a task's future several times while spawning it; with the request
    // path inline (then 2.4 KB, now 1.3 KB) that was 2,400 instructions per
    // request.
    let service = service_fn(move |req: Request<Incoming>| {
        let req = req.map(RequestBody::Incoming);
        let handling = forward::handle(req, conn_ctx.clone(), Seen::Parsed);
        Box::pin(handling.map(Ok::<_, Infallible>))
    });
    // The listener's bound on a header list (`max_request_head_size`).
    let limit = u32::try_from(timeouts.max_request_head).unwrap_or(u32::MAX);
    // The floods h2 does not bound, and a client that keeps its window shut
    // for the listener's idle timeout (`frontend/http2/guard.rs`).
    io.put_back(pre);
    let guarded = own_http2::Guard::new(io, conn_state, timeouts.idle);
    let verdict = guarded.verdict();
    let mut conn = Box::pin(
        ctx.h2
            .clone()
            .max_header_list_size(limit)
            .serve_connection(TokioIo::new(guarded), service),
    );
    let counted = own_http2::Counted::new(conn.as_mut(), &metrics, &verdict);
    tokio::pin!(counted);
    let shutdown = own_http2::Counted::shutdown_with(http2::Connection::graceful_shutdown);
    connection::supervise(counted, shutdown, state, timeouts, &mut drain, false).await;
}

/// How a burst of requests on a connection ended.
enum Burst<T> {
    /// The connection is over (closed, timed out, drained, or upgraded).
    Closed,
    /// It went quiet with nothing unread: park it.
    Quiet(TrackedIo<T>),
    /// A new connection opened with HTTP/2's preface: these bytes, the preface
    /// first, and the rest of the connection are HTTP/2's.
    Http2(TrackedIo<T>, Bytes),
}

/// Serve requests until the connection goes quiet or ends. On plain TCP,
/// ballast's own server takes the common request (`frontend/http1`) and hands
/// anything else to hyper, which then serves the connection until it goes quiet.
async fn burst<T: Transport>(
    mut io: TrackedIo<T>,
    mut pre: Bytes,
    ctx: &Arc<AcceptCtx>,
    conn_ctx: &Arc<ConnCtx>,
    timeouts: Timeouts,
    drain: &mut watch::Receiver<Drain>,
    mut fresh: bool,
) -> Burst<T> {
    let state = &*conn_ctx.state;
    let parkable = io.get_ref().parkable();
    // The desync verdict of the head ballast's own server left to hyper.
    let mut classified = None;
    loop {
        if let Some(plain) = T::plain(&mut io) {
            let first = std::mem::take(&mut pre);
            let served = own_http1::serve(plain, first, conn_ctx, state, timeouts, drain, fresh);
            match served.await {
                Outcome::Closed => return Burst::Closed,
                Outcome::Park => return Burst::Quiet(io),
                Outcome::Hyper(rest, verdict) => (pre, classified) = (rest, verdict),
                Outcome::Http2(first) => return Burst::Http2(io, first),
            }
            fresh = false;
        }
        let handler = conn_ctx.clone();
        // The first request hyper reads is the head ballast's own server just
        // classified (fields as sent); hyper's later ones are classified from
        // what hyper kept.
        let seen = std::cell::Cell::new(classified.take());
        // Boxed so that hyper can give the connection back (`poll_without_shutdown`
        // needs an `Unpin` future); the box lives as long as the request.
        let service = service_fn(move |req: Request<Incoming>| {
            let seen = seen.take().map_or(Seen::Parsed, Seen::Raw);
            let handling = forward::handle(req.map(RequestBody::Incoming), handler.clone(), seen);
            Box::pin(handling.map(Ok::<_, Infallible>))
        });
        // Boxed: hyper's connection is moved out of and taken apart below.
        let mut conn = Box::new(
            ctx.h1
                .clone()
                .max_buf_size(timeouts.max_request_head)
                .serve_connection(connection::serve_over(io, pre), service),
        );
        let ended = {
            let served = WithoutShutdown(&mut conn);
            tokio::pin!(served);
            let shutdown = |c: Pin<&mut WithoutShutdown<'_, _, _>>| {
                Pin::new(&mut *c.get_mut().0).graceful_shutdown()
            };
            connection::supervise(served, shutdown, state, timeouts, drain, parkable).await
        };
        // Taken apart at once: whatever is not kept must be freed before parking.
        let http1::Parts {
            io: served,
            read_buf,
            ..
        } = conn.into_parts();
        let mut tracked = served.into_inner();
        let unread = unread_bytes(tracked.take_unread(), read_buf);
        // After a 101 the socket belongs to the upgrade's tunnel.
        let handoff = conn_ctx
            .client_handoff
            .lock()
            .ok()
            .and_then(|mut h| h.take());
        if let Some(handoff) = handoff {
            tracked.put_back(unread);
            let _ = handoff.send(Box::new(tracked));
            return Burst::Closed;
        }
        if ended == Ended::Closed {
            return Burst::Closed;
        }
        if unread.is_empty() {
            return Burst::Quiet(tracked);
        }
        (io, pre) = (tracked, unread);
    }
}

/// The bytes read from a connection but not yet used: what was put back in front
/// of the socket and not read again, then what hyper had read. An empty result owns no memory (an empty `Bytes` cut
/// from hyper's buffer would keep the whole buffer alive while the connection is
/// parked).
fn unread_bytes(rest: Bytes, read_buf: Bytes) -> Bytes {
    match (rest.is_empty(), read_buf.is_empty()) {
        (true, true) => Bytes::new(),
        (true, false) => read_buf,
        (false, true) => rest,
        (false, false) => {
            let mut joined = BytesMut::with_capacity(rest.len() + read_buf.len());
            joined.extend_from_slice(&rest);
            joined.extend_from_slice(&read_buf);
            joined.freeze()
        }
    }
}

/// An HTTP/1 connection driven to its end without closing the socket, so that it
/// can be parked or upgraded afterwards.
struct WithoutShutdown<'a, T: Transport, S: HttpService<Incoming>>(
    &'a mut http1::Connection<Served<T>, S>,
);

impl<T, S> Future for WithoutShutdown<'_, T, S>
where
    T: Transport,
    S: HttpService<Incoming, ResBody = ResponseBody> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll_without_shutdown(cx)
    }
}

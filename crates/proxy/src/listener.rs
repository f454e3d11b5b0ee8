//! A listener: its socket, its accept loop and the connections it serves.
//!
//! Data path. Each accepted connection runs in its own task. Its first bytes say
//! which protocol it speaks: the HTTP/2 connection preface (h2c with prior
//! knowledge, or h2 chosen by ALPN over TLS) or HTTP/1.1, both on one port. On
//! plain TCP the common HTTP/1.1 request (a complete head, no body) is served by
//! ballast's own server (`h1::server`); hyper serves the rest, and HTTP/2,
//! supervised by `connection::supervise` for timeouts and drain. An HTTP/1
//! connection over plain TCP waits between bursts of requests without a task, in
//! the listener's parking lot on its worker (`parking.rs`), and is handed to a
//! tunnel after a WebSocket upgrade (`upgrade.rs`). On an `https` listener the
//! connection task first runs the TLS handshake (`tls::Terminator`, bounded by the
//! header-read timeout). A listener that is stopped (SIGTERM, or removed by a reload) closes its socket at once, asks its
//! connections to finish their in-flight requests, and after the drain timeout
//! closes what is left.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ballast_config::ListenerConfig;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::{service_fn, HttpService};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use socket2::{Domain, Protocol, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncReadExt;
use tokio::io::Interest;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::body::{RequestBody, ResponseBody};
use crate::connection::{self, ConnState, Drain, Ended, Served, Timeouts, TrackedIo, Transport};
use crate::forward::{self, ConnCtx};
use crate::h1::{self, server::Outcome};
use crate::headers::ForwardedInfo;
use crate::metrics::{ConnectionGuard, ListenerMetrics};
use crate::parking::Lot;
use crate::server::Shared;
use crate::socket::Socket;
use crate::tls::{Terminator, TlsConnInfo};
use crate::upgrade::Tunnels;

/// Bind a listening socket the way a server should: address reuse for quick
/// restarts, a deep accept backlog for bursts of new connections, and a
/// connection handed over only once the client has sent something
/// (`defer_accept`).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket =
        socket2::Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    defer_accept(&socket)?;
    Ok(socket.into())
}

/// How long the kernel holds a connection whose client has sent nothing: after
/// this it is accepted all the same (and the header-read timeout runs).
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// `TCP_DEFER_ACCEPT`: the kernel hands a connection over only once its first
/// bytes are there (or after `DEFER_ACCEPT_SECS`), as NGINX's `deferred` and
/// HAProxy's `defer-accept` do. HTTP and TLS clients speak first, so the request
/// is there to be read at once, and a connection for one request is served
/// without ever being registered with the I/O driver (`socket.rs`): measured, a
/// new connection cost 13% fewer instructions in user space and 16% fewer in
/// the kernel (two `epoll_ctl` and a read that found nothing, fewer). A client
/// that connects and stays silent costs no descriptor or task until then.
fn defer_accept(socket: &socket2::Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // Neither std (unstable `set_deferaccept`) nor socket2 sets this option.
    let secs: libc::c_int = DEFER_ACCEPT_SECS;
    // SAFETY: `setsockopt` reads `optlen` bytes from `optval`, which points to a
    // live `c_int` of that size; the descriptor is the socket's own, open while
    // `socket` is borrowed.
    #[allow(unsafe_code)]
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&secs).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A running listener.
pub struct ListenerHandle {
    pub name: Arc<str>,
    /// The configured bind address (port 0 stays 0 here).
    pub bind: SocketAddr,
    /// The address actually bound.
    pub local_addr: SocketAddr,
    drain: watch::Sender<Drain>,
    connections: TaskTracker,
    /// One accept loop per worker (`workers.rs`).
    accept: Vec<JoinHandle<()>>,
}

impl ListenerHandle {
    /// Start accepting on `socket`.
    pub fn start(
        name: &str,
        bind: SocketAddr,
        socket: std::net::TcpListener,
        shared: Arc<Shared>,
        tls: Option<Arc<Terminator>>,
    ) -> io::Result<Self> {
        let local_addr = socket.local_addr()?;
        let name: Arc<str> = Arc::from(name);
        let (drain, drain_rx) = watch::channel(Drain::Running);
        let connections = TaskTracker::new();
        let ctx = AcceptCtx {
            name: name.clone(),
            forwarded: Arc::new(ForwardedInfo::new(
                if tls.is_some() { "https" } else { "http" },
                local_addr.port(),
            )),
            shared,
            h1: http1_builder(),
            h2: http2_builder(),
            tls,
        };
        let ctx = Arc::new(ctx);
        let accept = match crate::workers::handles() {
            None => {
                let lot = start_lot(None, &ctx, &drain_rx, &connections)?;
                vec![tokio::spawn(accept_loop(
                    socket,
                    ctx,
                    lot,
                    drain_rx,
                    connections.clone(),
                ))]
            }
            Some(workers) => {
                // Every worker accepts on a clone of the one socket, and parks its
                // idle connections in a lot of its own.
                let mut loops = Vec::with_capacity(workers.len());
                for worker in workers {
                    let clone = socket.try_clone()?;
                    let lot = start_lot(Some(worker), &ctx, &drain_rx, &connections)?;
                    let (ctx, drain_rx, tracker) =
                        (ctx.clone(), drain_rx.clone(), connections.clone());
                    loops.push(worker.spawn(accept_loop(clone, ctx, lot, drain_rx, tracker)));
                }
                loops
            }
        };
        tracing::info!(listener = %name, address = %local_addr, "listening");
        Ok(ListenerHandle {
            name,
            bind,
            local_addr,
            drain,
            connections,
            accept,
        })
    }

    /// Stop accepting, drain connections for up to `timeout`, then close the rest.
    pub async fn stop(self, timeout: Duration) {
        for accept in &self.accept {
            accept.abort();
        }
        for accept in self.accept {
            let _ = accept.await; // the socket is closed once every loop is gone
        }
        self.connections.close();
        let _ = self.drain.send(Drain::Draining);
        if tokio::time::timeout(timeout, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                listener = %self.name, remaining = self.connections.len(),
                "drain timeout reached: closing remaining connections"
            );
            let _ = self.drain.send(Drain::Closing);
            self.connections.wait().await;
        }
        tracing::info!(listener = %self.name, "listener stopped");
    }
}

/// Start a parking lot for the listener's idle connections on `worker` (the
/// current runtime if `None`); tracked with the connections, so that a drain
/// waits until it has closed what it held.
fn start_lot(
    worker: Option<&tokio::runtime::Handle>,
    ctx: &Arc<AcceptCtx>,
    drain: &watch::Receiver<Drain>,
    connections: &TaskTracker,
) -> io::Result<Arc<Lot<Resume>>> {
    let (lot, set) = Lot::new()?;
    let (waking, ctx) = (lot.clone(), ctx.clone());
    let tunnels = Tunnels {
        tracker: connections.clone(),
        drain: drain.clone(),
    };
    let run = lot.clone().run(set, drain.clone(), move |socket, resume| {
        let task = resumed(socket, resume, ctx.clone(), waking.clone(), tunnels.clone());
        tunnels.tracker.spawn(task);
    });
    let run = connections.track_future(run);
    match worker {
        Some(worker) => drop(worker.spawn(run)),
        None => drop(tokio::spawn(run)),
    }
    Ok(lot)
}

/// What a parked connection keeps to be served again: the client's address,
/// inline in the lot's slot. Its context and state are made again when it wakes
/// (as for a new connection, whose first head is on its way); kept, they would be
/// small allocations left alone among the freed ones of every connection, and
/// the allocator could give back no page.
struct Resume {
    client: SocketAddr,
    /// Counts it as open while parked.
    _open: ConnectionGuard,
}

struct AcceptCtx {
    name: Arc<str>,
    forwarded: Arc<ForwardedInfo>,
    shared: Arc<Shared>,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    tls: Option<Arc<Terminator>>,
}

impl AcceptCtx {
    /// The listener's timeouts and metric cells as the current snapshot has them.
    fn settings(&self) -> (Timeouts, Arc<ListenerMetrics>) {
        let snapshot = self.shared.snapshot.load();
        match snapshot.listener(&self.name) {
            Some(l) => (
                Timeouts {
                    header_read: l.config.header_read_timeout,
                    idle: l.config.idle_timeout,
                },
                l.metrics.clone(),
            ),
            // Removed by a reload just now: serve with defaults; not counted.
            None => (
                Timeouts {
                    header_read: ListenerConfig::DEFAULT_HEADER_READ_TIMEOUT,
                    idle: ListenerConfig::DEFAULT_IDLE_TIMEOUT,
                },
                Arc::default(),
            ),
        }
    }
}

fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Timeouts are enforced by `connection::supervise` (see there for why).
        .header_read_timeout(None)
        .max_buf_size(256 * 1024);
    builder
}

fn http2_builder() -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024);
    builder
}

async fn accept_loop(
    socket: std::net::TcpListener,
    ctx: Arc<AcceptCtx>,
    lot: Arc<Lot<Resume>>,
    drain: watch::Receiver<Drain>,
    connections: TaskTracker,
) {
    // mio's accept asks the kernel for a non-blocking socket (`accept4`), which
    // `Socket` reads and writes before it is ever registered; tokio's
    // `TcpListener` would register every stream it accepts.
    let socket = mio::net::TcpListener::from_std(socket);
    // SAFETY (`register_with_interest`: the descriptor must stay open and the
    // same while the `AsyncFd` lives): mio's listener owns its descriptor (an
    // `OwnedFd` inside) and never closes or replaces it while it lives; the
    // `AsyncFd` owns the listener and nothing takes it out. tokio's safe
    // constructors, which took any `AsRawFd`, are deprecated as unsound for types
    // that could break this; mio's listener cannot.
    #[allow(unsafe_code)]
    let registered = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) };
    let socket = match registered {
        Ok(socket) => socket,
        Err(e) => {
            tracing::error!(listener = %ctx.name, error = %e, "cannot accept on a worker");
            return;
        }
    };
    loop {
        let accepted = match socket.readable().await {
            Ok(mut ready) => match ready.try_io(|socket| socket.get_ref().accept()) {
                Ok(accepted) => accepted,
                Err(_would_block) => continue,
            },
            Err(e) => Err(e),
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or memory: back off instead of spinning.
                tracing::warn!(listener = %ctx.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tunnels = Tunnels {
            tracker: connections.clone(),
            drain: drain.clone(),
        };
        let stream = Socket::direct(stream.into());
        connections.spawn(serve(stream, client, ctx.clone(), lot.clone(), tunnels));
    }
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
async fn serve(
    stream: Socket,
    client: SocketAddr,
    ctx: Arc<AcceptCtx>,
    lot: Arc<Lot<Resume>>,
    tunnels: Tunnels,
) {
    let (timeouts, metrics) = ctx.settings();
    let open = metrics.connection();
    if let Some(terminator) = ctx.tls.clone() {
        let tls = Box::pin(serve_tls(
            terminator, stream, client, &ctx, timeouts, metrics, tunnels,
        ));
        return tls.await;
    }
    // Nothing is read here: ballast's own HTTP/1.1 server reads the first bytes
    // and tells HTTP/2's preface apart (`Burst::Http2`).
    let (io, _, conn_ctx) = start(stream, client, None, &ctx, metrics, tunnels);
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
async fn resumed(
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
    } = resume;
    let (io, _, conn_ctx) = start(socket, client, None, &ctx, metrics, tunnels);
    let plain = Box::pin(serve_plain(io, &ctx, conn_ctx, timeouts, &lot, open, false));
    plain.await;
}

/// A TLS connection: the handshake, then HTTP/2 or HTTP/1.1 (never parked:
/// rustls may hold decrypted bytes that the socket's readiness would not show).
async fn serve_tls(
    terminator: Arc<Terminator>,
    stream: Socket,
    client: SocketAddr,
    ctx: &Arc<AcceptCtx>,
    timeouts: Timeouts,
    metrics: Arc<ListenerMetrics>,
    tunnels: Tunnels,
) {
    let accept = terminator.accept(stream, client, timeouts.header_read);
    let Some((tls, info)) = accept.await else {
        return; // counted and logged by the terminator
    };
    let info = Some(Arc::new(info));
    let (io, state, conn_ctx) = start(Box::new(tls), client, info, ctx, metrics, tunnels);
    let mut drain = conn_ctx.tunnels.drain.clone();
    let Some((io, pre, http2)) = sniff(io, timeouts.header_read).await else {
        return;
    };
    if http2 {
        serve_h2(io, pre, ctx, conn_ctx, &state, timeouts, drain).await;
    } else {
        burst(io, pre, ctx, &conn_ctx, timeouts, &mut drain, false).await;
    }
}

/// A connection's tracked stream, its activity state and its context.
fn start<T: Transport>(
    stream: T,
    client: SocketAddr,
    tls: Option<Arc<TlsConnInfo>>,
    ctx: &AcceptCtx,
    metrics: Arc<ListenerMetrics>,
    tunnels: Tunnels,
) -> (TrackedIo<T>, Arc<ConnState>, Arc<ConnCtx>) {
    let (io, state) = connection::track(stream);
    let conn_ctx = Arc::new(ConnCtx {
        shared: ctx.shared.clone(),
        listener: ctx.name.clone(),
        forwarded: ctx.forwarded.clone(),
        client,
        client_ip: crate::headers::ClientIp::new(client.ip()),
        state: state.clone(),
        metrics,
        tls,
        tunnels,
        client_handoff: Mutex::new(None),
    });
    (io, state, conn_ctx)
}

/// Serve HTTP/2 (h2c with prior knowledge, or h2 by ALPN) with hyper.
async fn serve_h2<T: Transport>(
    io: TrackedIo<T>,
    pre: Bytes,
    ctx: &AcceptCtx,
    conn_ctx: Arc<ConnCtx>,
    state: &ConnState,
    timeouts: Timeouts,
    mut drain: watch::Receiver<Drain>,
) {
    // Boxed: hyper spawns each stream's future as a task of its own, and tokio
    // copies a task's future several times while spawning it; with the request
    // path inline (then 2.4 KB, now 1.3 KB) that was 2,400 instructions per
    // request.
    let service = service_fn(move |req: Request<Incoming>| {
        let handling = forward::handle(req.map(RequestBody::Incoming), conn_ctx.clone());
        Box::pin(handling.map(Ok::<_, Infallible>))
    });
    let mut conn = Box::pin(
        ctx.h2
            .serve_connection(connection::serve_over(io, pre), service),
    );
    let shutdown = |c: Pin<&mut _>| http2::Connection::graceful_shutdown(c);
    connection::supervise(conn.as_mut(), shutdown, state, timeouts, &mut drain, false).await;
}

/// Read the first bytes of a TLS connection: HTTP/2 if they are the preface
/// (a plain-TCP connection is told apart by `h1::server`). Returns the bytes read
/// (to be served first) or `None` if the client went away or was too slow.
async fn sniff<T: Transport>(
    mut io: TrackedIo<T>,
    limit: Duration,
) -> Option<(TrackedIo<T>, Bytes, bool)> {
    // TLS keeps buffers of its own already: this one is small.
    let mut buf = BytesMut::new();
    let read = async {
        loop {
            if io.read_buf(&mut buf).await.ok()? == 0 {
                return None;
            }
            match h1::server::preface(&buf) {
                Some(false) => continue,
                Some(true) => return Some(true),
                None => return Some(false),
            }
        }
    };
    let http2 = tokio::time::timeout(limit, read).await.ok()??;
    Some((io, buf.freeze(), http2))
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
/// ballast's own server takes the common request (`h1::server`) and hands
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
    loop {
        if let Some(plain) = T::plain(&mut io) {
            let first = std::mem::take(&mut pre);
            let served = h1::server::serve(plain, first, conn_ctx, state, timeouts, drain, fresh);
            match served.await {
                Outcome::Closed => return Burst::Closed,
                Outcome::Park => return Burst::Quiet(io),
                Outcome::Hyper(rest) => pre = rest,
                Outcome::Http2(first) => return Burst::Http2(io, first),
            }
            fresh = false;
        }
        let handler = conn_ctx.clone();
        // Boxed so that hyper can give the connection back (`poll_without_shutdown`
        // needs an `Unpin` future); the box lives as long as the request.
        let service = service_fn(move |req: Request<Incoming>| {
            let handling = forward::handle(req.map(RequestBody::Incoming), handler.clone());
            Box::pin(handling.map(Ok::<_, Infallible>))
        });
        // Boxed: hyper's connection is moved out of and taken apart below.
        let mut conn = Box::new(
            ctx.h1
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A listening socket from `bind` hands a connection over once its client
    /// has sent something, not when the handshake completes.
    #[tokio::test]
    async fn a_connection_is_accepted_once_its_client_has_sent_something() {
        let listener = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio");
        let addr = listener.local_addr().expect("addr");
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // Silent, it is held by the kernel for about a second: not accepted
        // within a fraction of that.
        let early = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(early.is_err(), "accepted before the client sent anything");
        client.write_all(b"GET / HTTP/1.1\r\n").await.expect("send");
        let (accepted, _) = listener.accept().await.expect("accept");
        let mut first = [0u8; 3];
        let n = accepted.try_read(&mut first).expect("the request is there");
        assert_eq!(&first[..n], b"GET");
    }
}

//! A listener: its socket and its accept loops, one per worker.
//!
//! Data path. Every worker accepts on its own clone of the listening socket
//! (whichever is free takes the next connection); each accepted connection runs
//! in its own task on the worker that accepted it (`serve.rs`), and the
//! listener's idle connections wait in a parking lot per worker (`parking.rs`).
//! A listener that is stopped (SIGTERM, or removed by a reload) closes its socket
//! at once, asks its connections to finish their in-flight requests, and after
//! the drain timeout closes what is left.
//!
//! At `max_connections` (`admission/connections.rs`) the accept loops stop
//! accepting: each takes a seat before it calls `accept`, and waits for one
//! while the listener is full, so that new connections wait in the kernel's
//! backlog (as HAProxy's `maxconn`), not refused.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballast_config::ListenerConfig;
use socket2::{Domain, Protocol, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::admission::connections::Gate;
use crate::forward::context::Drain;
use crate::forward::headers::ForwardedInfo;
use crate::forward::upgrade::Tunnels;
use crate::frontend::inherited::ListeningSocket;
use crate::frontend::parking::Lot;
use crate::frontend::serve::{http1_builder, http2_builder, resumed, serve, AcceptCtx, Resume};
use crate::frontend::socket::Socket;
use crate::snapshot::Shared;
use crate::tls::Terminator;

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
    /// Its connection limits, kept across reloads (`configure`).
    gate: Arc<Gate>,
    /// A copy of the listening socket, to hand over at a binary upgrade
    /// (`inherited.rs`); closed first when the listener stops.
    listening: std::net::TcpListener,
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
        let listening = socket.try_clone()?;
        let name: Arc<str> = Arc::from(name);
        let (drain, drain_rx) = watch::channel(Drain::Running);
        let connections = TaskTracker::new();
        let gate = Arc::new(Gate::default());
        if let Some(l) = shared.snapshot.load().listener(&name) {
            configure(&gate, &l.config);
        }
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
            gate: gate.clone(),
        };
        let ctx = Arc::new(ctx);
        let accept = match crate::runtime::handles() {
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
            gate,
            listening,
        })
    }

    /// A copy of the listening socket with this listener's name and addresses,
    /// for another process to accept on (a binary upgrade).
    pub fn listening_socket(&self) -> io::Result<ListeningSocket> {
        Ok(ListeningSocket {
            name: self.name.to_string(),
            bind: self.bind,
            local_addr: self.local_addr,
            socket: self.listening.try_clone()?,
        })
    }

    /// Take the connection limits of `config` (a reload of a listener that
    /// stayed); accept loops waiting at the old `max_connections` look again.
    pub fn configure(&self, config: &ListenerConfig) {
        configure(&self.gate, config);
    }

    /// Stop accepting, drain connections for up to `timeout`, then close the rest.
    pub async fn stop(self, timeout: Duration) {
        drop(self.listening);
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

fn configure(gate: &Gate, config: &ListenerConfig) {
    let a = &config.admission;
    gate.configure(a.max_connections, a.max_connections_per_client);
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
    // A seat under `max_connections`, taken before accepting and kept across
    // tries that find nothing (so that the count is exact across workers).
    let mut seat = None;
    loop {
        if seat.is_none() {
            seat = ctx.gate.seat().await;
        }
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
        let admitted = seat.take();
        connections.spawn(serve(
            stream,
            client,
            ctx.clone(),
            lot.clone(),
            tunnels,
            admitted,
        ));
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

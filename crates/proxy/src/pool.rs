//! Keep-alive connections to one target, pooled for reuse.
//!
//! Data path. Idle connections wait in a lock-free bounded queue per worker (crossbeam's
//! `ArrayQueue`, as pingora's pool uses), so taking and returning one is a CAS, not
//! a lock. A connection goes back to the pool only when its response ended cleanly
//! and the target did not ask to close (see `h1/client.rs`); one that erred, or
//! whose response was abandoned half-read, is dropped and closes. Idle connections
//! have no task watching them: taking one checks, with one non-blocking read, that
//! the target has not closed it meanwhile. Connections idle longer than
//! `idle_timeout` are not reused either, since targets close idle keep-alive
//! connections on their own schedule and a request could cross the target's close.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use tokio::net::TcpStream;

use crate::h1::client::{Conn, Stream};
use crate::target::InFlight;
use crate::tls::Connector;

/// How many idle connections one target keeps at most.
const MAX_IDLE: usize = 512;

pub struct Pool {
    addr: SocketAddr,
    /// One queue per worker (`workers.rs`): a connection is reused only by the
    /// runtime whose I/O driver it is registered with.
    idle: Box<[ArrayQueue<Idle>]>,
    idle_timeout: Duration,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl Pool {
    pub fn new(addr: SocketAddr, idle_timeout: Duration) -> Self {
        let workers = crate::workers::count();
        Pool {
            addr,
            idle: (0..workers)
                .map(|_| ArrayQueue::new((MAX_IDLE / workers).max(16)))
                .collect(),
            idle_timeout,
        }
    }

    /// An idle connection that is still open and clean, if any.
    pub fn take(&self) -> Option<Conn> {
        while let Some(Idle { mut conn, since }) = self.local().pop() {
            if since.elapsed() <= self.idle_timeout && conn.is_usable() {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, conn: Conn) {
        if let Some(conn) = conn.into_idle() {
            // A full pool drops the connection, which closes it.
            let _ = self.local().push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Open a new connection within `timeout` (TCP, and the TLS handshake when the
    /// group has `tls`).
    pub async fn connect(&self, timeout: Duration, tls: Option<&Connector>) -> io::Result<Conn> {
        let connect = async {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            Ok(Conn::new(match tls {
                None => Stream::Plain(stream),
                Some(tls) => Stream::Tls(Box::new(tls.connect(stream, self.addr).await?)),
            }))
        };
        // Boxed: a TLS handshake's state is large, and every request's future
        // would otherwise carry room for it (see `forward::send`).
        match tokio::time::timeout(timeout, Box::pin(connect)).await {
            Ok(conn) => conn,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            )),
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.iter().map(ArrayQueue::len).sum()
    }

    fn local(&self) -> &ArrayQueue<Idle> {
        &self.idle[crate::workers::current() % self.idle.len()]
    }
}

/// A connection checked out for one request, with the target's in-flight count.
pub struct Lease {
    conn: Conn,
    in_flight: InFlight,
}

impl Lease {
    pub fn new(conn: Conn, in_flight: InFlight) -> Self {
        Lease { conn, in_flight }
    }

    pub fn conn_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// Give up the connection (it closes) but keep the request counted in flight.
    pub fn into_in_flight(self) -> InFlight {
        self.in_flight
    }

    /// Return the connection to its target's pool; the in-flight count ends.
    pub fn release(self) {
        let Lease { conn, in_flight } = self;
        in_flight.target().pool.put(conn);
    }
}

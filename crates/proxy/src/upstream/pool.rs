//! Keep-alive connections to one target, pooled for reuse.
//!
//! Data path. Idle connections wait in a stack per worker: a connection is reused
//! only by the runtime whose I/O driver it is registered with, so each stack's lock
//! is only ever taken by one thread (uncontended, a CAS to take and one to release,
//! as a lock-free queue would cost). The newest connection is reused first: it is
//! the one most likely still warm in the caches and least likely to have been
//! closed by the target, and the connections a burst opened sink to the bottom and
//! are closed there once they have idled `idle_timeout`. The stack holds as many
//! connections as were in flight at once (up to `MAX_IDLE`): a pool smaller than
//! the concurrency closes connections on the way back and opens new ones for the
//! next requests, which at 1,000 requests in flight was one in eight requests
//! paying a connect and a close.
//!
//! A connection goes back to the pool only when its response ended cleanly and the
//! target did not ask to close (see `h1/client.rs`); one that erred, or whose
//! response was abandoned half-read, is dropped and closes. Idle connections have
//! no task watching them: taking one checks, with one non-blocking read, that the
//! target has not closed it meanwhile. Connections idle longer than `idle_timeout`
//! are not reused either, since targets close idle keep-alive connections on their
//! own schedule and a request could cross the target's close.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::tls::Connector;
use crate::upstream::http1::{Conn, Stream};
use crate::upstream::target::InFlight;

/// How many idle connections one target keeps per worker at most. The stack
/// grows only as far as the requests in flight at once take it.
const MAX_IDLE: usize = 16_384;

pub struct Pool {
    addr: SocketAddr,
    /// One stack per worker (`workers.rs`): a connection is reused only by the
    /// runtime whose I/O driver it is registered with. Oldest at the front.
    idle: Box<[Mutex<VecDeque<Idle>>]>,
    idle_timeout: Duration,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl Pool {
    pub fn new(addr: SocketAddr, idle_timeout: Duration) -> Self {
        let workers = crate::runtime::count();
        Pool {
            addr,
            idle: (0..workers).map(|_| Mutex::default()).collect(),
            idle_timeout,
        }
    }

    /// The newest idle connection that is still open and clean, if any.
    pub fn take(&self) -> Option<Conn> {
        let mut idle = self.local();
        while let Some(Idle { mut conn, since }) = idle.pop_back() {
            if since.elapsed() > self.idle_timeout {
                // The newest has idled too long, so have all the others.
                idle.clear();
                return None;
            }
            if conn.is_usable() {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, conn: Conn) {
        let Some(conn) = conn.into_idle() else {
            return;
        };
        let now = Instant::now();
        let mut idle = self.local();
        // What has idled too long at the bottom closes, a little at each return,
        // so a pool that a burst filled shrinks back as traffic goes on.
        for _ in 0..2 {
            match idle.front() {
                Some(oldest) if now.duration_since(oldest.since) > self.idle_timeout => {
                    idle.pop_front();
                }
                _ => break,
            }
        }
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back(Idle { conn, since: now });
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
        self.idle
            .iter()
            .map(|idle| idle.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// This worker's stack. A panic while it was held cannot have left it
    /// inconsistent (every change is one push or pop), so a poisoned lock is used.
    fn local(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        self.idle[crate::runtime::current() % self.idle.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// `n` open connections, and their other ends (kept open).
    async fn connections(n: usize) -> (Vec<Conn>, Vec<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mut conns, mut peers) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let stream = TcpStream::connect(addr).await.expect("connect");
            peers.push(listener.accept().await.expect("accept").0);
            conns.push(Conn::new(Stream::Plain(stream)));
        }
        (conns, peers)
    }

    fn port(conn: &Conn) -> u16 {
        match conn.stream() {
            Stream::Plain(s) => s.local_addr().expect("addr").port(),
            Stream::Tls(_) => unreachable!("plain connections only"),
        }
    }

    #[tokio::test]
    async fn every_connection_in_flight_at_once_is_kept_and_the_newest_is_reused_first() {
        let pool = Pool::new(
            "127.0.0.1:9".parse().expect("addr"),
            Duration::from_secs(60),
        );
        // More than a bounded pool of 512 kept, which closed the rest.
        let (conns, _peers) = connections(600).await;
        let ports: Vec<u16> = conns.iter().map(port).collect();
        for conn in conns {
            pool.put(conn);
        }
        assert_eq!(pool.idle_count(), 600);
        let newest = pool.take().expect("an idle connection");
        assert_eq!(port(&newest), ports[599]);
        pool.put(newest);
        assert_eq!(port(&pool.take().expect("again")), ports[599]);
        assert_eq!(pool.idle_count(), 599);
    }

    #[tokio::test]
    async fn connections_idle_too_long_are_closed_not_reused() {
        let idle = Duration::from_millis(50);
        let pool = Pool::new("127.0.0.1:9".parse().expect("addr"), idle);
        let (mut conns, _peers) = connections(4).await;
        let fresh = conns.pop().expect("four");
        for conn in conns {
            pool.put(conn);
        }
        tokio::time::sleep(idle * 2).await;
        // A return closes what idled too long at the bottom, two at a time.
        pool.put(fresh);
        assert_eq!(pool.idle_count(), 2);
        assert!(pool.take().is_some(), "the fresh one");
        assert!(pool.take().is_none(), "the old one is not handed out");
        assert_eq!(pool.idle_count(), 0, "and it was closed on the way");
    }
}

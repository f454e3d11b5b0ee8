//! Keep-alive connections to one target, pooled for reuse.
//!
//! Data path. Idle connections wait in a lock-free bounded queue (crossbeam's
//! `ArrayQueue`, as pingora's pool uses), so taking and returning one is a CAS, not
//! a lock. A connection goes back to the pool only when its response ended cleanly
//! (see `body.rs`); one that erred, or whose response was abandoned half-read, is
//! dropped and closes. Connections idle longer than `idle_timeout` are not reused,
//! since targets close idle keep-alive connections on their own schedule and a
//! request sent on a connection the target is closing would fail.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::UpstreamBody;
use crate::target::InFlight;
use crate::tls::Connector;

pub type Sender = http1::SendRequest<UpstreamBody>;

/// How many idle connections one target keeps at most.
const MAX_IDLE: usize = 512;

pub struct Pool {
    addr: SocketAddr,
    idle: ArrayQueue<Idle>,
    idle_timeout: Duration,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

impl Pool {
    pub fn new(addr: SocketAddr, idle_timeout: Duration) -> Self {
        Pool {
            addr,
            idle: ArrayQueue::new(MAX_IDLE),
            idle_timeout,
        }
    }

    /// An idle connection that is still open and ready for a request, if any.
    pub async fn take(&self) -> Option<Sender> {
        while let Some(idle) = self.idle.pop() {
            let Idle { mut sender, since } = idle;
            if sender.is_closed() || since.elapsed() > self.idle_timeout {
                continue;
            }
            // A returned connection turns ready as soon as its connection task has
            // seen the end of the last response; this wait is normally immediate.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, sender: Sender) {
        if !sender.is_closed() {
            // A full pool drops the connection, which closes it.
            let _ = self.idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Open a new connection within `timeout` (TCP, and the TLS handshake when the
    /// group has `tls`).
    pub async fn connect(&self, timeout: Duration, tls: Option<&Connector>) -> io::Result<Sender> {
        let connect = async {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            match tls {
                None => handshake(stream).await,
                Some(tls) => handshake(tls.connect(stream, self.addr).await?).await,
            }
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(sender) => sender,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            )),
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.len()
    }
}

async fn handshake<I>(io: I) -> io::Result<Sender>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        // Ends when the target closes or the last sender is dropped.
        let _ = conn.await;
    });
    Ok(sender)
}

/// A connection checked out for one request, with the target's in-flight count.
pub struct Lease {
    sender: Sender,
    in_flight: InFlight,
}

impl Lease {
    pub fn new(sender: Sender, in_flight: InFlight) -> Self {
        Lease { sender, in_flight }
    }

    pub fn sender(&mut self) -> &mut Sender {
        &mut self.sender
    }

    /// Give up the connection (it closes) but keep the request counted in flight.
    pub fn into_in_flight(self) -> InFlight {
        self.in_flight
    }

    /// Return the connection to its target's pool; the in-flight count ends.
    pub fn release(self) {
        let Lease { sender, in_flight } = self;
        in_flight.target().pool.put(sender);
    }
}

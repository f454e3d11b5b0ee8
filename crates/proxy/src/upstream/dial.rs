//! Opening a TCP connection to a target, within the group's `connect_timeout`.
//!
//! Data path and control path (health checks). Kept apart from every protocol
//! handshake on purpose: HTTP/2 connections (`h2pool.rs`), dedicated upgrade
//! connections (`upgrade.rs`) and gRPC health probes all call `tcp` and then run
//! their own handshake on whatever stream they get, so that TLS towards targets
//! slots in between the two steps (dial → TLS with ALPN → h1/h2 handshake)
//! without touching the callers.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

/// Connect to `addr` within `timeout`, with Nagle off (requests are small writes).
pub async fn tcp(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(stream) => stream?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            ))
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

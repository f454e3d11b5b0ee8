//! One client connection: HTTP/1.1 keep-alive or h2c prior knowledge on the same socket.
//!
//! Data path. hyper-util's auto builder sniffs the HTTP/2 preface and picks the protocol;
//! the connection is watched by the server's `GracefulShutdown` so that a graceful stop
//! lets in-flight requests finish (HTTP/1.1 closes after the current response, HTTP/2
//! sends GOAWAY). The socket is wrapped in [`ResetOnKill`] so that a killed backend's
//! connections end with a RST, as a crashed process's would, and not with a clean FIN.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::control::{OpenConnection, Shared};
use crate::respond::respond;

pub(crate) type Builder = auto::Builder<TokioExecutor>;

/// hyper's defaults (keep-alive on, h2 flow control) plus a timer, which hyper's
/// HTTP/1 header-read timeout needs.
pub(crate) fn builder() -> Builder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Serves one accepted connection until the client closes it, the server drains it, or
/// the task is aborted.
pub(crate) async fn serve(
    stream: TcpStream,
    builder: Arc<Builder>,
    shared: Arc<Shared>,
    watcher: Watcher,
    _open: OpenConnection,
) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "could not set TCP_NODELAY");
    }
    let io = TokioIo::new(ResetOnKill {
        stream,
        shared: Arc::clone(&shared),
    });
    let service = service_fn(move |req| respond(req, Arc::clone(&shared)));
    if let Err(err) = watcher.watch(builder.serve_connection(io, service)).await {
        // Clients hanging up mid-request is routine for a test backend.
        tracing::debug!(%err, "connection ended with an error");
    }
}

/// A `TcpStream` that, when dropped after its backend was killed, sets `SO_LINGER` to 0
/// first so the close sends RST. Zero linger never blocks on close, unlike a non-zero one.
#[derive(Debug)]
struct ResetOnKill {
    stream: TcpStream,
    shared: Arc<Shared>,
}

impl Drop for ResetOnKill {
    fn drop(&mut self) {
        if self.shared.is_killed() {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResetOnKill {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnKill {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

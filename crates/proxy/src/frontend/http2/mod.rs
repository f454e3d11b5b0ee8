//! HTTP/2 from clients: the limits hyper's server (h2 0.4) keeps, the ones the
//! guard adds, and why a connection was closed.
//!
//! Data path. hyper serves HTTP/2 (`serve.rs`); this folder sets its limits
//! explicitly, each with what it stops (`builder`), wraps the client's stream in
//! the guard for the floods h2 answers without limit (`guard.rs`, over the frame
//! scanner in `frames.rs`), and tells from the error hyper's connection returns
//! whether ballast closed the connection with a GOAWAY carrying an error code, and
//! which (`closed_reason`, or the guard's own report), for
//! `ballast_http2_connections_closed_total`.
//!
//! The attacks and what stops each (README, "Hostile HTTP/2 clients"):
//! rapid reset — h2's pending-accept reset limit, then the guard's
//! `MAX_RESETS_PER_SECOND`; CONTINUATION flood — h2 bounds the CONTINUATION
//! frames of one header block by the header list limit; HPACK bomb — h2 stops
//! decoding at 4× `max_header_list_size`; SETTINGS and PING floods and a client
//! that keeps the window shut — the guard.
//!
//! May use: `forward::context` (the connection's state), `observe/`, `runtime/`.

pub mod frames;
pub mod guard;

use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::observe::metrics::ListenerMetrics;

pub use guard::Guard;

/// Streams one client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
/// RFC 9113 §6.5.2 recommends no fewer than 100; each holds a request, a
/// target's connection and up to `MAX_SEND_BUF` of its response.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Response bytes h2 buffers per stream before the response body waits for the
/// client's window (hyper's default is 400 KiB). Bounds what a client that never
/// reads holds: `MAX_CONCURRENT_STREAMS` × this = 6.25 MiB a connection.
pub const MAX_SEND_BUF: usize = 64 * 1024;

/// Request bytes a client may send ahead of ballast reading them: the
/// connection's receive window (1 MiB, hyper's default) bounds all its streams
/// together; a stream's window is the same, so one upload is not throttled.
pub const RECEIVE_WINDOW: u32 = 1024 * 1024;

/// Streams the client resets before hyper accepts them, at most, at any time
/// (h2's default; more is GOAWAY ENHANCE_YOUR_CALM, the fix of CVE-2023-26964).
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// Streams ballast may reset for the client's protocol errors before the
/// connection is closed with GOAWAY ENHANCE_YOUR_CALM (h2 0.4.2 added the limit;
/// h2 0.4.12 fixed its counting against "MadeYouReset", CVE-2025-8671).
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// The HPACK dynamic table the client may fill (SETTINGS_HEADER_TABLE_SIZE,
/// the RFC's default): what one connection's decoder keeps.
pub const HEADER_TABLE_SIZE: u32 = 4096;

/// Frames larger than this are a FRAME_SIZE_ERROR (the RFC's default).
pub const MAX_FRAME_SIZE: u32 = 16 * 1024;

/// hyper's HTTP/2 server with ballast's limits. The header list limit is the
/// listener's `max_request_head_size` (64 KiB by default), set per connection in
/// `serve.rs`: a request over it gets 431, and a header block that decodes to 4×
/// it (an HPACK bomb: one large field in the dynamic table named again and
/// again) stops the decoder and closes the connection with GOAWAY
/// ENHANCE_YOUR_CALM; CONTINUATION frames are counted against the same bound.
/// h2 0.4.20 has the fixes for rapid reset (0.3.22 and earlier), CONTINUATION
/// flood (0.4.4) and MadeYouReset (0.4.12).
pub fn builder() -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_send_buf_size(MAX_SEND_BUF)
        .initial_connection_window_size(RECEIVE_WINDOW)
        .initial_stream_window_size(RECEIVE_WINDOW)
        .adaptive_window(false)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS)
        .header_table_size(HEADER_TABLE_SIZE)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(ballast_config::ListenerConfig::DEFAULT_MAX_REQUEST_HEAD_SIZE as u32);
    // No keep-alive PINGs: a quiet connection is closed by the listener's
    // `idle_timeout` (`connection::supervise`), a stalled one by the guard.
    builder.keep_alive_interval(None);
    builder
}

/// The error code of the GOAWAY h2 closed a connection with, if it did (a
/// GOAWAY of its own with an error code). A client that went away, or sent a
/// GOAWAY itself, is not counted. The guard's closes reach hyper as I/O errors,
/// which h2 turns into text; the guard reports them itself (`Guard::tripped`).
pub fn closed_reason(err: &hyper::Error) -> Option<h2::Reason> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return match h2.reason() {
                Some(r) if h2.is_go_away() && h2.is_library() && r != h2::Reason::NO_ERROR => {
                    Some(r)
                }
                _ => None,
            };
        }
        source = e.source();
    }
    None
}

/// An HTTP/2 connection that, when it ends, counts the GOAWAY error code
/// ballast closed it with, if any (`ballast_http2_connections_closed_total`).
pub struct Counted<'a, C> {
    conn: Pin<&'a mut C>,
    metrics: &'a ListenerMetrics,
    /// The guard's error code if it closed the connection (0: it did not).
    verdict: &'a AtomicU32,
}

impl<'a, C> Counted<'a, C> {
    pub fn new(conn: Pin<&'a mut C>, metrics: &'a ListenerMetrics, verdict: &'a AtomicU32) -> Self {
        Counted {
            conn,
            metrics,
            verdict,
        }
    }

    /// The connection's own graceful shutdown, applied through the counter.
    pub fn shutdown_with(shutdown: impl Fn(Pin<&mut C>)) -> impl FnMut(Pin<&mut Counted<'a, C>>) {
        move |c| shutdown(c.get_mut().conn.as_mut())
    }
}

impl<C: Future<Output = hyper::Result<()>>> Future for Counted<'_, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.conn.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(()),
            Poll::Ready(Err(e)) => {
                let guard = this.verdict.load(Ordering::Relaxed);
                if guard != 0 {
                    this.metrics.http2_closed(guard);
                } else if let Some(reason) = closed_reason(&e) {
                    this.metrics.http2_closed(u32::from(reason));
                }
                tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
                Poll::Ready(())
            }
        }
    }
}

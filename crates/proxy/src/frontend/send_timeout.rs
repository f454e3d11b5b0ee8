//! The send timeout: a client that takes no byte of what ballast writes to it
//! for the listener's `response_send_timeout` is cut off (a slow reader).
//!
//! Data path, on every write to a client. A client that stops reading fills
//! its socket's buffers, and then every write to it waits. `TrackedIo`
//! (`connection.rs`) hands each write's outcome to its `Stall`: progress ends a
//! stall, a wait starts one, and once writes have waited `response_send_timeout`
//! in a row the write fails with `TimedOut` (counted `phase="send"`). Whatever
//! serves the connection (ballast's own HTTP/1.1 server, hyper's HTTP/1.1 or
//! HTTP/2, a WebSocket tunnel) sees its write fail and lets go, so one mechanism
//! covers them all. A write that goes through costs one branch; the timer is
//! made at the connection's first write that waits and then reused, moved only
//! when it fires early (the `send_by` pattern of `upstream/http1.rs`), and it
//! wakes the very task that waits to write.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::forward::context::ConnState;
use crate::observe::metrics::TimeoutPhase;

/// Writes to the client waiting: since when, and the timer that ends the wait
/// (made at the connection's first wait, then reused).
#[derive(Default)]
pub struct Stall {
    since: Option<tokio::time::Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Stall {
    /// What became of a write: any progress ends a stall; a wait starts one, or
    /// fails the write once writes have waited `response_send_timeout` in a row.
    pub fn sent<R>(
        &mut self,
        cx: &mut Context<'_>,
        state: &ConnState,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            if self.since.is_some() {
                self.since = None;
            }
            return polled;
        }
        let since = *self.since.get_or_insert_with(tokio::time::Instant::now);
        let deadline = since + state.send_timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        while timer.as_mut().poll(cx).is_ready() {
            if timer.deadline() >= deadline {
                state.timed_out(TimeoutPhase::Send);
                tracing::debug!(
                    limit = ?state.send_timeout,
                    "the client took nothing written to it within response_send_timeout: closed"
                );
                let e = io::Error::new(io::ErrorKind::TimedOut, "response_send_timeout");
                return Poll::Ready(Err(e));
            }
            // Set for an earlier stall: wait on.
            timer.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::frontend::connection::track;
    use crate::observe::metrics::ListenerMetrics;

    use super::*;

    /// Writes that take no byte for the send timeout fail, and are counted; a
    /// reader slow but steady (a read every quarter of the timeout) is never cut.
    #[tokio::test]
    async fn a_stalled_write_fails_after_the_send_timeout_a_slow_one_does_not() {
        let limit = Duration::from_millis(400);
        let metrics = Arc::new(ListenerMetrics::default());
        let (near, mut far) = tokio::io::duplex(64);
        let (mut io, _state) = track(near, metrics.clone(), limit);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..10 {
                tokio::time::sleep(limit / 4).await;
                far.read_exact(&mut buf).await.expect("read");
            }
            far // held open, never read again
        });
        let started = tokio::time::Instant::now();
        io.write_all(&[1u8; 640])
            .await
            .expect("a slow reader is served");
        assert_eq!(metrics.timeouts(TimeoutPhase::Send), 0);
        let e = io.write_all(&[2u8; 640]).await.expect_err("then it stalls");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(metrics.timeouts(TimeoutPhase::Send), 1);
        let took = started.elapsed();
        // Ten reads a quarter of the limit apart, then the limit.
        assert!(took >= limit * 10 / 4 + limit, "{took:?}");
        drop(reader);
    }
}

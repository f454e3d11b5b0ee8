//! The body of a request on its way to a target: the client's body streamed
//! through, or none; and what became of the client's body (`Tally`).
//!
//! Data path. An enum, not a boxed trait object, so forwarding a body costs no
//! allocation per frame; frames pass as they are, trailers included. A request
//! without a body can be sent again to another target (`forward/retry.rs`).
//!
//! Reading the client's body can fail while it is sent to a target: a malformed
//! chunk, HTTP/2 DATA that disagrees with `content-length`, a client that closed
//! its connection or reset its stream mid-body. That is the client's failure, not
//! the target's, and only this side can tell: towards an HTTP/2 target, hyper's
//! client reads the body in its own task, resets the stream, and answers the
//! request with an error that looks like any other reset. So the body records the
//! failure where it happens, in the `Tally` it shares with the request's handler
//! (one small allocation per request that has a body), which also counts the
//! bytes that passed for the access log. The handler then answers the client's
//! failure as the client's (`forward/error.rs`).
//!
//! Slow bodies. A body must arrive within the listener's `request_body_timeout`,
//! extended by one second for every `request_body_min_rate` bytes received (the
//! rule of Apache's mod_reqtimeout: a trickle is cut, a large upload at a steady
//! pace never is). What is measured is the time ballast waited on the client:
//! from a poll that found no data to the next frame. Time the target takes to
//! accept what was already read is not counted, since the body is not polled
//! then. A body that times out records `ClientFault::TimedOut` and fails as any
//! broken body does: the handler answers 408 if no response has started, or the
//! exchange is aborted. A body that arrives without a wait costs no timer and
//! no clock read; the first wait makes the timer, later ones reuse it.
//!
//! Once the target has answered while the body still streams (an HTTP/2 target
//! that answers early: a gRPC bidirectional stream, a watch), the clock stops.
//! The target has taken the exchange on, and a client that sends its next
//! message minutes later is that conversation, not a slow POST: ballast's
//! holding of it is bounded per connection and stream as any request's.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::observe::metrics::{ListenerMetrics, TimeoutPhase};
use crate::runtime::now_ms;

/// Why the client's body broke off, as the target's side sees it.
pub type ClientBodyError = Box<dyn std::error::Error + Send + Sync>;

/// How long a client's request body may take to arrive: the listener's
/// `request_body_timeout` and `request_body_min_rate` (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyPace {
    pub timeout_ms: u64,
    /// Bytes that earn one more second; 0: none.
    pub min_rate: u64,
}

impl BodyPace {
    pub fn new(timeout: Duration, min_rate: u64) -> Self {
        BodyPace {
            timeout_ms: timeout.as_millis() as u64,
            min_rate,
        }
    }

    /// How long a body that brought `bytes` may have waited on its client, in ms.
    pub fn allowance_ms(&self, bytes: u64) -> u64 {
        let earned = match self.min_rate {
            0 => 0,
            rate => bytes.saturating_mul(1000) / rate,
        };
        self.timeout_ms.saturating_add(earned)
    }
}

impl Default for BodyPace {
    fn default() -> Self {
        use ballast_config::client_timeouts::ClientTimeouts as C;
        BodyPace::new(
            C::DEFAULT_REQUEST_BODY_TIMEOUT,
            C::DEFAULT_REQUEST_BODY_MIN_RATE,
        )
    }
}

/// The body of a request on its way to a target.
pub enum UpstreamBody {
    /// The client's body, streamed through, with its tally and how long it has
    /// waited on the client.
    Client(Incoming, Arc<Tally>, Waits),
    /// No body; such a request can be sent again to another target.
    Empty,
}

impl UpstreamBody {
    /// The client's body, with a fresh tally, paced by `pace`; a timeout counts
    /// in `metrics`.
    pub fn client(body: Incoming, pace: BodyPace, metrics: &Arc<ListenerMetrics>) -> Self {
        let tally = Tally {
            bytes: AtomicU64::new(0),
            fault: AtomicU8::new(0),
            answered: AtomicBool::new(false),
            pace,
            metrics: Some(metrics.clone()),
        };
        UpstreamBody::Client(body, Arc::new(tally), Waits::default())
    }

    /// The tally of the client's body, if there is one.
    pub fn tally(&self) -> Option<&Arc<Tally>> {
        match self {
            UpstreamBody::Client(_, tally, _) => Some(tally),
            UpstreamBody::Empty => None,
        }
    }
}

/// What became of a client's request body: the bytes that passed, and why
/// reading it failed, if it did.
#[derive(Default)]
pub struct Tally {
    bytes: AtomicU64,
    /// 0, or a `ClientFault` plus one.
    fault: AtomicU8,
    /// The target's response head came back: the body's clock stops.
    answered: AtomicBool,
    pace: BodyPace,
    /// The listener's cells, for a body that timed out.
    metrics: Option<Arc<ListenerMetrics>>,
}

/// How long a body has waited on its client (ms on `now_ms`'s clock).
#[derive(Default)]
pub struct Waits {
    /// Waits that ended.
    waited_ms: u64,
    /// When the wait now going on began; 0: none.
    since_ms: u64,
    /// Wakes the body when its allowance runs out (made at its first wait).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Waits {
    /// A frame arrived: a wait, if any, ended.
    fn arrived(&mut self) {
        if self.since_ms != 0 {
            self.waited_ms += now_ms().saturating_sub(self.since_ms);
            self.since_ms = 0;
        }
    }

    /// The client's body had nothing: wait, or fail once the allowance is spent.
    fn pending(
        &mut self,
        cx: &mut Context<'_>,
        tally: &Tally,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        if tally.answered.load(Ordering::Relaxed) {
            // No clock once the target has answered; the client's body wakes us.
            self.timer = None;
            return Poll::Pending;
        }
        let now = now_ms();
        if self.since_ms == 0 {
            self.since_ms = now;
        }
        loop {
            let now = now_ms();
            let spent = self.waited_ms + now.saturating_sub(self.since_ms);
            let allowance = tally.pace.allowance_ms(tally.bytes());
            if spent >= allowance {
                tally.record(ClientFault::TimedOut);
                if let Some(metrics) = &tally.metrics {
                    metrics.timed_out(TimeoutPhase::Body);
                }
                tracing::debug!(
                    waited_ms = spent,
                    bytes = tally.bytes(),
                    "the client's request body did not arrive within request_body_timeout"
                );
                return Poll::Ready(Some(Err("request_body_timeout".into())));
            }
            let deadline = tokio::time::Instant::now() + Duration::from_millis(allowance - spent);
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() > deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Fired, perhaps set for an earlier wait: look again, and wait on.
            timer.as_mut().reset(deadline);
        }
    }
}

impl Tally {
    /// The target answered while the body may still stream: stop its clock.
    pub fn answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    /// Bytes of body data read from the client.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Why reading the client's body failed, if it did.
    pub fn fault(&self) -> Option<ClientFault> {
        match self.fault.load(Ordering::Acquire) {
            1 => Some(ClientFault::Invalid),
            2 => Some(ClientFault::Closed),
            3 => Some(ClientFault::TimedOut),
            _ => None,
        }
    }

    fn record(&self, fault: ClientFault) {
        let code = match fault {
            ClientFault::Invalid => 1,
            ClientFault::Closed => 2,
            ClientFault::TimedOut => 3,
        };
        self.fault.store(code, Ordering::Release);
    }
}

/// Why reading a client's request body failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFault {
    /// What the client sent is not a valid body: a malformed chunk, HTTP/2 DATA
    /// that disagrees with `content-length`.
    Invalid,
    /// The client went away mid-body: it closed or broke its connection, or reset
    /// its HTTP/2 stream.
    Closed,
    /// The body did not arrive within the listener's `request_body_timeout`
    /// (as extended by `request_body_min_rate`).
    TimedOut,
}

impl ClientFault {
    /// The fault behind an error of hyper's reading a client's body. Invalid when
    /// the body's framing was broken: hyper's HTTP/1.1 decoder says so with an I/O
    /// error of kind `InvalidData` or `InvalidInput`, h2 by resetting the stream
    /// (or the connection) itself, a library reset: `content-length` disagreed
    /// with the DATA, or flow control was broken. Everything else means the client
    /// went away: the connection ended early (`UnexpectedEof`) or broke, or the
    /// client reset its stream or the whole connection.
    pub fn of(error: &hyper::Error) -> ClientFault {
        let mut cause = std::error::Error::source(error);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
                        ClientFault::Invalid
                    }
                    _ => ClientFault::Closed,
                };
            }
            if let Some(h2) = e.downcast_ref::<h2::Error>() {
                return match h2.get_io() {
                    Some(_) => ClientFault::Closed,
                    None if h2.is_library() => ClientFault::Invalid,
                    None => ClientFault::Closed,
                };
            }
            cause = e.source();
        }
        ClientFault::Closed
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match self.get_mut() {
            UpstreamBody::Client(b, tally, waits) => {
                if tally.fault().is_some() {
                    // Timed out (or broke) before: stays failed.
                    return Poll::Ready(Some(Err("request body failed".into())));
                }
                let polled = Pin::new(b).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        waits.arrived();
                        if let Some(data) = frame.data_ref() {
                            tally.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        let fault = ClientFault::of(e);
                        tracing::debug!(?fault, error = %e, "reading the client's request body failed");
                        tally.record(fault);
                    }
                    Poll::Ready(None) => {}
                    Poll::Pending => return waits.pending(cx, tally),
                }
                polled.map(|f| f.map(|r| r.map_err(Into::into)))
            }
            UpstreamBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Client(b, _, _) => b.is_end_stream(),
            UpstreamBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Client(b, _, _) => b.size_hint(),
            UpstreamBody::Empty => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_earns_a_second_per_min_rate_bytes() {
        let pace = BodyPace::new(Duration::from_secs(30), 1024);
        assert_eq!(pace.allowance_ms(0), 30_000);
        assert_eq!(pace.allowance_ms(512), 30_500);
        assert_eq!(pace.allowance_ms(10 * 1024 * 1024), 30_000 + 10_240_000);
        assert!(
            pace.allowance_ms(u64::MAX) > 1 << 50,
            "saturates, never wraps"
        );
        let whole = BodyPace::new(Duration::from_millis(500), 0);
        assert_eq!(whole.allowance_ms(1 << 30), 500);
    }
}

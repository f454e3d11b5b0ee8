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

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The body of a request on its way to a target.
pub enum UpstreamBody {
    /// The client's body, streamed through, with its tally.
    Client(Incoming, Arc<Tally>),
    /// No body; such a request can be sent again to another target.
    Empty,
}

impl UpstreamBody {
    /// The client's body, with a fresh tally.
    pub fn client(body: Incoming) -> Self {
        UpstreamBody::Client(body, Arc::default())
    }

    /// The tally of the client's body, if there is one.
    pub fn tally(&self) -> Option<&Arc<Tally>> {
        match self {
            UpstreamBody::Client(_, tally) => Some(tally),
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
}

impl Tally {
    /// Bytes of body data read from the client.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Why reading the client's body failed, if it did.
    pub fn fault(&self) -> Option<ClientFault> {
        match self.fault.load(Ordering::Acquire) {
            1 => Some(ClientFault::Invalid),
            2 => Some(ClientFault::Closed),
            _ => None,
        }
    }

    fn record(&self, fault: ClientFault) {
        let code = match fault {
            ClientFault::Invalid => 1,
            ClientFault::Closed => 2,
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
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Client(b, tally) => {
                let polled = Pin::new(b).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            tally.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        let fault = ClientFault::of(e);
                        tracing::debug!(?fault, error = %e, "reading the client's request body failed");
                        tally.record(fault);
                    }
                    _ => {}
                }
                polled
            }
            UpstreamBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Client(b, _) => b.is_end_stream(),
            UpstreamBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Client(b, _) => b.size_hint(),
            UpstreamBody::Empty => SizeHint::with_exact(0),
        }
    }
}

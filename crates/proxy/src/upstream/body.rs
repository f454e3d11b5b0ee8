//! The body of a request on its way to a target: the client's body streamed
//! through (its bytes counted when the access log is on), or none.
//!
//! Data path. An enum, not a boxed trait object, so forwarding a body costs no
//! allocation; frames pass as they are, trailers included. A request without a
//! body can be sent again to another target (`forward/retry.rs`).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The body of a request on its way to a target.
pub enum UpstreamBody {
    /// The client's body, streamed through; its bytes counted when logging.
    Client(Incoming, Option<Arc<AtomicU64>>),
    /// No body; such a request can be sent again to another target.
    Empty,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Client(b, counter) => {
                let polled = Pin::new(b).poll_frame(cx);
                if let (Poll::Ready(Some(Ok(frame))), Some(counter)) = (&polled, counter) {
                    if let Some(data) = frame.data_ref() {
                        counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
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

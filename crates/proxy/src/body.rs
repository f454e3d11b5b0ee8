//! Body types of the data path: what goes to a target and what goes to a client.
//!
//! Data path. Enums instead of boxed trait objects, so forwarding a body costs no
//! allocation. Bodies stream frame by frame with the peers' backpressure, so memory
//! stays bounded whatever their size. The response body also carries the guards that
//! must live exactly as long as the response: the target's in-flight count, the
//! pooled connection (returned to the pool only once the response ended cleanly) and
//! the client connection's activity count (for its idle timeout).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::connection::Activity;
use crate::pool::Lease;

/// The body of a request on its way to a target.
pub enum UpstreamBody {
    /// The client's body, streamed through.
    Client(Incoming),
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
            UpstreamBody::Client(b) => Pin::new(b).poll_frame(cx),
            UpstreamBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Client(b) => b.is_end_stream(),
            UpstreamBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Client(b) => b.size_hint(),
            UpstreamBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The body of a response on its way to a client.
pub struct ResponseBody {
    kind: Kind,
    /// Keeps the client connection counted as active until the response is done.
    _activity: Option<Activity>,
}

enum Kind {
    /// A body ballast produced itself.
    Full(Option<Bytes>),
    /// A target's body, streamed through; `lease` goes back to the pool at its end.
    Upstream {
        body: Incoming,
        lease: Option<Lease>,
    },
}

impl ResponseBody {
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        ResponseBody {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
            _activity: None,
        }
    }

    pub fn upstream(body: Incoming, lease: Lease) -> Self {
        ResponseBody {
            kind: Kind::Upstream {
                body,
                lease: Some(lease),
            },
            _activity: None,
        }
    }

    pub fn with_activity(mut self, activity: Activity) -> Self {
        self._activity = Some(activity);
        self
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Upstream { body, lease } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                if let Poll::Ready(None) = polled {
                    // The response ended cleanly: its connection can serve another.
                    if let Some(lease) = lease.take() {
                        lease.release();
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // A body that was complete from the start (no content, HEAD, 204, 304) is never
        // polled by the server; its connection is still good to reuse. A body dropped
        // half-read is not: its lease drops with it and the connection closes.
        if let Kind::Upstream { body, lease } = &mut self.kind {
            if body.is_end_stream() {
                if let Some(lease) = lease.take() {
                    lease.release();
                }
            }
        }
    }
}

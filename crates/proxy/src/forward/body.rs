//! Body types of the data path: what goes to a target and what goes to a client.
//!
//! Data path. Enums instead of boxed trait objects, so forwarding a body costs no
//! allocation. Bodies stream frame by frame with the peers' backpressure, so memory
//! stays bounded whatever their size. The response body also carries the guards that
//! must live exactly as long as the response: the target's in-flight count, the
//! pooled connection (returned to the pool only once the response ended cleanly) or
//! the HTTP/2 stream's place on its shared connection (`Hold`), and the client
//! connection's activity count (for its idle timeout), and the request's place
//! among its group's requests in flight (circuit breaker, load shedding). Frames
//! pass as they are, so trailers (gRPC's `grpc-status`) cross in both directions.
//!
//! A client's request body counts the bytes that pass (a plain add per frame) in
//! the tally it shares with its handler, which also records why the body broke off
//! if it did (`upstream/body.rs`). With the access log on, the response body counts
//! its bytes too and carries the request's log record: it is completed and handed
//! to the log writer when the body ends or is dropped, so its times and sizes are
//! the whole exchange's.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::forward::context::Activity;
use crate::observe::access_log::{AccessLog, AccessRecord};
use crate::observe::group::Held;
use crate::observe::shedding::Admitted;
use crate::upstream::body::{Tally, UpstreamBody};
use crate::upstream::http1::BodyReader;
use crate::upstream::http2::StreamGuard;
use crate::upstream::target::InFlight;

/// A client's request body as it arrived: hyper's (HTTP/2, and the HTTP/1.1
/// requests hyper serves), or none (the requests ballast's own HTTP/1.1 server
/// takes are those without a body, `frontend/http1`).
pub enum RequestBody {
    Incoming(Incoming),
    Empty,
}

impl RequestBody {
    /// The body to send on, paced by the connection's listener: `Empty` when
    /// there is nothing to stream.
    pub fn into_upstream(self, conn: &crate::forward::ConnCtx) -> UpstreamBody {
        match self {
            RequestBody::Incoming(body) if !body.is_end_stream() => {
                UpstreamBody::client(body, conn.body_pace, &conn.metrics)
            }
            _ => UpstreamBody::Empty,
        }
    }
}

/// The body of a response on its way to a client.
pub struct ResponseBody {
    kind: Kind,
    /// Keeps the client connection counted as active until the response is done.
    _activity: Option<Activity>,
    /// The access-log record to complete and send when the body is done.
    log: Option<Box<PendingLog>>,
    /// The request's place among its group's requests in flight (circuit
    /// breaker), given back when the response ends.
    _place: Option<Held>,
    /// The request's place under its group's concurrency limit (load
    /// shedding), given back when the response ends.
    _shed: Option<Admitted>,
}

/// An access-log record waiting for its response body to end: boxed once when
/// the request is planned, filled in as it goes, and handed as is to the body.
pub struct PendingLog {
    pub record: AccessRecord,
    sink: Arc<AccessLog>,
    /// When the response head was ready.
    head_at: Instant,
    /// The request body's tally, for the bytes that came in.
    bytes_in: Option<Arc<Tally>>,
    bytes_out: u64,
    ended: bool,
}

impl PendingLog {
    /// `now`: any instant (the request's arrival); `responded` sets the real one.
    pub fn new(record: AccessRecord, sink: Arc<AccessLog>, now: Instant) -> Self {
        PendingLog {
            record,
            sink,
            head_at: now,
            bytes_in: None,
            bytes_out: 0,
            ended: false,
        }
    }

    /// The response head is ready: the response's own time starts now.
    pub fn responded(&mut self, bytes_in: Option<Arc<Tally>>) {
        self.head_at = Instant::now();
        self.bytes_in = bytes_in;
    }

    fn finish(mut self: Box<Self>, end_stream: bool) {
        let record = &mut self.record;
        record.bytes_out = self.bytes_out;
        record.bytes_in = self.bytes_in.as_ref().map_or(0, |tally| tally.bytes());
        record.response_processing_time = Some(self.head_at.elapsed());
        record.complete = self.ended || end_stream;
        self.sink.send(&self.record);
    }
}

enum Kind {
    /// A body ballast produced itself.
    Full(Option<Bytes>),
    /// An HTTP/1.1 target's body, read from its connection, which goes back to
    /// the pool at the body's end.
    Upstream(BodyReader),
    /// A target's body on a connection that is not pooled: an HTTP/2 stream, or
    /// a dedicated upgrade connection the target declined to upgrade.
    Held { body: Incoming, _hold: Hold },
}

/// What a response on an unpooled connection keeps alive until it ends (held
/// for its `Drop` only, never read).
#[allow(dead_code)]
pub enum Hold {
    /// The HTTP/2 stream's place on its connection, and the target's count.
    Stream(StreamGuard),
    /// The target's in-flight count only.
    Request(InFlight),
}

impl ResponseBody {
    /// The length of a body ballast produced itself (`None` for a target's), so
    /// that a HEAD response can announce what a GET would have sent.
    pub fn own_length(&self) -> Option<u64> {
        match &self.kind {
            Kind::Full(data) => Some(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Upstream(_) | Kind::Held { .. } => None,
        }
    }

    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        ResponseBody {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
            _activity: None,
            log: None,
            _place: None,
            _shed: None,
        }
    }

    pub fn upstream(reader: BodyReader) -> Self {
        ResponseBody {
            kind: Kind::Upstream(reader),
            _activity: None,
            log: None,
            _place: None,
            _shed: None,
        }
    }

    pub fn held(body: Incoming, hold: Hold) -> Self {
        ResponseBody {
            kind: Kind::Held { body, _hold: hold },
            _activity: None,
            log: None,
            _place: None,
            _shed: None,
        }
    }

    pub fn with_activity(mut self, activity: Activity) -> Self {
        self._activity = Some(activity);
        self
    }

    pub fn with_place(mut self, place: Option<Held>) -> Self {
        self._place = place;
        self
    }

    pub fn with_shed(mut self, place: Option<Admitted>) -> Self {
        self._shed = place;
        self
    }

    pub fn with_log(mut self, log: Box<PendingLog>) -> Self {
        self.log = Some(log);
        self
    }
}

/// Why a response body broke off: the target's HTTP/1.1 connection or HTTP/2 stream.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled: Poll<Option<Result<Frame<Bytes>, BodyError>>> = match &mut this.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Upstream(reader) => Pin::new(reader)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
            Kind::Held { body, .. } => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
        };
        if let Some(log) = &mut this.log {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        log.bytes_out += data.len() as u64;
                    }
                }
                Poll::Ready(None) => log.ended = true,
                _ => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Upstream(reader) => reader.is_end_stream(),
            Kind::Held { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream(reader) => reader.size_hint(),
            Kind::Held { body, .. } => body.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // A body complete from the start (no content, HEAD, 204, 304) is never polled;
        // its connection went back to the pool when the head was read. A body dropped
        // half-read takes its connection with it, and that closes.
        let end_stream = self.is_end_stream();
        if let Some(log) = self.log.take() {
            log.finish(end_stream);
        }
    }
}

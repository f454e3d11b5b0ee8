//! One HTTP/1.1 connection to a target, driven by the task of the client request
//! that uses it.
//!
//! Data path. `Conn::send` writes the request head (and streams the body, with
//! `Content-Length` when its size is known and chunked otherwise), then reads until
//! it has the response head; `BodyReader` then hands the response body to hyper
//! frame by frame straight from the socket, and puts the connection back in its
//! pool the moment the body has ended cleanly. No task, channel or lock sits in
//! between. A connection borrows a read buffer once bytes of a response arrive
//! (not while it waits for them) and gives it back when the response has ended
//! (`buffers.rs`): a body small enough is copied out of it, so the buffer stays
//! whole and warm in the cache for the next response on any connection of the
//! worker. The request is written from a lent buffer too.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::client::TlsStream;
use tokio_util::io::poll_read_buf;

use crate::http1::chunked::{self, ChunkedDecoder, Decoded};
use crate::http1::codec::{self, Framing, ResponseHead};
use crate::http1::Error;
use crate::runtime::buffers::{self, Lent};
use crate::upstream::body::UpstreamBody;
use crate::upstream::pool::Lease;

/// Body data up to this size is copied into the write buffer with its chunk framing
/// and sent in one write.
const COALESCE: usize = 8 * 1024;

/// A connected socket to a target, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An HTTP/1.1 connection to a target with its buffers.
pub struct Conn {
    io: Stream,
    rbuf: BytesMut,
    /// It has carried a request before (it came from the pool).
    reused: bool,
    /// The response timeout's timer, kept from one request to the next (`send_by`).
    timer: Option<Pin<Box<Sleep>>>,
    /// Its place among its group's connections (circuit breaker), given back
    /// when it closes.
    _place: Option<crate::observe::group::Held>,
}

/// A failed exchange, and whether any of the request reached the socket.
pub struct SendError {
    pub error: Error,
    pub written: bool,
}

impl Conn {
    pub fn new(io: Stream) -> Self {
        Conn {
            io,
            rbuf: BytesMut::new(),
            reused: false,
            timer: None,
            _place: None,
        }
    }

    /// Count this connection in its group's place until it closes.
    pub fn hold(&mut self, place: crate::observe::group::Held) {
        self._place = Some(place);
    }

    #[cfg(test)]
    pub fn stream(&self) -> &Stream {
        &self.io
    }

    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// An idle connection is fit for another request if the target has not closed
    /// it and has sent nothing unasked. One non-blocking read tells: it must find
    /// nothing to read.
    pub fn is_usable(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut probe)
            .is_pending()
    }

    /// Ready to go back to the pool: the response ended where it said it would.
    /// An idle connection holds no read buffer (`buffers.rs`).
    pub fn into_idle(mut self) -> Option<Self> {
        self.reused = true;
        buffers::give_back(&mut self.rbuf);
        self.rbuf.is_empty().then_some(self)
    }

    /// `send`, with until `deadline` for the whole response head; `None` if it
    /// did not come by then.
    ///
    /// The timer is the connection's, kept from one request to the next and
    /// moved only when it fires: a timer that fires before `deadline` (it was
    /// set for an earlier request) is set again, and a later one is moved
    /// earlier. Made anew for each request, as `tokio::time::timeout` does, a
    /// timer takes the runtime's handle, a place in its timer wheel and then
    /// its removal, every request; this way a request reads the timer's
    /// deadline and compares.
    pub async fn send_by(
        &mut self,
        req: &mut Request<UpstreamBody>,
        deadline: Instant,
    ) -> Option<Result<ResponseHead, SendError>> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let mut timer = match self.timer.take() {
            Some(mut timer) => {
                if timer.deadline() > deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        let result = {
            let mut send = std::pin::pin!(self.send(req));
            std::future::poll_fn(|cx| {
                if let Poll::Ready(result) = send.as_mut().poll(cx) {
                    return Poll::Ready(Some(result));
                }
                while timer.as_mut().poll(cx).is_ready() {
                    if timer.deadline() >= deadline {
                        return Poll::Ready(None);
                    }
                    // Set for an earlier request: wait on.
                    timer.as_mut().reset(deadline);
                }
                Poll::Pending
            })
            .await
        };
        // Stop the timer from holding this task's waker until it fires: the task
        // may be long over by then, and would be kept in memory.
        let _ = timer.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        self.timer = Some(timer);
        result
    }

    /// Write the request and read the response head (informational responses are
    /// skipped).
    pub async fn send(
        &mut self,
        req: &mut Request<UpstreamBody>,
    ) -> Result<ResponseHead, SendError> {
        let body = req.body();
        let framing = if body.is_end_stream() {
            Framing::Empty
        } else {
            match body.size_hint().exact() {
                Some(n) => Framing::Length(n),
                None => Framing::Chunked,
            }
        };
        let written = |error: Error| SendError {
            error,
            written: true,
        };
        {
            // A lent buffer, warm in the cache, rather than one per connection,
            // which is cold when a thousand connections take turns; it goes back
            // before the response is awaited.
            let mut wbuf = Lent::default();
            buffers::reserve(&mut wbuf);
            codec::encode_request(req, framing, &mut wbuf);
            // The first write tells whether anything reached the target at all.
            let first = self.io.write(&wbuf).await.map_err(|e| SendError {
                error: e.into(),
                written: false,
            })?;
            if first < wbuf.len() {
                self.io
                    .write_all(&wbuf[first..])
                    .await
                    .map_err(|e| written(e.into()))?;
            }
            if framing != Framing::Empty {
                // Boxed: most requests have no body, and its room would be in
                // every request's future, copied with it.
                let sending = Box::pin(self.send_body(req.body_mut(), framing, &mut wbuf));
                sending.await.map_err(written)?;
            }
        }
        self.io.flush().await.map_err(|e| written(e.into()))?;
        // Hop-by-hop fields were removed from the client's request: a
        // `Connection` field here is ballast's own `close` (`hygiene/`).
        let last = req.headers().contains_key(http::header::CONNECTION);
        let mut head = self.read_head(req.method()).await.map_err(written)?;
        head.keep_alive &= !last;
        Ok(head)
    }

    async fn send_body(
        &mut self,
        body: &mut UpstreamBody,
        framing: Framing,
        wbuf: &mut BytesMut,
    ) -> Result<(), Error> {
        let chunked = framing == Framing::Chunked;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(Error::ClientBody)?;
            let frame = match frame.into_data() {
                Ok(data) => {
                    if data.is_empty() {
                        continue;
                    }
                    if !chunked {
                        self.io.write_all(&data).await?;
                    } else if data.len() <= COALESCE {
                        wbuf.clear();
                        chunked::encode_chunk_size(data.len(), wbuf);
                        wbuf.extend_from_slice(&data);
                        wbuf.extend_from_slice(b"\r\n");
                        self.io.write_all(wbuf).await?;
                    } else {
                        wbuf.clear();
                        chunked::encode_chunk_size(data.len(), wbuf);
                        self.io.write_all(wbuf).await?;
                        self.io.write_all(&data).await?;
                        self.io.write_all(b"\r\n").await?;
                    }
                    continue;
                }
                Err(frame) => frame,
            };
            if let (true, Ok(trailers)) = (chunked, frame.into_trailers()) {
                wbuf.clear();
                wbuf.extend_from_slice(b"0\r\n");
                for (name, value) in &trailers {
                    wbuf.extend_from_slice(name.as_str().as_bytes());
                    wbuf.extend_from_slice(b": ");
                    wbuf.extend_from_slice(value.as_bytes());
                    wbuf.extend_from_slice(b"\r\n");
                }
                wbuf.extend_from_slice(b"\r\n");
                return Ok(self.io.write_all(wbuf).await?);
            }
        }
        if chunked {
            self.io.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }

    async fn read_head(&mut self, method: &http::Method) -> Result<ResponseHead, Error> {
        let mut received = false;
        loop {
            if !self.rbuf.is_empty() {
                if let Some(head) = codec::parse_response(&mut self.rbuf, method)? {
                    if head.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(Error::Invalid("101 to a request that did not upgrade"));
                    }
                    if head.status.is_informational() {
                        continue; // 100 Continue, 103 Early Hints
                    }
                    return Ok(head);
                }
            }
            let rbuf = &mut self.rbuf;
            let io = &mut self.io;
            if std::future::poll_fn(|cx| io.poll_read_lent(cx, rbuf)).await? == 0 {
                return Err(if received || !self.rbuf.is_empty() {
                    Error::Incomplete
                } else {
                    Error::Closed
                });
            }
            received = true;
        }
    }
}

/// A response body read straight from the target's connection.
pub struct BodyReader {
    /// The connection, until the body has ended.
    lease: Option<Lease>,
    decoding: Decoding,
    keep_alive: bool,
}

enum Decoding {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
    Done,
}

impl BodyReader {
    pub fn new(lease: Lease, head: &ResponseHead) -> Self {
        let decoding = match head.framing {
            Framing::Empty | Framing::Length(0) => Decoding::Done,
            Framing::Length(n) => Decoding::Length(n),
            Framing::Chunked => Decoding::Chunked(ChunkedDecoder::default()),
            Framing::Close => Decoding::Close,
        };
        let mut reader = BodyReader {
            lease: Some(lease),
            decoding,
            keep_alive: head.keep_alive,
        };
        if matches!(reader.decoding, Decoding::Done) {
            reader.finish();
        }
        reader
    }

    /// The body ended: the connection goes back to the pool if it can carry
    /// another request, and closes otherwise.
    fn finish(&mut self) {
        self.decoding = Decoding::Done;
        if let Some(lease) = self.lease.take() {
            if self.keep_alive {
                lease.release();
            }
        }
    }
}

impl Body for BodyReader {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            let Some(lease) = this.lease.as_mut() else {
                return Poll::Ready(None);
            };
            let conn = lease.conn_mut();
            match &mut this.decoding {
                Decoding::Done => return Poll::Ready(None),
                Decoding::Length(left) if !conn.rbuf.is_empty() => {
                    let take = (*left).min(conn.rbuf.len() as u64) as usize;
                    let data = chunked::take_bytes(&mut conn.rbuf, take);
                    *left -= take as u64;
                    if *left == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decoding::Chunked(decoder) if !conn.rbuf.is_empty() => {
                    match decoder.decode(&mut conn.rbuf) {
                        Ok(Some(Decoded::Data(data))) => {
                            return Poll::Ready(Some(Ok(Frame::data(data))))
                        }
                        Ok(Some(Decoded::End(trailers))) => {
                            this.finish();
                            return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            this.lease = None;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Decoding::Close if !conn.rbuf.is_empty() => {
                    let len = conn.rbuf.len();
                    let data = chunked::take_bytes(&mut conn.rbuf, len);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                _ => {}
            }
            let read = ready!(conn.io.poll_read_lent(cx, &mut conn.rbuf));
            match read {
                Ok(0) if matches!(this.decoding, Decoding::Close) => {
                    this.keep_alive = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.lease = None;
                    return Poll::Ready(Some(Err(Error::Incomplete)));
                }
                Ok(_) => {}
                Err(e) => {
                    this.lease = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.decoding, Decoding::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoding {
            Decoding::Length(n) => SizeHint::with_exact(n),
            Decoding::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl Stream {
    /// Read into `buf`, borrowing a lent buffer if it has none. On plain TCP the
    /// buffer is taken only once the socket is readable, and given back if the
    /// read finds nothing: a connection waiting for its response holds no buffer,
    /// so the buffers in use are those with data in them, not one per request in
    /// flight (at 1,000 requests in flight, 32 MiB of buffers touched in turn and
    /// freed and faulted in again past the worker's free list). TLS reads through
    /// rustls, which keeps its own buffers, so it reads as before.
    fn poll_read_lent(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Plain(s) => {
                ready!(s.poll_read_ready(cx))?;
                buffers::reserve(buf);
                // `poll_read` rather than `try_read_buf`: it also forgets the
                // readiness after a short read, so the next wait begins without a
                // read that finds nothing.
                let read = poll_read_buf(Pin::new(s), cx, buf);
                if read.is_pending() {
                    buffers::give_back(buf); // the readiness was stale
                }
                read
            }
            Stream::Tls(s) => {
                buffers::reserve(buf);
                poll_read_buf(Pin::new(s.as_mut()), cx, buf)
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A connection waiting for its response holds no lent buffer, neither the
    /// one its request was written from nor one to read into: at 1,000 requests
    /// in flight that was 32 MiB of buffers, freed past the worker's free list
    /// and faulted in again.
    #[tokio::test]
    async fn a_request_waiting_for_its_response_holds_no_buffer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (got, got_rx) = tokio::sync::oneshot::channel();
        let (answer, answer_rx) = tokio::sync::oneshot::channel::<()>();
        let target = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                s.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            got.send(()).unwrap();
            answer_rx.await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            s
        });
        // One buffer on this thread's free list, to be lent or not.
        let mut warm = BytesMut::new();
        buffers::reserve(&mut warm);
        buffers::give_back(&mut warm);
        let free = buffers::free_count();

        let mut conn = Conn::new(Stream::Plain(TcpStream::connect(addr).await.unwrap()));
        let mut req = Request::builder()
            .uri("/")
            .header("host", "t")
            .body(UpstreamBody::Empty)
            .unwrap();
        {
            let send = conn.send(&mut req);
            tokio::pin!(send);
            tokio::select! {
                _ = &mut send => panic!("answered before the target wrote"),
                r = got_rx => r.unwrap(),
            }
            // The request is written and the client waits for the head.
            assert!(futures_util::poll!(&mut send).is_pending());
            assert_eq!(buffers::free_count(), free, "no buffer taken while waiting");

            answer.send(()).unwrap();
            let head = send.await.map_err(|e| e.error).unwrap();
            assert_eq!(head.status, StatusCode::OK);
        }
        assert_eq!(
            buffers::free_count(),
            free - 1,
            "the response is read into one"
        );
        assert_eq!(&conn.rbuf[..], b"ok");
        drop(target.await.unwrap());
    }
}

//! The HTTP/1.1 data path: prebuilt request bytes out, a hand-rolled response reader in.
//!
//! This is wrk's approach. The request (head and body) is encoded once before the run
//! ([`crate::request::raw`]) and each send is one `write_all` of those bytes. The
//! answer is read into a per-connection `BytesMut` that is reused for every request,
//! the head is parsed with `httparse` into a header array on the stack, and the body
//! is counted and discarded as it arrives. Nothing is allocated per request once the
//! buffer has reached its working size.
//!
//! Framing follows RFC 9112 for responses: no body for HEAD, 1xx, 204 and 304;
//! `Transfer-Encoding: chunked` (chunk extensions and trailers skipped); otherwise
//! `Content-Length`; otherwise the body runs to the end of the connection. Interim 1xx
//! answers (other than 101) are skipped. After `Connection: close`, an HTTP/1.0 answer
//! without keep-alive, a body delimited by the close, or bytes beyond the answer (the
//! server is out of step with us), the connection is not reused: [`Conn::ready`]
//! reports it, and the caller reconnects without counting an error, as with hyper.
//!
//! Errors map onto [`ErrorKind`] as hyper's do: I/O errors by their kind, an end of
//! stream inside an answer is `reset`, anything unparsable is `read`.

use std::cmp::min;
use std::io;

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::outcome::ErrorKind;

/// Most header lines an answer may have (hyper's default is 100 too).
const MAX_HEADERS: usize = 100;
/// Largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8 * 1024;
/// Read buffer size, and the free space kept before each read.
const READ_CHUNK: usize = 16 * 1024;

/// One HTTP/1.1 connection on any byte stream (plain TCP or TLS).
pub struct Conn<S> {
    stream: S,
    buf: BytesMut,
    closed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            closed: false,
        }
    }

    /// Whether another request may be sent. Notices, without waiting, a connection the
    /// server closed (or wrote to) while it was idle; on plain TCP this costs no system
    /// call, since tokio knows the socket has not become readable.
    pub fn ready(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.make_room();
        if self.stream.read_buf(&mut self.buf).now_or_never().is_some() {
            self.closed = true; // end of stream, an error, or bytes nobody asked for
        }
        !self.closed
    }

    /// Sends `request` and reads the whole answer; returns its status and body size.
    /// After an error the connection is not reused.
    pub async fn exchange(&mut self, request: &[u8], head: bool) -> Result<(u16, u64), ErrorKind> {
        let result = self.round_trip(request, head).await;
        if result.is_err() {
            self.closed = true;
        }
        result
    }

    async fn round_trip(&mut self, request: &[u8], head: bool) -> Result<(u16, u64), ErrorKind> {
        self.stream.write_all(request).await.map_err(io_error)?;
        self.stream.flush().await.map_err(io_error)?;
        let mut reader = Reader::new(head);
        while !reader.advance(&mut self.buf)? {
            self.make_room();
            if self
                .stream
                .read_buf(&mut self.buf)
                .await
                .map_err(io_error)?
                == 0
            {
                reader.eof()?;
            }
        }
        if reader.close || !self.buf.is_empty() {
            self.closed = true;
        }
        Ok((reader.status, reader.bytes))
    }

    /// Keeps free space for the next read. Once the buffer is empty (every answer is
    /// consumed whole) `reserve` moves back to the start of the allocation instead of
    /// allocating.
    fn make_room(&mut self) {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
    }
}

fn io_error(e: io::Error) -> ErrorKind {
    ErrorKind::of_io(e.kind())
}

/// Where the reader is in one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    UntilClose,
    Done,
}

/// Incremental reader of one answer, fed from the connection's buffer. Consumes
/// exactly the answer's bytes and leaves anything after it in the buffer.
#[derive(Debug)]
pub struct Reader {
    head_request: bool,
    state: State,
    pub status: u16,
    /// Body bytes (after chunk decoding).
    pub bytes: u64,
    /// The connection must not be reused after this answer.
    pub close: bool,
}

impl Reader {
    pub fn new(head_request: bool) -> Self {
        Self {
            head_request,
            state: State::Head,
            status: 0,
            bytes: 0,
            close: false,
        }
    }

    /// Consumes what it can of `buf`; `Ok(true)` once the answer is complete.
    pub fn advance(&mut self, buf: &mut BytesMut) -> Result<bool, ErrorKind> {
        loop {
            match self.state {
                State::Done => return Ok(true),
                State::Head => {
                    if !self.head(buf)? {
                        return Ok(false);
                    }
                }
                State::Length(0) => self.state = State::Done,
                State::Length(left) | State::ChunkData(left) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let n = min(left, buf.len() as u64);
                    buf.advance(n as usize); // n <= buf.len()
                    self.bytes += n;
                    self.state = match self.state {
                        State::Length(_) => State::Length(left - n),
                        _ if left == n => State::ChunkEnd,
                        _ => State::ChunkData(left - n),
                    };
                }
                State::ChunkSize => {
                    let Some((line, used)) = line(buf)? else {
                        return Ok(false);
                    };
                    let size = chunk_size(line)?;
                    buf.advance(used);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    let Some((line, used)) = line(buf)? else {
                        return Ok(false);
                    };
                    if !line.is_empty() {
                        return Err(ErrorKind::Read); // chunk longer than its size
                    }
                    buf.advance(used);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some((line, used)) = line(buf)? else {
                        return Ok(false);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                    buf.advance(used);
                }
                State::UntilClose => {
                    self.bytes += buf.len() as u64;
                    buf.clear();
                    return Ok(false);
                }
            }
        }
    }

    /// The stream ended: completes a close-delimited body, else the answer broke off.
    pub fn eof(&mut self) -> Result<(), ErrorKind> {
        if self.state == State::UntilClose {
            self.state = State::Done;
            Ok(())
        } else {
            Err(ErrorKind::Reset)
        }
    }

    /// Parses the head if it is all there; `Ok(false)` if more bytes are needed.
    fn head(&mut self, buf: &mut BytesMut) -> Result<bool, ErrorKind> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let used = match response.parse(buf) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(ErrorKind::Read),
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(_) => return Err(ErrorKind::Read),
        };
        let status = response.code.unwrap_or(0);
        let mut close = response.version == Some(0);
        let (mut length, mut encoded, mut chunked) = (None, false, false);
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = content_length(h.value)?;
                if length.is_some_and(|l| l != n) {
                    return Err(ErrorKind::Read);
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                encoded = true;
                chunked = h
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive")
                        && response.version == Some(0)
                    {
                        close = false;
                    }
                }
            }
        }
        buf.advance(used);
        if (100..200).contains(&status) && status != 101 {
            return Ok(true); // interim answer: the real one follows
        }
        self.status = status;
        self.close = close || status == 101;
        self.state = if self.head_request || status < 200 || status == 204 || status == 304 {
            State::Done
        } else if chunked {
            State::ChunkSize
        } else if encoded {
            State::UntilClose
        } else if let Some(n) = length {
            State::Length(n)
        } else {
            State::UntilClose
        };
        if self.state == State::UntilClose {
            self.close = true;
        }
        Ok(true)
    }
}

/// The next line of `buf` without its line end, and the bytes it spans with it.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ErrorKind> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let line = &buf[..end];
            Ok(Some((line.strip_suffix(b"\r").unwrap_or(line), end + 1)))
        }
        None if buf.len() > MAX_LINE => Err(ErrorKind::Read),
        None => Ok(None),
    }
}

/// A chunk-size line: hex digits, then optional whitespace and `;extensions`.
fn chunk_size(line: &[u8]) -> Result<u64, ErrorKind> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = line[digits..].trim_ascii_start();
    if digits == 0 || digits > 15 || !(rest.is_empty() || rest[0] == b';') {
        return Err(ErrorKind::Read);
    }
    let mut size = 0u64;
    for &b in &line[..digits] {
        size = size * 16 + u64::from((b as char).to_digit(16).unwrap_or(0));
    }
    Ok(size)
}

fn content_length(value: &[u8]) -> Result<u64, ErrorKind> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(ErrorKind::Read);
    }
    Ok(value
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;

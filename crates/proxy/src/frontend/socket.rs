//! A client's TCP socket, registered with tokio's I/O driver only once it has to
//! wait.
//!
//! Data path. Registering a socket with tokio is an `epoll_ctl` call and a
//! readiness slot in the driver (taken under the driver's lock), and leaving it
//! is another `epoll_ctl`. A client that opens a connection for one request has
//! usually sent it by the time the connection is accepted, and the response fits
//! the socket's send buffer: such a connection is read, answered and closed
//! without ever waiting, and HAProxy serves it with no `epoll_ctl` at all, where
//! tokio's `TcpListener::accept` registers every stream it returns.
//!
//! So a `Socket` starts out direct: reads and writes go straight to the
//! non-blocking socket, and the first one that would block registers it, after
//! which it is an ordinary tokio stream. Nothing is lost in between: the
//! registration is edge-triggered and reports readiness already present when
//! it is made. A parked connection woken by its client (`parking.rs`) starts out
//! direct too, since what woke it is there to be read.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes a direct read takes at once. Safe code reads only into
/// initialised memory, so a direct read zeroes what it may fill first: 16 KiB
/// (the largest head `frontend/http1` takes) cost 2.3% more user cycles per new
/// connection than 4 KiB. Heads up to this size are read whole; a longer one
/// arrives in pieces and is served by hyper (`frontend/http1`).
const DIRECT_READ: usize = 8 * 1024;

pub struct Socket {
    inner: Inner,
}

enum Inner {
    /// Not registered: read and written directly.
    Direct(std::net::TcpStream),
    /// Registered with tokio's driver.
    Driven(tokio::net::TcpStream),
    /// Registration failed; the socket is closed.
    Failed,
}

impl Socket {
    /// A socket not registered yet; it must be in non-blocking mode.
    pub fn direct(socket: std::net::TcpStream) -> Socket {
        Socket {
            inner: Inner::Direct(socket),
        }
    }

    /// Whether the socket waits in tokio's driver (it has had to wait once).
    #[cfg(test)]
    fn is_driven(&self) -> bool {
        matches!(self.inner, Inner::Driven(_))
    }

    /// The socket as a std one, out of tokio's driver if it was in it (for
    /// parking).
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        match self.inner {
            Inner::Direct(socket) => Ok(socket),
            Inner::Driven(socket) => socket.into_std(),
            Inner::Failed => Err(failed()),
        }
    }

    /// The socket, registered with tokio's driver if it was not yet.
    fn driven(&mut self) -> io::Result<&mut tokio::net::TcpStream> {
        // On failure the socket is dropped (closed) and stays `Failed`.
        self.inner = match std::mem::replace(&mut self.inner, Inner::Failed) {
            Inner::Direct(socket) => Inner::Driven(tokio::net::TcpStream::from_std(socket)?),
            other => other,
        };
        match &mut self.inner {
            Inner::Driven(socket) => Ok(socket),
            _ => Err(failed()),
        }
    }

    /// Ready when the socket may have something to read. A direct socket is
    /// taken to have (the read that finds nothing registers it); a driven one
    /// waits for its readiness.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.inner {
            Inner::Direct(_) => Poll::Ready(Ok(())),
            Inner::Driven(socket) => socket.poll_read_ready(cx),
            Inner::Failed => Poll::Ready(Err(failed())),
        }
    }

    /// Look at what the client has sent without taking it: waits until more
    /// than `seen` bytes are there, and gives how many are (up to `buf`'s
    /// length); no more than `seen` once the client has closed its side. Used for the
    /// PROXY protocol header (`proxy_protocol.rs`), whose bytes are taken off
    /// only once it is whole, so that what follows stays in the socket.
    ///
    /// tokio's own `peek` answers at once while anything is there, so waiting
    /// for *more* with it would spin; here a peek that finds nothing new clears
    /// the socket's readiness (`try_io`), and the wait is for the next arrival.
    /// The peek goes through a duplicate of the descriptor (`dup`, made only on
    /// this slow path), as tokio's stream exposes no peek to run inside
    /// `try_io`.
    pub async fn peek(&mut self, buf: &mut [u8], seen: usize) -> io::Result<usize> {
        let more = |peeked: io::Result<usize>| match peeked {
            Ok(n) if n > seen || n == 0 => Ok(n),
            Ok(_) => Err(io::Error::from(io::ErrorKind::WouldBlock)),
            Err(e) => Err(e),
        };
        if let Inner::Direct(socket) = &self.inner {
            match more(socket.peek(buf)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
        }
        let socket = self.driven()?;
        let dup =
            std::net::TcpStream::from(std::os::fd::AsFd::as_fd(&*socket).try_clone_to_owned()?);
        loop {
            let ready = socket.ready(tokio::io::Interest::READABLE).await?;
            match socket.try_io(tokio::io::Interest::READABLE, || more(dup.peek(buf))) {
                // The client has closed its side with nothing more: what is
                // there is all there will be (tokio keeps a closed side ready,
                // so waiting again would spin).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && ready.is_read_closed() => {
                    return dup.peek(buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return done,
            }
        }
    }

    /// A direct operation's result (`Ok(Ok(..))`), or, if it would have had to
    /// wait, the socket registered as tokio's stream (`Ok(Err(..))`).
    fn wait<R>(
        &mut self,
        direct: io::Result<R>,
    ) -> io::Result<Result<R, Pin<&mut tokio::net::TcpStream>>> {
        match direct {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // Not expected of a non-blocking socket; tokio tries again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            done => return done.map(Ok),
        }
        self.driven().map(|socket| Err(Pin::new(socket)))
    }
}

/// A socket already registered (the parking lot's tests).
#[cfg(test)]
impl From<tokio::net::TcpStream> for Socket {
    fn from(socket: tokio::net::TcpStream) -> Socket {
        Socket {
            inner: Inner::Driven(socket),
        }
    }
}

fn failed() -> io::Error {
    io::Error::other("the socket could not be registered with the I/O driver")
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = match &mut this.inner {
            Inner::Driven(socket) => return Pin::new(socket).poll_read(cx, buf),
            Inner::Direct(socket) => {
                let want = buf.remaining().min(DIRECT_READ);
                socket.read(buf.initialize_unfilled_to(want))
            }
            Inner::Failed => return Poll::Ready(Err(failed())),
        };
        match this.wait(read) {
            Ok(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Ok(Err(socket)) => socket.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Socket {
    /// A write, directly or, once it would block, by tokio's stream.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        direct: impl FnOnce(&mut std::net::TcpStream) -> io::Result<usize>,
        driven: impl FnOnce(
            Pin<&mut tokio::net::TcpStream>,
            &mut Context<'_>,
        ) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let written = match &mut self.inner {
            Inner::Driven(socket) => return driven(Pin::new(socket), cx),
            Inner::Direct(socket) => direct(socket),
            Inner::Failed => return Poll::Ready(Err(failed())),
        };
        match self.wait(written) {
            Ok(Ok(n)) => Poll::Ready(Ok(n)),
            Ok(Err(socket)) => driven(socket, cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(
            cx,
            |socket| socket.write(data),
            |socket, cx| socket.poll_write(cx, data),
        )
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(
            cx,
            |socket| socket.write_vectored(bufs),
            |socket, cx| socket.poll_write_vectored(cx, bufs),
        )
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // nothing is buffered here
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Direct(socket) => Poll::Ready(socket.shutdown(Shutdown::Write)),
            Inner::Driven(socket) => Pin::new(socket).poll_shutdown(cx),
            Inner::Failed => Poll::Ready(Err(failed())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair: the accepted side as a direct `Socket`, and the client.
    async fn pair() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        let accepted = accepted.into_std().expect("std");
        (Socket::direct(accepted), client)
    }

    #[tokio::test]
    async fn what_is_already_there_is_read_and_answered_without_registering() {
        let (mut socket, mut client) = pair().await;
        client.write_all(b"ping").await.expect("send");
        // Wait until the bytes are at the accepted socket, as a request is when a
        // connection is accepted under load: on a duplicate of it, so that the
        // socket itself stays out of the driver.
        let Inner::Direct(ref accepted) = socket.inner else {
            panic!("a new socket is direct");
        };
        let watch = TcpStream::from_std(accepted.try_clone().expect("dup")).expect("watch");
        watch.readable().await.expect("readable");
        drop(watch);
        let mut buf = [0u8; 4];
        socket.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        socket.write_all(b"pong").await.expect("write");
        assert!(!socket.is_driven(), "nothing had to wait");
        client.read_exact(&mut buf).await.expect("client read");
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test]
    async fn a_read_that_finds_nothing_registers_and_wakes_when_data_comes() {
        let (mut socket, mut client) = pair().await;
        let mut buf = [0u8; 5];
        let read = socket.read_exact(&mut buf);
        tokio::pin!(read);
        assert!(
            futures_util::poll!(read.as_mut()).is_pending(),
            "nothing sent yet"
        );
        client.write_all(b"hello").await.expect("send");
        read.await.expect("read");
        assert_eq!(&buf, b"hello");
        assert!(socket.is_driven(), "the read had to wait");
    }

    #[tokio::test]
    async fn a_write_that_fills_the_socket_waits_until_the_client_reads() {
        let (mut socket, mut client) = pair().await;
        let data = vec![7u8; 8 << 20]; // far more than the socket buffers hold
        let sent = data.len();
        let writer = tokio::spawn(async move {
            socket.write_all(&data).await.expect("write");
            socket.shutdown().await.expect("shutdown");
            socket
        });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        assert_eq!(got.len(), sent);
        assert!(got.iter().all(|&b| b == 7));
        let socket = writer.await.expect("task");
        assert!(socket.is_driven(), "the write had to wait");
    }

    #[tokio::test]
    async fn the_client_closing_reads_as_the_end() {
        let (mut socket, client) = pair().await;
        drop(client);
        let mut buf = Vec::new();
        let n = socket.read_to_end(&mut buf).await.expect("read");
        assert_eq!(n, 0);
    }
}

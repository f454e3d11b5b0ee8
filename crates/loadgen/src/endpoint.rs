//! Where the load goes and how one connection to it is opened: resolve the host once,
//! then TCP (+ TLS) for each connection, + the hyper handshake for HTTP/2. HTTP/1.1
//! connections are handed over as bare streams to [`crate::raw`].
//!
//! HTTP/2 uses hyper's connection-level client (`hyper::client::conn::http2`) rather
//! than the pooled legacy client: a load generator wants exactly `-c`
//! connections, each owned by one task, with no pool deciding behind its back when to
//! open or reuse one. The host is resolved once before the run so DNS never appears in
//! the measurements, and the first connection is opened before the clock starts so an
//! unreachable host fails fast with one line instead of a run full of connect errors.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The byte stream under one connection.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A freshly opened connection: the bare stream for HTTP/1.1, or for HTTP/2 the request
/// handle and the connection future that must be polled for anything to move. Built once per connection and destructured at
/// once, so the size difference between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Handshake {
    Http1(Stream),
    Http2(
        http2::SendRequest<Full<Bytes>>,
        http2::Connection<TokioIo<Stream>, Full<Bytes>, TokioExecutor>,
    ),
}

/// A resolved server and how to speak to it.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    server_name: ServerName<'static>,
    tls: Option<TlsConnector>,
    http2: bool,
}

impl Endpoint {
    /// Resolves `url`'s host, or `connect_to` (`HOST:PORT`) when given: then the
    /// connections go there while the TLS server name stays the URL's host (once,
    /// before the run).
    pub async fn resolve(
        url: &Uri,
        tls: Option<Arc<rustls::ClientConfig>>,
        http2: bool,
        connect_to: Option<&str>,
    ) -> anyhow::Result<Self> {
        let host = url.host().ok_or_else(|| anyhow!("the URL has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let https = url.scheme_str() == Some("https");
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addr = match connect_to {
            None => tokio::net::lookup_host((host, port))
                .await
                .with_context(|| format!("cannot resolve {host}"))?
                .next()
                .ok_or_else(|| anyhow!("{host} has no address"))?,
            Some(to) => tokio::net::lookup_host(to)
                .await
                .with_context(|| format!("--connect-to: cannot resolve {to}"))?
                .next()
                .ok_or_else(|| anyhow!("--connect-to: {to} has no address"))?,
        };
        let server_name = ServerName::try_from(host.to_owned())
            .with_context(|| format!("{host} is not a valid TLS server name"))?;
        let tls = match (https, tls) {
            (true, Some(config)) => Some(TlsConnector::from(config)),
            (true, None) => return Err(anyhow!("https URL without a TLS configuration")),
            (false, _) => None,
        };
        Ok(Self {
            addr,
            server_name,
            tls,
            http2,
        })
    }

    /// Opens one connection: TCP, TLS when https, then the HTTP/2 handshake if asked.
    pub async fn connect(&self) -> anyhow::Result<Handshake> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(connector) => {
                let tls = connector.connect(self.server_name.clone(), tcp).await?;
                if self.http2 && tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return Err(anyhow!("the server did not agree to HTTP/2 (ALPN h2)"));
                }
                Stream::Tls(Box::new(tls))
            }
        };
        if !self.http2 {
            return Ok(Handshake::Http1(stream));
        }
        let (send, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Handshake::Http2(send, conn))
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

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
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

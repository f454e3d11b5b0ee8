//! Test helpers: start a backend, send requests over fresh connections, poll counters.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ballast_backend::{BackendConfig, BackendHandle};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

/// How long anything that should happen promptly may take on a slow, loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub async fn start(config: BackendConfig) -> BackendHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    ballast_backend::spawn(listener, config)
}

pub async fn start_named(name: &str) -> BackendHandle {
    start(BackendConfig::new(name)).await
}

/// A response with its whole body collected.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no header {name} in {:?}", self.headers))
    }
}

pub fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri)
        .header("host", "backend.test")
        .body(Full::default())
        .expect("valid request")
}

/// An HTTP/1.1 client connection whose driver runs on its own task.
pub async fn h1(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    h1_with(addr).await
}

pub async fn h1_with<B>(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<B>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.context("connect")?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// An h2c (prior knowledge) client connection whose driver runs on its own task.
pub async fn h2(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.context("connect")?;
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one request over a fresh HTTP/1.1 connection and collects the response.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
    let mut sender = h1(addr).await?;
    let response = sender.send_request(req).await?;
    collect(response).await
}

pub async fn collect(response: http::Response<hyper::body::Incoming>) -> anyhow::Result<Reply> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Polls `condition` until it holds, failing the test after [`PATIENCE`]. For state that
/// only shows as a counter on the handle; everything else is awaited directly.
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A request body of `count` copies of one chunk, produced as the connection asks for
/// them (the same `Bytes` each time, so a big upload costs the test one chunk).
#[derive(Debug)]
pub struct Repeat {
    chunk: Bytes,
    left: usize,
}

impl Repeat {
    pub fn new(chunk: Bytes, count: usize) -> Self {
        Self { chunk, left: count }
    }
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.chunk.len() * self.left) as u64)
    }
}

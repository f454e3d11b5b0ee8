//! A real gRPC server and client for tests: tonic's echo service of
//! `proto/echo.proto` (unary, client-, server- and bidirectional streaming) with
//! the standard health service (tonic-health), on 127.0.0.1:0, in cleartext
//! (h2c) or over TLS.
//!
//! Test support only. The server counts the TCP connections it accepts (so a
//! test can check how ballast multiplexes) and notes when a server stream's
//! client went away (so a test can see a cancellation arrive). Over TLS, tonic
//! serves the streams tokio-rustls hands it (`TlsConn`), with the ALPN the test
//! chooses, so tonic's own `tls` feature (and its extra crates) is not needed.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tonic::metadata::MetadataValue;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::{Request, Response, Status, Streaming};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::pki::Leaf;

pub mod echo {
    tonic::include_proto!("ballast.echo");
}

use echo::echo_server::{Echo, EchoServer};
pub use echo::{echo_client::EchoClient, EchoReply, EchoRequest};
pub use prost;
pub use tonic;

/// Messages up to this size go through (the 4 MiB test sends a little more).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// The service name the health service reports on.
pub const SERVICE: &str = "ballast.echo.Echo";

/// What the echo service shares with its test.
#[derive(Default)]
pub struct Seen {
    /// TCP connections accepted.
    pub connections: AtomicUsize,
    /// Server streams whose client went away before the stream ended.
    pub cancelled: AtomicUsize,
    pub cancelled_notify: Notify,
}

struct EchoService {
    seen: Arc<Seen>,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

fn reply(req: &EchoRequest, peer: Option<SocketAddr>) -> EchoReply {
    EchoReply {
        message: req.message.clone(),
        payload: req.payload.clone(),
        peer: peer.map(|p| p.to_string()).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, req: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let peer = req.remote_addr();
        let custom = req.metadata().get("x-custom").cloned();
        let msg = req.into_inner();
        if msg.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(msg.delay_ms)).await;
        }
        if msg.message == "fail" {
            let mut status = Status::permission_denied("denied by echo");
            status
                .metadata_mut()
                .insert("x-reason", MetadataValue::from_static("test"));
            return Err(status);
        }
        let mut response = Response::new(reply(&msg, peer));
        if let Some(v) = custom {
            response.metadata_mut().insert("x-echo-custom", v);
        }
        Ok(response)
    }

    async fn client_stream(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        let mut stream = req.into_inner();
        let mut all = EchoReply::default();
        while let Some(msg) = stream.next().await {
            let msg = msg?;
            all.message.push_str(&msg.message);
            all.payload.extend_from_slice(&msg.payload);
        }
        Ok(Response::new(all))
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        req: Request<EchoRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let msg = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let seen = self.seen.clone();
        tokio::spawn(async move {
            for i in 0..msg.count {
                let item = EchoReply {
                    message: format!("{}-{i}", msg.message),
                    ..Default::default()
                };
                if tx.send(Ok(item)).await.is_err() {
                    break;
                }
                if msg.delay_ms > 0 {
                    tokio::select! {
                        () = tx.closed() => break,
                        () = tokio::time::sleep(Duration::from_millis(msg.delay_ms)) => {}
                    }
                }
            }
            if tx.is_closed() {
                seen.cancelled.fetch_add(1, Ordering::SeqCst);
                seen.cancelled_notify.notify_waiters();
                return;
            }
            if msg.message == "fail" {
                // An error after messages: its status and metadata go in trailers.
                let mut status = Status::resource_exhausted("stream failed on purpose");
                status
                    .metadata_mut()
                    .insert("x-trailer-info", MetadataValue::from_static("abc"));
                let _ = tx.send(Err(status)).await;
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        req: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let stream = req.into_inner().map(|msg| msg.map(|m| reply(&m, None)));
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A running echo server.
pub struct GrpcBackend {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    health: HealthReporter,
}

impl GrpcBackend {
    /// Start an echo server (reported SERVING) on 127.0.0.1:0.
    pub async fn start() -> GrpcBackend {
        Self::serve(None).await
    }

    /// Start an echo server (reported SERVING) on 127.0.0.1:0 that speaks TLS
    /// with `leaf`'s certificate and offers `alpn` (`[b"h2"]` for a proper
    /// HTTP/2 server; a failed handshake just closes that connection).
    pub async fn start_tls(leaf: &Leaf, alpn: &[&[u8]]) -> GrpcBackend {
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::tls::server_config(leaf, None, alpn));
        Self::serve(Some(acceptor)).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> GrpcBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a gRPC backend");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Seen::default());
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status(SERVICE, ServingStatus::Serving)
            .await;
        let service = EchoServer::new(EchoService { seen: seen.clone() })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let counter = seen.clone();
        let accept = move |listener: TcpListener| {
            let counter = counter.clone();
            async move {
                let accepted = listener.accept().await.map(|(s, _)| {
                    counter.connections.fetch_add(1, Ordering::SeqCst);
                    s
                });
                Some((accepted, listener))
            }
        };
        let incoming = futures_util::stream::unfold(listener, accept);
        let router = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(service);
        match tls {
            None => {
                tokio::spawn(router.serve_with_incoming(incoming));
            }
            Some(acceptor) => {
                tokio::spawn(router.serve_with_incoming(handshakes(incoming, acceptor)));
            }
        }
        GrpcBackend { addr, seen, health }
    }

    /// Report the echo service (and the server as a whole) serving or not.
    pub async fn set_serving(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.health.set_service_status(SERVICE, status).await;
        self.health.set_service_status("", status).await;
    }

    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    /// Wait until a server stream has seen its client go away.
    pub async fn cancelled(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.seen.cancelled_notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.seen.cancelled.load(Ordering::SeqCst) > 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// The TLS connections that completed their handshake, each handshake in a task
/// of its own so that a slow or refused one holds up no other.
fn handshakes(
    tcp: impl Stream<Item = std::io::Result<TcpStream>> + Send + 'static,
    acceptor: tokio_rustls::TlsAcceptor,
) -> impl Stream<Item = std::io::Result<TlsConn>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut tcp = std::pin::pin!(tcp);
        while let Some(Ok(stream)) = tcp.next().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = tx.send(Ok(TlsConn(tls))).await;
                }
            });
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|conn| (conn, rx))
    })
}

/// A server-side TLS connection as tonic takes it: the peer's address comes from
/// the TCP socket underneath, as for a cleartext one.
pub struct TlsConn(tokio_rustls::server::TlsStream<TcpStream>);

impl Connected for TlsConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A tonic client of `url` (e.g. ballast's `http://127.0.0.1:PORT`), with large
/// messages allowed.
pub async fn client(url: &str) -> EchoClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(url.to_string())
        .expect("valid url")
        .connect()
        .await
        .expect("connect to ballast");
    EchoClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

//! One HTTP/1.1 exchange with one etcd endpoint, plain or over TLS.
//!
//! Control path. etcd's v3 API is gRPC; etcd also serves it as JSON over HTTP
//! (its gRPC gateway, `/v3/...`), which is what ballast speaks: the `etcd-client`
//! crate would need `protoc` at build time, which a machine with only a Rust
//! toolchain does not have, and the few calls ballast makes (range, txn, watch,
//! lease) are small JSON bodies. Each call opens its own connection: calls are
//! rare (a write, a registration, a keep-alive every few seconds), and a fresh
//! connection never carries a stale one's failure. A watch keeps its connection
//! for as long as it streams.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::EtcdError;

/// How long connecting to an endpoint may take before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One of etcd's client URLs, parsed.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    host: String,
    port: u16,
    tls: bool,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, EtcdError> {
        let bad = || EtcdError::Config(format!("invalid etcd URL {url:?}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let tls = match scheme {
            "http" => false,
            "https" => true,
            _ => return Err(bad()),
        };
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(Endpoint {
            url: url.trim_end_matches('/').to_string(),
            host: host.to_string(),
            port,
            tls,
        })
    }
}

/// What sends requests: TLS settings shared by every endpoint.
#[derive(Clone)]
pub struct Transport {
    tls: Option<TlsConnector>,
}

impl Transport {
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Transport {
        Transport {
            tls: tls.map(TlsConnector::from),
        }
    }

    /// POST `body` (JSON) to `path` on `endpoint`; the response's status and body
    /// stream. The connection lives as long as the body is read.
    pub async fn post(
        &self,
        endpoint: &Endpoint,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Incoming), EtcdError> {
        let unreachable = |e: String| EtcdError::Unreachable(format!("{}: {e}", endpoint.url));
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        .map_err(|_| unreachable("connect timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(
                http::header::HOST,
                format!("{}:{}", endpoint.host, endpoint.port),
            )
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(http::header::AUTHORIZATION, token);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| EtcdError::Config(e.to_string()))?;
        let response = if endpoint.tls {
            let Some(tls) = &self.tls else {
                return Err(EtcdError::Config(format!(
                    "{} is https but no TLS settings were made",
                    endpoint.url
                )));
            };
            let name = ServerName::try_from(endpoint.host.clone())
                .map_err(|e| EtcdError::Config(format!("{}: {e}", endpoint.url)))?;
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(name, tcp))
                .await
                .map_err(|_| unreachable("TLS handshake timed out".into()))?
                .map_err(|e| unreachable(format!("TLS: {e}")))?;
            send(TokioIo::new(stream), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        };
        response.map_err(|e| unreachable(e.to_string()))
    }
}

async fn send<T>(io: T, request: Request<Full<Bytes>>) -> Result<(StatusCode, Incoming), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    Ok((parts.status, body))
}

/// A whole response body, bounded (etcd's answers to ballast are small; a fleet
/// config is at most etcd's own request limit, 1.5 MiB by default).
pub async fn read_all(body: Incoming, limit: usize) -> Result<Bytes, String> {
    let limited = http_body_util::Limited::new(body, limit);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string())
}

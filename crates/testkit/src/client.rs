//! A small HTTP client for tests: HTTP/1.1 with keep-alive, or h2c prior knowledge.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (the test backend's echo).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The backend that answered, from its `x-backend` header.
    pub fn backend(&self) -> String {
        self.headers
            .get("x-backend")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Default for Client {
    fn default() -> Self {
        Self::http1()
    }
}

impl Client {
    pub fn http1() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client {
            inner: HyperClient::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// HTTP/2 with prior knowledge (h2c).
    pub fn h2c() -> Self {
        Client {
            inner: HyperClient::builder(TokioExecutor::new())
                .http2_only(true)
                .build(HttpConnector::new()),
        }
    }

    pub async fn get(&self, url: &str) -> Result<Reply, String> {
        self.send(
            Request::get(url)
                .body(Full::default())
                .map_err(|e| e.to_string())?,
        )
        .await
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        let response = self
            .inner
            .request(req)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

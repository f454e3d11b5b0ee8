//! A client of etcd's v3 API through its JSON gateway: the calls cluster mode
//! makes (range, put, compare-and-swap, watch, leases) and nothing else.
//!
//! Control path. Why JSON over HTTP and not gRPC: see `transport.rs`. The
//! gateway's conventions: keys and values are base64 in JSON, 64-bit integers
//! come back as strings, fields equal to their default are left out (a `txn`
//! that failed has no `succeeded`, a put event has no `type`). Every call tries
//! the endpoint that last answered, then the others in order, so a fleet given
//! all of etcd's members survives one going away; an endpoint that does not
//! answer within [`CALL_TIMEOUT`] (refused, or connected and silent) is left for
//! the next, and when none answered the call says etcd is unreachable, which
//! callers turn into "keep serving, refuse writes with 503".
//!
//! With `etcd_auth`, the client authenticates (`/v3/auth/authenticate`) and sends
//! the token in `Authorization`; when etcd answers that a token is invalid (it
//! expires, by default after 5 minutes), it authenticates again once and retries.

mod transport;
mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballast_config::cluster::ClusterConfig;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

pub use transport::Endpoint;
use transport::{read_all, Transport};
pub use watch::{Watch, WatchEvent};

/// The longest one call (all endpoints together) may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer read (a range of every registration of a large fleet).
const MAX_ANSWER: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    #[error("etcd answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("{0}")]
    Config(String),
    #[error("unexpected answer from etcd: {0}")]
    Protocol(String),
}

impl EtcdError {
    /// Whether etcd could not be reached at all (as opposed to refusing a call).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, EtcdError::Unreachable(_))
    }
}

/// A key as etcd holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

/// The outcome of a compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cas {
    /// Written at this revision.
    Won(i64),
    /// Someone wrote first: the key's current revision (0: it does not exist).
    Lost { current: i64 },
}

struct Auth {
    user: String,
    password: String,
    token: Mutex<Option<String>>,
}

/// etcd, as one or more endpoints of one cluster.
#[derive(Clone)]
pub struct Etcd {
    endpoints: Arc<[Endpoint]>,
    /// The endpoint that answered last.
    current: Arc<AtomicUsize>,
    transport: Transport,
    auth: Option<Arc<Auth>>,
}

impl Etcd {
    /// A client for `[cluster]`'s etcd settings (TLS files and the password are read here).
    pub fn new(cluster: &ClusterConfig) -> Result<Etcd, EtcdError> {
        let endpoints = cluster
            .etcd
            .iter()
            .map(|u| Endpoint::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(EtcdError::Config("no etcd endpoint".into()));
        }
        let tls = if endpoints.iter().any(|e| e.url.starts_with("https://")) {
            Some(tls_config(cluster)?)
        } else {
            None
        };
        let auth = match &cluster.etcd_auth {
            Some(a) => {
                let password = std::fs::read_to_string(&a.password_file).map_err(|e| {
                    EtcdError::Config(format!("cannot read {}: {e}", a.password_file.display()))
                })?;
                Some(Arc::new(Auth {
                    user: a.user.clone(),
                    password: password.trim_end_matches(['\r', '\n']).to_string(),
                    token: Mutex::new(None),
                }))
            }
            None => None,
        };
        Ok(Etcd {
            endpoints: endpoints.into(),
            current: Arc::new(AtomicUsize::new(0)),
            transport: Transport::new(tls),
            auth,
        })
    }

    /// The endpoints' URLs.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.url.clone()).collect()
    }

    /// One key, and the store's revision when it was read.
    pub async fn get(&self, key: &str) -> Result<(Option<Kv>, i64), EtcdError> {
        let answer = self
            .call("/v3/kv/range", json!({ "key": b64(key) }))
            .await?;
        let kv = kvs(&answer)?.into_iter().next();
        Ok((kv, header_revision(&answer)))
    }

    /// Every key under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Kv>, EtcdError> {
        let body = json!({ "key": b64(prefix), "range_end": b64_bytes(&prefix_end(prefix)) });
        kvs(&self.call("/v3/kv/range", body).await?)
    }

    /// Put `value` at `key` (attached to `lease` when not 0); the new revision.
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<i64, EtcdError> {
        let mut body = json!({ "key": b64(key), "value": b64_bytes(value) });
        if lease != 0 {
            body["lease"] = json!(lease.to_string());
        }
        Ok(header_revision(&self.call("/v3/kv/put", body).await?))
    }

    /// Put `value` at `key` if the key's last write is at revision `expected`
    /// (0: if the key does not exist): one etcd transaction, so of two writers
    /// that read the same revision exactly one wins.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        value: &[u8],
        expected: i64,
    ) -> Result<Cas, EtcdError> {
        let k = b64(key);
        let body = json!({
            "compare": [{ "key": k, "target": "MOD", "mod_revision": expected.to_string(), "result": "EQUAL" }],
            "success": [{ "request_put": { "key": k, "value": b64_bytes(value) } }],
            "failure": [{ "request_range": { "key": k } }],
        });
        let answer = self.call("/v3/kv/txn", body).await?;
        if answer.get("succeeded").and_then(Value::as_bool) == Some(true) {
            return Ok(Cas::Won(header_revision(&answer)));
        }
        let range = answer
            .pointer("/responses/0/response_range")
            .cloned()
            .unwrap_or(Value::Null);
        let current = kvs(&range)?.first().map_or(0, |kv| kv.mod_revision);
        Ok(Cas::Lost { current })
    }

    /// A lease of `ttl`; its id.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let answer = self
            .call(
                "/v3/lease/grant",
                json!({ "TTL": ttl.as_secs().to_string() }),
            )
            .await?;
        let id = int(answer.get("ID"));
        if id == 0 {
            return Err(EtcdError::Protocol(format!(
                "lease grant without an ID: {answer}"
            )));
        }
        Ok(id)
    }

    /// Renew a lease; the seconds it has left (0: it had expired, and is gone).
    pub async fn keep_alive(&self, lease: i64) -> Result<i64, EtcdError> {
        let answer = self
            .call("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        Ok(int(answer.pointer("/result/TTL")))
    }

    /// Give a lease up: its keys go at once.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
            .await
            .map(drop)
    }

    /// Compact the store's history up to `revision` (tests and operators).
    pub async fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        self.call(
            "/v3/kv/compaction",
            json!({ "revision": revision.to_string(), "physical": true }),
        )
        .await
        .map(drop)
    }

    /// Watch `key` from `start` (its events at revisions ≥ `start`).
    pub async fn watch(&self, key: &str, start: i64) -> Result<Watch, EtcdError> {
        let body =
            json!({ "create_request": { "key": b64(key), "start_revision": start.to_string() } });
        let body = serde_json::to_vec(&body).map_err(|e| EtcdError::Protocol(e.to_string()))?;
        let token = tokio::time::timeout(CALL_TIMEOUT, self.token())
            .await
            .map_err(|_| EtcdError::Unreachable("no answer to authenticate".into()))??;
        // Like a call: the endpoint that answered last, then the others.
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.endpoints.len() {
            let at = (start + i) % self.endpoints.len();
            // The answer's head within a call's bound: an endpoint that takes the
            // connection but never answers must not hold the watch forever.
            let endpoint = &self.endpoints[at];
            let post = self
                .transport
                .post(endpoint, "/v3/watch", token.as_deref(), body.clone());
            let posted = match tokio::time::timeout(CALL_TIMEOUT, post).await {
                Ok(posted) => posted,
                Err(_) => Err(EtcdError::Unreachable(format!(
                    "{}: no answer to /v3/watch within {CALL_TIMEOUT:?}",
                    endpoint.url
                ))),
            };
            let (status, stream) = match posted {
                Ok(answer) => answer,
                Err(e) if e.is_unreachable() => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !status.is_success() {
                let text = read_all(stream, MAX_ANSWER).await.unwrap_or_default();
                return Err(status_error(status.as_u16(), &text));
            }
            self.current.store(at, Ordering::Relaxed);
            return Ok(Watch::new(stream));
        }
        Err(last.unwrap_or_else(|| EtcdError::Unreachable("no endpoint".into())))
    }

    /// POST `body` to `path`, trying each endpoint once, each within [`CALL_TIMEOUT`].
    async fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let body = serde_json::to_vec(&body).map_err(|e| EtcdError::Protocol(e.to_string()))?;
        self.call_any(path, body).await
    }

    async fn call_any(&self, path: &str, body: Vec<u8>) -> Result<Value, EtcdError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.endpoints.len() {
            let at = (start + i) % self.endpoints.len();
            // Each endpoint within the bound: one that takes the connection and
            // never answers must not use up the others' time.
            let endpoint = &self.endpoints[at];
            let answer = match tokio::time::timeout(
                CALL_TIMEOUT,
                self.call_one(endpoint, path, &body),
            )
            .await
            {
                Ok(answer) => answer,
                Err(_) => Err(EtcdError::Unreachable(format!(
                    "{}: no answer to {path} within {CALL_TIMEOUT:?}",
                    endpoint.url
                ))),
            };
            match answer {
                Ok(v) => {
                    self.current.store(at, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) if e.is_unreachable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| EtcdError::Unreachable("no endpoint".into())))
    }

    async fn call_one(
        &self,
        endpoint: &Endpoint,
        path: &str,
        body: &[u8],
    ) -> Result<Value, EtcdError> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let (status, stream) = self
                .transport
                .post(endpoint, path, token.as_deref(), body.to_vec())
                .await?;
            let text = read_all(stream, MAX_ANSWER)
                .await
                .map_err(|e| EtcdError::Unreachable(format!("{}: {e}", endpoint.url)))?;
            if status.is_success() {
                return serde_json::from_slice(&text)
                    .map_err(|e| EtcdError::Protocol(format!("{path}: {e}")));
            }
            let error = status_error(status.as_u16(), &text);
            let expired = matches!(&error, EtcdError::Status { message, .. } if message.contains("auth token"));
            if expired && !retried && self.auth.is_some() {
                self.forget_token();
                retried = true;
                continue;
            }
            return Err(error);
        }
    }

    fn endpoint(&self) -> Endpoint {
        self.endpoints[self.current.load(Ordering::Relaxed) % self.endpoints.len()].clone()
    }

    fn forget_token(&self) {
        if let Some(a) = &self.auth {
            if let Ok(mut t) = a.token.lock() {
                *t = None;
            }
        }
    }

    /// The auth token, authenticating first when there is none.
    async fn token(&self) -> Result<Option<String>, EtcdError> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        if let Some(t) = auth.token.lock().ok().and_then(|t| t.clone()) {
            return Ok(Some(t));
        }
        let body = serde_json::to_vec(&json!({ "name": auth.user, "password": auth.password }))
            .map_err(|e| EtcdError::Protocol(e.to_string()))?;
        let endpoint = self.endpoint();
        let (status, stream) = self
            .transport
            .post(&endpoint, "/v3/auth/authenticate", None, body)
            .await?;
        let text = read_all(stream, MAX_ANSWER)
            .await
            .map_err(|e| EtcdError::Unreachable(format!("{}: {e}", endpoint.url)))?;
        if !status.is_success() {
            // The answer names the user at most, never the password.
            return Err(status_error(status.as_u16(), &text));
        }
        let answer: Value =
            serde_json::from_slice(&text).map_err(|e| EtcdError::Protocol(e.to_string()))?;
        let token = answer
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| EtcdError::Protocol("authenticate: no token".into()))?
            .to_string();
        if let Ok(mut t) = auth.token.lock() {
            *t = Some(token.clone());
        }
        Ok(Some(token))
    }
}

fn tls_config(cluster: &ClusterConfig) -> Result<Arc<rustls::ClientConfig>, EtcdError> {
    use ballast_config::tls::material;
    let roots = match cluster.etcd_tls.as_ref().and_then(|t| t.ca.as_ref()) {
        Some(ca) => material::roots(ca).map_err(EtcdError::Config)?,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            roots
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(material::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| EtcdError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let config = match cluster.etcd_tls.as_ref().map(|t| (&t.cert, &t.key)) {
        Some((Some(cert), Some(key))) => {
            let chain = material::cert_chain(cert).map_err(EtcdError::Config)?;
            let key = material::private_key(key).map_err(EtcdError::Config)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| EtcdError::Config(format!("etcd client certificate: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn status_error(status: u16, body: &[u8]) -> EtcdError {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| text.chars().take(200).collect());
    EtcdError::Status { status, message }
}

pub(crate) fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

fn b64_bytes(b: &[u8]) -> String {
    B64.encode(b)
}

/// A gateway integer: a JSON string (int64) or number; absent is 0.
pub(crate) fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn header_revision(answer: &Value) -> i64 {
    int(answer.pointer("/header/revision"))
}

/// The keys of a range answer (or of a watch event's `kv`).
pub(crate) fn kv(v: &Value) -> Result<Kv, EtcdError> {
    let bytes = |field: &str| -> Result<Vec<u8>, EtcdError> {
        match v.get(field).and_then(Value::as_str) {
            None => Ok(Vec::new()),
            Some(s) => B64
                .decode(s)
                .map_err(|e| EtcdError::Protocol(format!("{field} is not base64: {e}"))),
        }
    };
    Ok(Kv {
        key: String::from_utf8_lossy(&bytes("key")?).into_owned(),
        value: bytes("value")?,
        create_revision: int(v.get("create_revision")),
        mod_revision: int(v.get("mod_revision")),
        lease: int(v.get("lease")),
    })
}

fn kvs(answer: &Value) -> Result<Vec<Kv>, EtcdError> {
    match answer.get("kvs") {
        Some(Value::Array(items)) => items.iter().map(kv).collect(),
        _ => Ok(Vec::new()),
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `--prefix`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

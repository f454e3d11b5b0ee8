//! TLS termination for one listener: the rustls config in effect, the handshake,
//! and what the handshake tells the requests that follow.
//!
//! Data path (the handshake) and control path (installing a new config). The
//! config sits in an `ArcSwap`: each handshake loads it once, so a reload changes
//! what the next handshake sees while established connections keep theirs — a
//! reload never cuts a connection and never rebinds the socket. A failed handshake
//! is counted and logged with its reason and affects no other connection; the
//! handshake is bounded by the listener's header-read timeout.
//!
//! The handshake also settles the connection's protocol: what ALPN agreed (`h2`
//! or `http/1.1`, no ALPN meaning HTTP/1.1) is recorded in `TlsConnInfo`, and the
//! connection speaks that and nothing else (RFC 9113 §3.2, RFC 7301), whatever
//! its first bytes look like.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ballast_config::{ListenerTls, MtlsMode};
use rustls::server::Acceptor;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::certificate::CertificateInfo;
use super::client_cert::{self, CertHeaders, HeaderNames};
use super::expected::negotiation;
use super::server_config::{self, Sessions};
use super::watch::Fingerprint;

/// One config of a listener, built from its files.
pub struct TermState {
    config: Arc<ServerConfig>,
    names: HeaderNames,
    /// The certificates it serves, described (`certificate.rs`).
    pub certificates: Vec<CertificateInfo>,
    /// The settings it was built from, to rebuild it when a file changes.
    pub settings: ListenerTls,
    pub files: Fingerprint,
}

pub struct Terminator {
    pub listener: Arc<str>,
    current: ArcSwap<TermState>,
    sessions: Sessions,
    handshake_errors: AtomicU64,
    /// The files as last seen by a reload attempt, successful or not.
    seen: Mutex<Fingerprint>,
}

/// What one TLS connection hands to its requests.
#[derive(Debug)]
pub struct TlsConnInfo {
    pub version: &'static str,
    pub cipher: &'static str,
    pub server_name: Option<String>,
    pub cert: CertHeaders,
    /// The protocol ALPN agreed, which the connection is served with.
    pub protocol: AppProtocol,
}

/// The application protocol of a TLS connection, as ALPN chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppProtocol {
    /// `http/1.1`, or no ALPN at all.
    Http1,
    /// `h2`.
    Http2,
}

impl AppProtocol {
    /// The protocol for what ALPN agreed (`None`: the client offered no ALPN, or
    /// nothing in common: HTTP/1.1).
    pub fn from_alpn(alpn: Option<&[u8]>) -> Self {
        match alpn {
            Some(b"h2") => AppProtocol::Http2,
            _ => AppProtocol::Http1,
        }
    }
}

impl Terminator {
    pub fn new(listener: &str, tls: &ListenerTls) -> Result<Arc<Self>, String> {
        let sessions = Sessions::new()?;
        let state = prepare_with(&sessions, tls)?;
        Ok(Arc::new(Terminator {
            listener: Arc::from(listener),
            seen: Mutex::new(state.files.clone()),
            current: ArcSwap::from_pointee(state),
            sessions,
            handshake_errors: AtomicU64::new(0),
        }))
    }

    /// Build a new state from files, without installing it.
    pub fn prepare(&self, tls: &ListenerTls) -> Result<TermState, String> {
        prepare_with(&self.sessions, tls)
    }

    /// Make `state` the one new handshakes use.
    pub fn install(&self, state: TermState) {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = state.files.clone();
        }
        self.current.store(Arc::new(state));
    }

    pub fn current(&self) -> Arc<TermState> {
        self.current.load_full()
    }

    /// Note the files as seen; returns whether they differ from the last look.
    pub fn files_changed(&self, now: &Fingerprint) -> bool {
        match self.seen.lock() {
            Ok(mut seen) if *seen != *now => {
                *seen = now.clone();
                true
            }
            _ => false,
        }
    }

    pub fn handshake_errors(&self) -> u64 {
        self.handshake_errors.load(Ordering::Relaxed)
    }

    /// Run the server side of a handshake within `timeout`.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        client: SocketAddr,
        timeout: Duration,
    ) -> Option<(TlsStream<S>, TlsConnInfo)> {
        let started = Instant::now();
        let state = self.current.load_full();
        // The hello is read first, so that a failure can still be logged with the
        // version and cipher the handshake was settling on (`expected.rs`).
        let mut expected = None;
        let handshake = async {
            let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
            expected = negotiation(&start.client_hello(), &state.config);
            start.into_stream(state.config.clone()).await
        };
        let reason = match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(tls)) => {
                let info = conn_info(&tls, &state);
                let verify = match state.settings.mtls.mode {
                    MtlsMode::Off => "none",
                    MtlsMode::Verify => "ok",
                    MtlsMode::Passthrough if info.cert.add.is_empty() => "no_certificate",
                    MtlsMode::Passthrough => "passthrough",
                };
                tracing::debug!(
                    listener = %self.listener, client = %client, tls_version = info.version,
                    cipher = info.cipher, server_name = info.server_name.as_deref().unwrap_or(""),
                    protocol = ?info.protocol,
                    handshake_ms = started.elapsed().as_secs_f64() * 1e3, verify,
                    "TLS handshake"
                );
                return Some((tls, info));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("handshake not completed within {timeout:?}"),
        };
        self.handshake_errors.fetch_add(1, Ordering::Relaxed);
        let verify = match state.settings.mtls.mode {
            MtlsMode::Verify => "failed",
            _ => "none",
        };
        let (tls_version, cipher) = expected.unwrap_or(("unknown", "unknown"));
        tracing::info!(
            listener = %self.listener, client = %client, tls_version, cipher,
            handshake_ms = started.elapsed().as_secs_f64() * 1e3, verify, reason = %reason,
            "TLS handshake failed"
        );
        None
    }
}

fn prepare_with(sessions: &Sessions, tls: &ListenerTls) -> Result<TermState, String> {
    // Fingerprint before reading: a file changing during the read is seen next time.
    let files = Fingerprint::of(&tls.files());
    let (config, certificates) = server_config::build(tls, sessions)?;
    Ok(TermState {
        config,
        certificates,
        names: HeaderNames::new(&tls.mtls.headers)?,
        settings: tls.clone(),
        files,
    })
}

fn conn_info<S>(tls: &TlsStream<S>, state: &TermState) -> TlsConnInfo {
    let (_, conn) = tls.get_ref();
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("unknown");
    let chain = conn.peer_certificates().unwrap_or_default();
    let cert = match state.settings.mtls.mode {
        MtlsMode::Verify => client_cert::verified(&state.names, chain),
        MtlsMode::Passthrough => client_cert::passthrough(&state.names, chain),
        MtlsMode::Off => client_cert::stripping(&state.names),
    };
    TlsConnInfo {
        version,
        cipher,
        server_name: conn.server_name().map(str::to_string),
        cert,
        protocol: AppProtocol::from_alpn(conn.alpn_protocol()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_is_what_alpn_agreed_and_http1_without_it() {
        assert_eq!(AppProtocol::from_alpn(Some(b"h2")), AppProtocol::Http2);
        assert_eq!(
            AppProtocol::from_alpn(Some(b"http/1.1")),
            AppProtocol::Http1
        );
        assert_eq!(AppProtocol::from_alpn(None), AppProtocol::Http1);
    }
}

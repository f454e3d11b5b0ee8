//! TLS clients and a TLS target for tests: handshakes with chosen SNI, versions,
//! ALPN and client certificate; HTTP/1.1 or h2 over the TLS stream; and a TLS
//! front (rustls, with the ALPN a test chooses) for a plain test backend
//! (HTTP/1.1, or h2c behind ALPN `h2`), standing for an `https` target.
//!
//! Test support only.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::pki::{Ca, Leaf};
use crate::Reply;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What a test client offers.
#[derive(Clone)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
}

impl TlsClient {
    /// Trusting `ca`, TLS 1.2 and 1.3, ALPN `http/1.1`, no client certificate.
    pub fn new(ca: &Ca) -> TlsClient {
        Self::build(
            ca,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            None,
            &[b"http/1.1"],
        )
    }

    pub fn build(
        ca: &Ca,
        versions: &[&'static rustls::SupportedProtocolVersion],
        client: Option<&Leaf>,
        alpn: &[&[u8]],
    ) -> TlsClient {
        let mut roots = RootCertStore::empty();
        roots.add(ca.der.clone()).expect("CA root");
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some(leaf) => builder
                .with_client_auth_cert(vec![leaf.der.clone()], key_der(&leaf.key_pem))
                .expect("client certificate"),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Full handshakes only: a resumed session would show the old certificate.
        config.resumption = rustls::client::Resumption::disabled();
        TlsClient {
            config: Arc::new(config),
        }
    }

    /// Accepting any server certificate (to see which one a server picks).
    pub fn any_server(alpn: &[&[u8]]) -> TlsClient {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Full handshakes only: a resumed session would show the old certificate.
        config.resumption = rustls::client::Resumption::disabled();
        TlsClient {
            config: Arc::new(config),
        }
    }

    /// Connect and complete the handshake, sending `sni` (none for an IP address).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        sni: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        self.connect_over(tcp, sni).await
    }

    /// Complete the handshake over a connection already open (one that has
    /// sent a PROXY protocol header, say).
    pub async fn connect_over(
        &self,
        tcp: TcpStream,
        sni: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(sni.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await?;
        // A TLS 1.3 server reports a refused client certificate only after the
        // client's Finished: read once to surface it here, not in the first request.
        tls_probe(&mut tls).await?;
        Ok(tls)
    }
}

/// Wait briefly for an alert the server may send right after the handshake.
/// What arrives is taken into the TLS session without reading its plaintext,
/// which stays there for the HTTP client: an HTTP/2 server (ALPN `h2`) speaks
/// first, with its SETTINGS frame.
async fn tls_probe(tls: &mut TlsStream<TcpStream>) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
    let (tcp, conn) = tls.get_mut();
    let h2 = conn.alpn_protocol() == Some(b"h2");
    loop {
        match tokio::time::timeout_at(deadline, tcp.readable()).await {
            Err(_) => return Ok(()), // nothing to read: the server kept the connection
            Ok(ready) => ready?,
        }
        let n = match conn.read_tls(&mut TryRead(tcp)) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let state = conn
            .process_new_packets()
            .map_err(|e| Error::new(ErrorKind::InvalidData, e))?;
        if state.plaintext_bytes_to_read() > 0 {
            if h2 {
                return Ok(());
            }
            return Err(Error::other("unexpected data before a request"));
        }
        if n == 0 || state.peer_has_closed() {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                "closed after handshake",
            ));
        }
    }
}

/// A tokio socket read without waiting (`tls_probe` feeds rustls with it).
struct TryRead<'a>(&'a TcpStream);

impl std::io::Read for TryRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.try_read(buf)
    }
}

pub fn key_der(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).expect("private key PEM")
}

/// The certificate the server presented.
pub fn peer_leaf(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("server certificates")[0]
        .clone()
}

/// An HTTP connection over an established TLS stream.
pub enum HttpsConn {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl HttpsConn {
    /// HTTP/2 when ALPN chose `h2`, HTTP/1.1 otherwise.
    pub async fn new(tls: TlsStream<TcpStream>) -> HttpsConn {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("h2 handshake");
            tokio::spawn(conn);
            HttpsConn::H2(send)
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("h1 handshake");
            tokio::spawn(conn);
            HttpsConn::H1(send)
        }
    }

    pub fn is_h2(&self) -> bool {
        matches!(self, HttpsConn::H2(_))
    }

    /// `GET path` with extra headers; the response read whole.
    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
        let mut req = if self.is_h2() {
            Request::get(format!("https://localhost{path}"))
        } else {
            Request::get(path).header("host", "localhost")
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
        let response = match self {
            HttpsConn::H1(s) => s.send_request(req).await,
            HttpsConn::H2(s) => s.send_request(req).await,
        }
        .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// A TLS target: terminates TLS with `leaf` (requiring a client certificate from
/// `client_ca` when given) and passes the bytes to the plain backend at `backend`.
/// No ALPN: what the backend speaks is what the client sends.
pub async fn tls_target(leaf: &Leaf, client_ca: Option<&Ca>, backend: SocketAddr) -> SocketAddr {
    tls_front(leaf, client_ca, &[], backend).await.addr
}

/// A TLS front standing for an `https` target ([`tls_front`]).
pub struct TlsFront {
    pub addr: SocketAddr,
    /// Handshakes completed (one per connection that got through TLS).
    pub handshakes: Arc<AtomicUsize>,
}

/// [`tls_target`], offering `alpn` (e.g. `[b"h2"]` in front of an h2c backend, or
/// `[b"http/1.1"]` to refuse a client that offers only `h2`), and counting
/// completed handshakes.
pub async fn tls_front(
    leaf: &Leaf,
    client_ca: Option<&Ca>,
    alpn: &[&[u8]],
    backend: SocketAddr,
) -> TlsFront {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(leaf, client_ca, alpn));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind TLS target");
    let addr = listener.local_addr().expect("addr");
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = handshakes.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let Ok(mut plain) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    TlsFront { addr, handshakes }
}

/// A server config with `leaf`'s certificate, ALPN `alpn`, and client
/// certificates from `client_ca` required when given.
pub fn server_config(leaf: &Leaf, client_ca: Option<&Ca>, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der.clone()).expect("client CA");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(vec![leaf.der.clone()], key_der(&leaf.key_pem))
        .expect("server certificate");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// The DER of a PEM certificate.
pub fn cert_der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM")
}

#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Decode `%XX` escapes (the inverse of ballast's header encoding).
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// Every certificate of a PEM text, as DER.
pub fn pem_chain(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates")
}

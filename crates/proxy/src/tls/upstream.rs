//! TLS from ballast to the targets of a group: verification against the system's
//! roots or a configured CA, SNI, an optional client certificate, and ALPN.
//!
//! Data path (the connect) and control path (building and reloading the config).
//! One `Connector` per target group and snapshot; its `ClientConfig` sits in an
//! `ArcSwap` so that a changed CA or client certificate file applies to the next
//! connection without touching pooled ones. The name sent as SNI and verified is
//! `server_name` when configured, else the target's IP address.
//!
//! ALPN follows the group's protocol: an `http1` group offers `http/1.1` and
//! accepts a target that picks nothing (HTTP/1.1 is the default), an `http2` group
//! offers only `h2` and requires the target to pick it (RFC 9113 §3.2: HTTP/2 over
//! TLS is negotiated by ALPN, never assumed), so a target that serves HTTP/1.1 only
//! fails at the handshake with a message saying so, not with an HTTP/2 framing
//! error on the first request. Handshake errors are worded for the operator
//! (`explain`): they end up in the log line of the target marked down, in gRPC
//! clients' `grpc-message` and in the health checker's log.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use ballast_config::tls::material;
use ballast_config::{TargetProtocol, TargetTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::watch::Fingerprint;

pub struct Connector {
    pub settings: TargetTls,
    /// What the connection carries once TLS is up; sets ALPN.
    protocol: TargetProtocol,
    config: ArcSwap<ClientConfig>,
    seen: Mutex<Fingerprint>,
}

const H2: &[u8] = b"h2";
const HTTP11: &[u8] = b"http/1.1";

impl Connector {
    pub fn load(settings: &TargetTls, protocol: TargetProtocol) -> Result<Arc<Self>, String> {
        let seen = Fingerprint::of(&settings.files());
        Ok(Arc::new(Connector {
            settings: settings.clone(),
            protocol,
            config: ArcSwap::new(build(settings, protocol)?),
            seen: Mutex::new(seen),
        }))
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

    /// Rebuild from the files; on error the config in effect stays.
    pub fn reload(&self) -> Result<(), String> {
        self.config.store(build(&self.settings, self.protocol)?);
        Ok(())
    }

    /// The TLS handshake over a connected socket; for an `http2` group, the
    /// target must have agreed to `h2`.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        addr: SocketAddr,
    ) -> io::Result<TlsStream<TcpStream>> {
        let name = match &self.settings.server_name {
            Some(n) => ServerName::try_from(n.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            None => ServerName::IpAddress(addr.ip().into()),
        };
        let tls = TlsConnector::from(self.config.load_full())
            .connect(name, tcp)
            .await
            .map_err(|e| explain(e, self.protocol))?;
        if self.protocol == TargetProtocol::Http2 {
            check_h2(tls.get_ref().1.alpn_protocol())?;
        }
        Ok(tls)
    }
}

/// A target of an `http2` group must have picked `h2` by ALPN.
fn check_h2(agreed: Option<&[u8]>) -> io::Result<()> {
    let chose = match agreed {
        Some(H2) => return Ok(()),
        Some(other) => format!("chose {:?}", String::from_utf8_lossy(other)),
        None => "chose no protocol".to_string(),
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the target does not speak HTTP/2 over TLS: ballast offered ALPN \"h2\" and the \
             target {chose}; serve h2 there, or set protocol = \"http1\" on the group"
        ),
    ))
}

/// A failed handshake, worded for the operator; the error kind is kept.
fn explain(e: io::Error, protocol: TargetProtocol) -> io::Error {
    let rustls_error = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let message = match rustls_error {
        Some(rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol)) => {
            let (offered, instead) = match protocol {
                TargetProtocol::Http2 => ("h2", "http1"),
                TargetProtocol::Http1 => ("http/1.1", "http2"),
            };
            format!(
                "TLS handshake failed: the target refused ALPN {offered:?} \
                 (no_application_protocol alert); it does not serve that protocol over TLS: \
                 check its ALPN, or set protocol = {instead:?} on the group"
            )
        }
        _ => format!("TLS handshake failed: {e}"),
    };
    io::Error::new(e.kind(), message)
}

fn build(settings: &TargetTls, protocol: TargetProtocol) -> Result<Arc<ClientConfig>, String> {
    let provider = material::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
    } else {
        let roots = match &settings.ca {
            Some(ca) => material::roots(ca)?,
            None => system_roots()?,
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(
                material::cert_chain(&c.cert)?,
                material::private_key(&c.key)?,
            )
            .map_err(|e| format!("client certificate {}: {e}", c.cert.display()))?,
    };
    config.alpn_protocols = match protocol {
        TargetProtocol::Http1 => vec![HTTP11.to_vec()],
        TargetProtocol::Http2 => vec![H2.to_vec()],
    };
    Ok(Arc::new(config))
}

/// The system's trusted roots, loaded once per process.
fn system_roots() -> Result<RootCertStore, String> {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    if let Some(r) = ROOTS.get() {
        return Ok(r.clone());
    }
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(found.certs);
    if store.is_empty() {
        return Err("no system root certificates found; set `ca` in the target group's tls".into());
    }
    Ok(ROOTS.get_or_init(|| store).clone())
}

/// `insecure_skip_verify`: any certificate; handshake signatures are still checked.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_h2_passes_the_alpn_check_and_the_refusal_says_why() {
        assert!(check_h2(Some(b"h2")).is_ok());
        let e = check_h2(Some(b"http/1.1")).expect_err("http/1.1 refused");
        assert!(e.to_string().contains("chose \"http/1.1\""), "{e}");
        let e = check_h2(None).expect_err("no ALPN refused");
        assert!(e.to_string().contains("chose no protocol"), "{e}");
        assert!(e.to_string().contains("protocol = \"http1\""), "{e}");
    }

    #[test]
    fn an_alpn_refusal_is_named() {
        let alert = rustls::Error::AlertReceived(AlertDescription::NoApplicationProtocol);
        let e = explain(
            io::Error::new(io::ErrorKind::InvalidData, alert),
            TargetProtocol::Http2,
        );
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("refused ALPN \"h2\""), "{e}");
        let other = explain(io::Error::other("boom"), TargetProtocol::Http1);
        assert_eq!(other.to_string(), "TLS handshake failed: boom");
    }
}

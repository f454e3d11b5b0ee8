//! TLS from ballast to the targets of a group: verification against the system's
//! roots or a configured CA, SNI, and an optional client certificate.
//!
//! Data path (the connect) and control path (building and reloading the config).
//! One `Connector` per target group and snapshot; its `ClientConfig` sits in an
//! `ArcSwap` so that a changed CA or client certificate file applies to the next
//! connection without touching pooled ones. The name sent as SNI and verified is
//! `server_name` when configured, else the target's IP address.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use ballast_config::tls::material;
use ballast_config::TargetTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::watch::Fingerprint;

pub struct Connector {
    pub settings: TargetTls,
    config: ArcSwap<ClientConfig>,
    seen: Mutex<Fingerprint>,
}

impl Connector {
    pub fn load(settings: &TargetTls) -> Result<Arc<Self>, String> {
        let seen = Fingerprint::of(&settings.files());
        Ok(Arc::new(Connector {
            settings: settings.clone(),
            config: ArcSwap::new(build(settings)?),
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
        self.config.store(build(&self.settings)?);
        Ok(())
    }

    /// The TLS handshake over a connected socket.
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
        TlsConnector::from(self.config.load_full())
            .connect(name, tcp)
            .await
    }
}

fn build(settings: &TargetTls) -> Result<Arc<ClientConfig>, String> {
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
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
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

//! Building a listener's rustls `ServerConfig`: its certificates chosen by SNI, its
//! protocol policy, ALPN, and its client-certificate verifier.
//!
//! Control path. Called at every config apply and when a TLS file changes; the
//! result is swapped into the listener's `Terminator`, so the next handshake uses it
//! while established connections keep the config they started with. Session cache
//! and ticket keys are passed in and shared by every config of one listener, so a
//! reload does not stop clients from resuming their sessions.

use std::collections::HashMap;
use std::sync::Arc;

use ballast_config::tls::material;
use ballast_config::{ListenerTls, MtlsMode, TlsPolicy};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};

use super::certificate::CertificateInfo;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, StoresServerSessions, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// What every config of one listener shares, so resumption survives reloads.
#[derive(Clone)]
pub struct Sessions {
    pub storage: Arc<dyn StoresServerSessions>,
    pub ticketer: Arc<dyn rustls::server::ProducesTickets>,
}

impl Sessions {
    pub fn new() -> Result<Self, String> {
        Ok(Sessions {
            storage: rustls::server::ServerSessionMemoryCache::new(20_000),
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new()
                .map_err(|e| format!("cannot create session ticket keys: {e}"))?,
        })
    }
}

/// Build the config of one listener from its files, and describe the
/// certificates it serves.
pub fn build(
    tls: &ListenerTls,
    sessions: &Sessions,
) -> Result<(Arc<ServerConfig>, Vec<CertificateInfo>), String> {
    let provider = Arc::new(policy_provider(tls.tls_policy));
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.tls_policy {
        TlsPolicy::Recommended => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsPolicy::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS policy: {e}"))?;
    let builder = match tls.mtls.mode {
        MtlsMode::Off => builder.with_no_client_auth(),
        MtlsMode::Verify => builder.with_client_cert_verifier(verifier(tls, provider)?),
        MtlsMode::Passthrough => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert(provider)))
        }
    };
    let certs = CertSet::load(tls)?;
    let described = certs.described.clone();
    let mut config = builder.with_cert_resolver(Arc::new(certs));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = sessions.storage.clone();
    config.ticketer = sessions.ticketer.clone();
    Ok((Arc::new(config), described))
}

/// aws-lc-rs with only ECDHE key exchange and AEAD suites (AES-GCM, CHACHA20-POLY1305).
/// TLS 1.3 suites are all of that kind; for TLS 1.2 this keeps the ECDHE_* ones.
fn policy_provider(policy: TlsPolicy) -> CryptoProvider {
    let mut provider = (*material::provider()).clone();
    provider.cipher_suites.retain(|s| {
        let name = format!("{:?}", s.suite());
        let aead = name.contains("GCM") || name.contains("CHACHA20_POLY1305");
        let ok_kx = name.starts_with("TLS13_") || name.contains("_ECDHE_");
        let ok_version = policy == TlsPolicy::Recommended || name.starts_with("TLS13_");
        aead && ok_kx && ok_version
    });
    provider
}

fn verifier(
    tls: &ListenerTls,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let ca = tls
        .mtls
        .ca
        .as_ref()
        .ok_or("mtls mode \"verify\" needs a CA bundle")?;
    let roots = Arc::new(material::roots(ca)?);
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider);
    let mut crls = Vec::new();
    for path in &tls.mtls.crls {
        crls.extend(material::crls(path)?);
    }
    if !crls.is_empty() {
        // CRLs are checked for the client's own certificate; an issuer none of the
        // CRLs covers is not an error (its clients are checked by the chain alone).
        builder = builder
            .with_crls(crls)
            .only_check_end_entity_revocation()
            .allow_unknown_revocation_status();
    }
    builder
        .build()
        .map_err(|e| format!("client certificate verifier: {e}"))
}

/// A listener's certificates, indexed by the DNS names they hold.
#[derive(Debug)]
pub struct CertSet {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// Each certificate's leaf, described for the listeners API.
    described: Vec<CertificateInfo>,
}

impl CertSet {
    pub fn load(tls: &ListenerTls) -> Result<CertSet, String> {
        let mut default = None;
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut described = Vec::new();
        for c in &tls.certificates {
            let (key, names) = material::certified_key(&c.cert, &c.key).map_err(|(_, e)| e)?;
            described.extend(
                key.cert
                    .first()
                    .and_then(|leaf| CertificateInfo::of(c.cert.clone(), leaf)),
            );
            for name in names {
                match name.strip_prefix("*.") {
                    // The first certificate naming a host wins, as in the file.
                    Some(parent) => wildcard.entry(parent.to_string()),
                    None => exact.entry(name),
                }
                .or_insert_with(|| key.clone());
            }
            default.get_or_insert(key);
        }
        Ok(CertSet {
            default: default.ok_or("no certificate configured")?,
            exact,
            wildcard,
            described,
        })
    }

    /// The certificate for a server name: exact match, then wildcard, then default.
    pub fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return self.default.clone();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        // A wildcard covers exactly one label.
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for CertSet {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// `passthrough`: asks for a client certificate and accepts any (or none); the
/// handshake signature is still checked, so the client holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert(Arc<CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

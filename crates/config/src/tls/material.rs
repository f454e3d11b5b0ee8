//! Loading TLS material from PEM files: certificate chains, private keys, CA
//! bundles and CRLs, with errors an operator can act on.
//!
//! Control path only. Shared by the config decoder (which loads every file once to
//! report bad ones with their position) and the proxy (which loads them again to
//! build its rustls configs, at each apply and when a file changes). One crypto
//! provider for the whole process: aws-lc-rs, rustls' default.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// The process's crypto provider (aws-lc-rs).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// Which file of a certificate and key pair a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Cert,
    Key,
}

/// All certificates of a PEM file, leaf first.
pub fn cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "no certificate (-----BEGIN CERTIFICATE-----) in {}",
            path.display()
        ));
    }
    for (i, c) in certs.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(c) {
            return Err(format!(
                "certificate {} in {} is not valid X.509: {e}",
                i + 1,
                path.display()
            ));
        }
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            format!(
                "no private key (-----BEGIN PRIVATE KEY-----) in {}",
                path.display()
            )
        }
        e => format!("cannot read a private key from {}: {e}", path.display()),
    })
}

/// A certificate chain with its key, checked to belong together, and the DNS names
/// (subject alternative names) it is valid for.
pub fn certified_key(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<CertifiedKey>, Vec<String>), (Part, String)> {
    let chain = cert_chain(cert).map_err(|e| (Part::Cert, e))?;
    let der = private_key(key).map_err(|e| (Part::Key, e))?;
    let names = dns_names(&chain[0]);
    let signing = provider().key_provider.load_private_key(der).map_err(|e| {
        (
            Part::Key,
            format!("unusable private key in {}: {e}", key.display()),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err((
                Part::Key,
                format!(
                    "the key in {} does not match the certificate in {}: {e}",
                    key.display(),
                    cert.display()
                ),
            ))
        }
    }
    Ok((Arc::new(certified), names))
}

/// The DNS names of a certificate's subject alternative name extension, lowercase.
pub fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// A CA bundle as a root store; at least one certificate must be usable.
pub fn roots(path: &Path) -> Result<RootCertStore, String> {
    let certs = cert_chain(path)?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{} holds no usable CA certificate", path.display()));
    }
    Ok(store)
}

/// The CRLs of a PEM file; at least one.
pub fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let crls = CertificateRevocationListDer::pem_file_iter(path)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read CRLs from {}: {e}", path.display()))?;
    if crls.is_empty() {
        return Err(format!(
            "no CRL (-----BEGIN X509 CRL-----) in {}",
            path.display()
        ));
    }
    for c in &crls {
        if let Err(e) = x509_parser::parse_x509_crl(c) {
            return Err(format!("invalid CRL in {}: {e}", path.display()));
        }
    }
    Ok(crls)
}

//! What the listeners API shows of a TLS listener's certificates: the file,
//! the subject, the DNS names, and when it expires.
//!
//! Control path. Read from the leaf certificate of each chain when a listener's
//! TLS is built (at apply and on a reload of changed files), so it describes the
//! certificates in effect, not what is on disk now; the admin API only reads the
//! stored figures and works out the days left.

use std::path::PathBuf;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::client_cert::rfc4514;

/// One certificate of a listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    pub file: PathBuf,
    /// The subject as RFC 4514 writes it.
    pub subject: String,
    /// The DNS names of its subject alternative names.
    pub names: Vec<String>,
    /// The end of its validity, in Unix seconds.
    pub not_after: i64,
}

impl CertificateInfo {
    /// Describe the leaf certificate `der` read from `file`; `None` if it does
    /// not parse (the loader already refused such a file).
    pub fn of(file: PathBuf, der: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        Some(CertificateInfo {
            file,
            subject: rfc4514(cert.subject()),
            names: ballast_config::tls::material::dns_names(der),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Whole days from `now` (Unix seconds) to expiry; negative once expired.
    pub fn days_to_expiry(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_described() {
        let mut params =
            rcgen::CertificateParams::new(vec!["a.test".to_string(), "b.test".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "a.test");
        params.not_after = rcgen::date_time_ymd(2040, 1, 2);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let info = CertificateInfo::of(PathBuf::from("a.pem"), cert.der()).expect("parses");
        assert_eq!(info.subject, "CN=a.test");
        assert_eq!(info.names, vec!["a.test", "b.test"]);
        assert_eq!(info.not_after, 2_209_075_200); // 2040-01-02T00:00:00Z
        assert_eq!(info.days_to_expiry(info.not_after - 86_400 * 3 - 5), 3);
        assert_eq!(info.days_to_expiry(info.not_after + 1), -1);
    }
}

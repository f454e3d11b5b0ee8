//! The client certificate as request headers for targets (mutual TLS), and the
//! removal of client-sent headers with the same names.
//!
//! Data path, once per connection: the header values are computed right after the
//! handshake and shared by every request of the connection; each request only
//! removes and inserts a few headers. Formats follow the managed load balancers:
//! subject and issuer as RFC 4514 strings, the serial number in hex, validity as
//! `NotBefore=...;NotAfter=...` (RFC 3339, UTC), certificates as URL-encoded PEM.

use std::fmt::Write as _;

use ballast_config::ClientCertHeaders;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// The default header names, removed from requests on every listener.
static DEFAULT_NAMES: [HeaderName; 6] = [
    HeaderName::from_static("x-client-cert-subject"),
    HeaderName::from_static("x-client-cert-issuer"),
    HeaderName::from_static("x-client-cert-serial-number"),
    HeaderName::from_static("x-client-cert-validity"),
    HeaderName::from_static("x-client-cert-leaf"),
    HeaderName::from_static("x-client-cert"),
];

/// A listener's client-certificate header names, parsed once per config.
#[derive(Debug)]
pub struct HeaderNames {
    pub subject: HeaderName,
    pub issuer: HeaderName,
    pub serial_number: HeaderName,
    pub validity: HeaderName,
    pub leaf: HeaderName,
    pub chain: HeaderName,
}

impl HeaderNames {
    pub fn new(h: &ClientCertHeaders) -> Result<Self, String> {
        let parse = |s: &str| {
            HeaderName::from_bytes(s.as_bytes()).map_err(|e| format!("header name {s:?}: {e}"))
        };
        Ok(HeaderNames {
            subject: parse(&h.subject)?,
            issuer: parse(&h.issuer)?,
            serial_number: parse(&h.serial_number)?,
            validity: parse(&h.validity)?,
            leaf: parse(&h.leaf)?,
            chain: parse(&h.chain)?,
        })
    }

    fn all(&self) -> [&HeaderName; 6] {
        [
            &self.subject,
            &self.issuer,
            &self.serial_number,
            &self.validity,
            &self.leaf,
            &self.chain,
        ]
    }
}

/// What one connection adds to each of its requests.
#[derive(Debug, Default)]
pub struct CertHeaders {
    /// Configured names to remove (renamed ones; the defaults always are).
    pub strip: Vec<HeaderName>,
    pub add: Vec<(HeaderName, HeaderValue)>,
}

/// Remove client-sent certificate headers, then add the connection's own.
pub fn apply(headers: &mut HeaderMap, cert: Option<&CertHeaders>) {
    // Scanned first: a client rarely sends any, and removing each default name
    // unconditionally would hash it for every request.
    while let Some(name) = headers
        .keys()
        .find(|n| DEFAULT_NAMES.contains(n) || cert.is_some_and(|c| c.strip.contains(n)))
        .cloned()
    {
        headers.remove(&name);
    }
    if let Some(cert) = cert {
        for (name, value) in &cert.add {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Headers for a verified client certificate (`verify`).
pub fn verified(names: &HeaderNames, chain: &[CertificateDer<'_>]) -> CertHeaders {
    let mut out = stripping(names);
    let Some(leaf) = chain.first() else {
        return out;
    };
    if let Ok((_, cert)) = X509Certificate::from_der(leaf) {
        let validity = cert.validity();
        let values = [
            (&names.subject, rfc4514(cert.subject())),
            (&names.issuer, rfc4514(cert.issuer())),
            (&names.serial_number, hex(cert.raw_serial())),
            (
                &names.validity,
                format!(
                    "NotBefore={};NotAfter={}",
                    crate::observe::rfc3339::seconds(validity.not_before.timestamp()),
                    crate::observe::rfc3339::seconds(validity.not_after.timestamp())
                ),
            ),
        ];
        for (name, value) in values {
            if let Ok(v) = HeaderValue::from_str(&value) {
                out.add.push((name.clone(), v));
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&url_encode(&pem(leaf))) {
        out.add.push((names.leaf.clone(), v));
    }
    out
}

/// Headers for a presented but unverified chain (`passthrough`).
pub fn passthrough(names: &HeaderNames, chain: &[CertificateDer<'_>]) -> CertHeaders {
    let mut out = stripping(names);
    if !chain.is_empty() {
        let all: String = chain.iter().map(|c| pem(c)).collect();
        if let Ok(v) = HeaderValue::from_str(&url_encode(&all)) {
            out.add.push((names.chain.clone(), v));
        }
    }
    out
}

/// Headers for a TLS connection without a client certificate.
pub fn stripping(names: &HeaderNames) -> CertHeaders {
    CertHeaders {
        strip: names
            .all()
            .into_iter()
            .filter(|n| !DEFAULT_NAMES.contains(n))
            .cloned()
            .collect(),
        add: Vec::new(),
    }
}

/// A distinguished name as RFC 4514 writes it: last RDN first, `,` between RDNs.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns: Vec<String> = Vec::new();
    for rdn in name.iter_rdn() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                    .map(str::to_string)
                    .unwrap_or_else(|_| attr.attr_type().to_id_string());
                let value = attr.as_str().map(escape).unwrap_or_else(|_| {
                    format!("#{}", hex(attr.attr_value().data)).to_ascii_lowercase()
                });
                format!("{key}={value}")
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.len() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// A certificate as PEM, lines of 64 base64 characters.
pub fn pem(der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(crate::observe::rfc3339::seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            crate::observe::rfc3339::seconds(951_782_400),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            crate::observe::rfc3339::seconds(1_700_000_000),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn pem_is_base64_in_lines() {
        let p = pem(b"hello world");
        assert_eq!(
            p,
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(url_encode("a b/+\n"), "a%20b%2F%2B%0A");
    }

    #[test]
    fn forged_headers_are_removed_everywhere() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-client-cert-subject",
            HeaderValue::from_static("CN=forged"),
        );
        h.insert("x-client-cert", HeaderValue::from_static("forged"));
        h.insert("x-other", HeaderValue::from_static("1"));
        apply(&mut h, None);
        assert_eq!(h.len(), 1);
    }
}

//! TLS settings of listeners (termination, mutual TLS) and of target groups (TLS to
//! targets), and the loading of the files they name.
//!
//! Control path only. The model keeps file *paths* (resolved against the config
//! file's directory), never the parsed keys: the model is serialized by the admin
//! API and compared on reload, and key material belongs in neither. The decoder
//! (`decode.rs`) still loads every file once, through the same functions the proxy
//! uses (`material.rs`), so that a missing file, unparsable PEM or a certificate
//! that does not match its key is a config error with its position — found by
//! `ballast check`, and never first by a handshake.

mod decode;
pub mod material;

use std::path::PathBuf;

use serde::Serialize;

pub(crate) use decode::{decode_group_tls, decode_listener_tls, file};

#[cfg(test)]
mod tests;

/// TLS termination on an `https` listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListenerTls {
    /// Chosen by SNI; the first is the default when SNI is missing or unknown.
    pub certificates: Vec<CertificateFiles>,
    pub tls_policy: TlsPolicy,
    pub mtls: Mtls,
}

impl ListenerTls {
    /// Every file this listener's TLS depends on, for reloading on change.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .certificates
            .iter()
            .flat_map(|c| [c.cert.clone(), c.key.clone()])
            .collect();
        files.extend(self.mtls.ca.iter().cloned());
        files.extend(self.mtls.crls.iter().cloned());
        files
    }
}

/// A certificate chain and its private key, both PEM files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsPolicy {
    /// TLS 1.2 and 1.3, ECDHE with AES-GCM or CHACHA20-POLY1305 only.
    Recommended,
    /// TLS 1.3 only.
    Tls13,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mtls {
    pub mode: MtlsMode,
    /// CA bundle that client certificates must chain to (`verify`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Certificate revocation lists (`verify`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crls: Vec<PathBuf>,
    pub headers: ClientCertHeaders,
}

impl Default for Mtls {
    fn default() -> Self {
        Mtls {
            mode: MtlsMode::Off,
            ca: None,
            crls: Vec::new(),
            headers: ClientCertHeaders::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MtlsMode {
    Off,
    /// Client certificates must chain to `ca` (and not be revoked).
    Verify,
    /// Any client certificate is accepted and passed to the target as it came.
    Passthrough,
}

/// Names of the headers that carry the client certificate to targets. Headers with
/// these names sent by clients are always removed first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientCertHeaders {
    pub subject: String,
    pub issuer: String,
    pub serial_number: String,
    pub validity: String,
    pub leaf: String,
    /// The whole presented chain (`passthrough`).
    pub chain: String,
}

impl ClientCertHeaders {
    pub fn names(&self) -> [&str; 6] {
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

impl Default for ClientCertHeaders {
    fn default() -> Self {
        ClientCertHeaders {
            subject: "X-Client-Cert-Subject".into(),
            issuer: "X-Client-Cert-Issuer".into(),
            serial_number: "X-Client-Cert-Serial-Number".into(),
            validity: "X-Client-Cert-Validity".into(),
            leaf: "X-Client-Cert-Leaf".into(),
            chain: "X-Client-Cert".into(),
        }
    }
}

/// TLS from ballast to the targets of a group (`tls = { enabled = true, ... }`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetTls {
    /// Roots to verify targets with; the system's roots when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// SNI and the name verified; the target's IP address when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    /// A client certificate presented to targets that ask for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<CertificateFiles>,
}

impl TargetTls {
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.ca.iter().cloned().collect();
        if let Some(c) = &self.client_cert {
            files.push(c.cert.clone());
            files.push(c.key.clone());
        }
        files
    }
}

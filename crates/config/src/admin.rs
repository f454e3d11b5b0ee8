//! The `[admin]` table: where the admin API listens, which tokens guard it, its
//! TLS, and the rule that locks it when it is reachable from other hosts.
//!
//! Control path only. The admin plane can replace the whole config, so an admin
//! address that is not loopback must name `token_file` (or say
//! `allow_open_writes = true` out loud); the error is at `admin.bind`, with its line
//! and column, and `ballast check` reports it like any other. Token files and TLS
//! files are resolved against the config file's directory and read once here, so a
//! missing or empty token, or a key that does not match its certificate, is found by
//! `ballast check` and never first by a client. The model keeps paths only: it is
//! served by `GET /api/v1/config`, and a token's content must appear nowhere (nor
//! in an error message: messages name files, never what they hold).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::decode::{self as d, Errors, Fields};
use crate::source::Node;
use crate::tls::material::{self, Part};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdminConfig {
    pub bind: SocketAddr,
    /// The bearer token of write calls (and reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The bearer token of reads; when set, reads need it (or the write token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_token_file: Option<PathBuf>,
    /// Accept a non-loopback `bind` without `token_file` (writes open to anyone
    /// who reaches it); warned about at every start.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_open_writes: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<AdminTls>,
}

impl AdminConfig {
    /// Writes need no token although the address is reachable from other hosts.
    pub fn open_writes_exposed(&self) -> bool {
        !self.bind.ip().is_loopback() && self.token_file.is_none()
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 9900)),
            token_file: None,
            read_token_file: None,
            allow_open_writes: false,
            tls: None,
        }
    }
}

/// TLS on the admin listener; with `client_ca`, clients must present a
/// certificate that chains to it (mutual TLS).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdminTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

pub(crate) fn decode_admin(node: &Node, base: &Path, errs: &mut Errors) -> Option<AdminConfig> {
    let mut f = Fields::new(node, "admin", errs)?;
    let mut ok = true;
    let mut admin = AdminConfig::default();
    let bind_node = f.optional("bind");
    if let Some(n) = bind_node {
        match d::socket_addr(n, &f.path("bind"), errs) {
            Some(a) => admin.bind = a,
            None => ok = false,
        }
    }
    let mut tokens = Vec::new();
    for key in ["token_file", "read_token_file"] {
        let Some(n) = f.optional(key) else { continue };
        match token_file(n, &f.path(key), base, errs) {
            Some((path, token)) => tokens.push((key, n, path, token)),
            None => ok = false,
        }
    }
    for (key, _, path, _) in &tokens {
        match *key {
            "token_file" => admin.token_file = Some(path.clone()),
            _ => admin.read_token_file = Some(path.clone()),
        }
    }
    if let [(_, _, _, write), (_, n, _, read)] = &tokens[..] {
        if write == read {
            errs.at(
                &f.path("read_token_file"),
                n.pos,
                "holds the same token as token_file; the read token must differ from the write token",
            );
            ok = false;
        }
    }
    if let [("read_token_file", n, _, _)] = &tokens[..] {
        errs.at(
            &f.path("read_token_file"),
            n.pos,
            "read_token_file needs token_file: without a write token, writes would be open while reads are not",
        );
        ok = false;
    }
    if let Some(n) = f.optional("allow_open_writes") {
        match d::boolean(n, &f.path("allow_open_writes"), errs) {
            Some(b) => admin.allow_open_writes = b,
            None => ok = false,
        }
    }
    if let Some(n) = f.optional("tls") {
        match decode_tls(n, &f.path("tls"), base, errs) {
            Some(t) => admin.tls = Some(t),
            None => ok = false,
        }
    }
    if ok && admin.open_writes_exposed() && !admin.allow_open_writes {
        errs.at(
            &f.path("bind"),
            bind_node.and_then(|n| n.pos),
            format!(
                "{} is not a loopback address, so anyone who reaches it could replace the config: \
                 set admin.token_file (and admin.tls), or admin.allow_open_writes = true to accept that",
                admin.bind
            ),
        );
        ok = false;
    }
    f.finish(errs);
    ok.then_some(admin)
}

/// A token file: resolved, readable, not empty once trimmed. Returns the path and
/// the token (for the same-token check only; never put in a message).
fn token_file(
    node: &Node,
    path: &str,
    base: &Path,
    errs: &mut Errors,
) -> Option<(PathBuf, String)> {
    let file = crate::tls::file(node, path, base, errs)?;
    match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => Some((file, text.trim().to_string())),
        Ok(_) => {
            errs.at(
                path,
                node.pos,
                format!("{} is empty; it must hold the token", file.display()),
            );
            None
        }
        Err(e) => {
            errs.at(
                path,
                node.pos,
                format!("cannot read {}: {e}", file.display()),
            );
            None
        }
    }
}

/// `{ cert, key, client_ca }`: loaded with the listeners' functions, the key
/// checked against the certificate, the CA bundle checked to hold a usable root.
fn decode_tls(node: &Node, path: &str, base: &Path, errs: &mut Errors) -> Option<AdminTls> {
    let mut f = Fields::new(node, path, errs)?;
    let cert_node = f.required("cert", errs);
    let key_node = f.required("key", errs);
    let cert = cert_node.and_then(|n| crate::tls::file(n, &f.path("cert"), base, errs));
    let key = key_node.and_then(|n| crate::tls::file(n, &f.path("key"), base, errs));
    let client_ca = match f.optional("client_ca") {
        None => Some(None),
        Some(n) => {
            let p = f.path("client_ca");
            crate::tls::file(n, &p, base, errs).and_then(|file| match material::roots(&file) {
                Ok(_) => Some(Some(file)),
                Err(e) => {
                    errs.at(&p, n.pos, e);
                    None
                }
            })
        }
    };
    f.finish(errs);
    let (cert, key) = (cert?, key?);
    if let Err((part, message)) = material::certified_key(&cert, &key) {
        let (field, n) = match part {
            Part::Cert => ("cert", cert_node),
            Part::Key => ("key", key_node),
        };
        errs.at(&format!("{path}.{field}"), n.and_then(|n| n.pos), message);
        return None;
    }
    Some(AdminTls {
        cert,
        key,
        client_ca: client_ca?,
    })
}

//! Decoding the TLS keys of listeners (`certificates`, `tls_policy`, `mtls`) and of
//! target groups (`tls`), loading each named file to check it.
//!
//! Control path only. Called from `parse.rs` with the table being decoded, so that
//! the keys are known to its unknown-key check. Paths are resolved against the
//! config file's directory (`base`); a file that cannot be loaded is reported at the
//! position of the string that names it.

use std::path::{Path, PathBuf};

use super::material::{self, Part};
use super::*;
use crate::decode::{self as d, Errors, Fields};
use crate::source::{Node, Value};

/// The TLS part of a listener. `https` is whether the listener's protocol is
/// `"https"` (`None` when the protocol itself was invalid). Returns `None` on error,
/// `Some(None)` for a plain listener.
pub fn decode_listener_tls(
    f: &mut Fields<'_>,
    https: Option<bool>,
    base: &Path,
    errs: &mut Errors,
) -> Option<Option<ListenerTls>> {
    let certs = f.optional("certificates");
    let policy = f.optional("tls_policy");
    let mtls = f.optional("mtls");
    match https {
        None => return None,
        Some(false) => {
            let mut ok = true;
            for (key, node) in [
                ("certificates", certs),
                ("tls_policy", policy),
                ("mtls", mtls),
            ] {
                if let Some(n) = node {
                    errs.at(
                        &f.path(key),
                        n.pos,
                        format!("`{key}` applies only to protocol = \"https\" listeners"),
                    );
                    ok = false;
                }
            }
            return ok.then_some(None);
        }
        Some(true) => {}
    }
    let certificates = match certs {
        None => {
            errs.at(
                &f.path("certificates"),
                f.pos(),
                "missing required field `certificates` for protocol = \"https\"; e.g. certificates = [{ cert = \"site.pem\", key = \"site.key\" }]",
            );
            None
        }
        Some(n) => decode_certificates(n, &f.path("certificates"), base, errs),
    };
    let tls_policy = match policy {
        None => Some(TlsPolicy::Recommended),
        Some(n) => d::one_of(
            n,
            &f.path("tls_policy"),
            &[
                ("recommended", TlsPolicy::Recommended),
                ("tls13", TlsPolicy::Tls13),
            ],
            errs,
        ),
    };
    let mtls = match mtls {
        None => Some(Mtls::default()),
        Some(n) => decode_mtls(n, &f.path("mtls"), base, errs),
    };
    Some(Some(ListenerTls {
        certificates: certificates?,
        tls_policy: tls_policy?,
        mtls: mtls?,
    }))
}

fn decode_certificates(
    node: &Node,
    path: &str,
    base: &Path,
    errs: &mut Errors,
) -> Option<Vec<CertificateFiles>> {
    let items = d::array(node, path, errs);
    if items.is_empty() && matches!(node.value, Value::Array(_)) {
        errs.at(path, node.pos, "at least one certificate is required");
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (p, item) in items {
        match decode_pair(item, &p, base, errs) {
            Some(c) => out.push(c),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `{ cert, key }`: both loaded, and checked to belong together.
fn decode_pair(
    node: &Node,
    path: &str,
    base: &Path,
    errs: &mut Errors,
) -> Option<CertificateFiles> {
    let mut f = Fields::new(node, path, errs)?;
    let cert_node = f.required("cert", errs);
    let key_node = f.required("key", errs);
    let cert = cert_node.and_then(|n| file(n, &f.path("cert"), base, errs));
    let key = key_node.and_then(|n| file(n, &f.path("key"), base, errs));
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
    Some(CertificateFiles { cert, key })
}

fn decode_mtls(node: &Node, path: &str, base: &Path, errs: &mut Errors) -> Option<Mtls> {
    let mut f = Fields::new(node, path, errs)?;
    let mode = match f.optional("mode") {
        None => Some(MtlsMode::Off),
        Some(n) => d::one_of(
            n,
            &f.path("mode"),
            &[
                ("off", MtlsMode::Off),
                ("verify", MtlsMode::Verify),
                ("passthrough", MtlsMode::Passthrough),
            ],
            errs,
        ),
    };
    let ca_node = f.optional("ca");
    let crls_node = f.optional("crls");
    let headers = match f.optional("headers") {
        None => Some(ClientCertHeaders::default()),
        Some(n) => decode_headers(n, &f.path("headers"), errs),
    };
    let verify = mode == Some(MtlsMode::Verify);
    let mut ca = None;
    let mut crls = Vec::new();
    let mut ok = true;
    if let Some(n) = ca_node {
        let p = f.path("ca");
        if !verify && mode.is_some() {
            errs.at(&p, n.pos, "`ca` applies only to mode = \"verify\"");
            ok = false;
        } else if let Some(file) = file(n, &p, base, errs) {
            match material::roots(&file) {
                Ok(_) => ca = Some(file),
                Err(e) => {
                    errs.at(&p, n.pos, e);
                    ok = false;
                }
            }
        } else {
            ok = false;
        }
    } else if verify {
        errs.at(
            &f.path("ca"),
            f.pos(),
            "mode = \"verify\" needs `ca`, the CA bundle client certificates must chain to",
        );
        ok = false;
    }
    if let Some(n) = crls_node {
        let p = f.path("crls");
        if !verify && mode.is_some() {
            errs.at(&p, n.pos, "`crls` applies only to mode = \"verify\"");
            ok = false;
        }
        for (ip, item) in d::array(n, &p, errs) {
            match file(item, &ip, base, errs) {
                Some(path) => match material::crls(&path) {
                    Ok(_) => crls.push(path),
                    Err(e) => {
                        errs.at(&ip, item.pos, e);
                        ok = false;
                    }
                },
                None => ok = false,
            }
        }
    }
    f.finish(errs);
    if !ok {
        return None;
    }
    Some(Mtls {
        mode: mode?,
        ca,
        crls,
        headers: headers?,
    })
}

fn decode_headers(node: &Node, path: &str, errs: &mut Errors) -> Option<ClientCertHeaders> {
    let mut f = Fields::new(node, path, errs)?;
    let mut h = ClientCertHeaders::default();
    let mut ok = true;
    {
        let slots: [(&'static str, &mut String); 6] = [
            ("subject", &mut h.subject),
            ("issuer", &mut h.issuer),
            ("serial_number", &mut h.serial_number),
            ("validity", &mut h.validity),
            ("leaf", &mut h.leaf),
            ("chain", &mut h.chain),
        ];
        for (key, slot) in slots {
            let Some(n) = f.optional(key) else { continue };
            let p = f.path(key);
            match d::string(n, &p, errs) {
                Some(s) if is_header_name(&s) => *slot = s,
                Some(s) => {
                    errs.at(&p, n.pos, format!("invalid header name {s:?}; allowed: letters, digits and !#$%&'*+-.^_`|~"));
                    ok = false;
                }
                None => ok = false,
            }
        }
    }
    f.finish(errs);
    ok.then_some(h)
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The `tls` table of a target group; `Some(None)` when absent or disabled.
pub fn decode_group_tls(
    f: &mut Fields<'_>,
    base: &Path,
    errs: &mut Errors,
) -> Option<Option<TargetTls>> {
    let Some(node) = f.optional("tls") else {
        return Some(None);
    };
    let path = f.path("tls");
    let mut f = Fields::new(node, &path, errs)?;
    let enabled = match f.optional("enabled") {
        None => Some(true),
        Some(n) => boolean(n, &f.path("enabled"), errs),
    };
    let ca = match f.optional("ca") {
        None => Some(None),
        Some(n) => {
            let p = f.path("ca");
            file(n, &p, base, errs).and_then(|file| match material::roots(&file) {
                Ok(_) => Some(Some(file)),
                Err(e) => {
                    errs.at(&p, n.pos, e);
                    None
                }
            })
        }
    };
    let server_name = match f.optional("server_name") {
        None => Some(None),
        Some(n) => {
            let p = f.path("server_name");
            d::string(n, &p, errs).and_then(|s| {
                if rustls::pki_types::ServerName::try_from(s.as_str()).is_ok() {
                    Some(Some(s))
                } else {
                    errs.at(
                        &p,
                        n.pos,
                        format!("invalid server name {s:?}; expected a DNS name or an IP address"),
                    );
                    None
                }
            })
        }
    };
    let insecure = match f.optional("insecure_skip_verify") {
        None => Some(false),
        Some(n) => boolean(n, &f.path("insecure_skip_verify"), errs),
    };
    let client_cert = match f.optional("client_cert") {
        None => Some(None),
        Some(n) => decode_pair(n, &f.path("client_cert"), base, errs).map(Some),
    };
    f.finish(errs);
    if !enabled? {
        return Some(None);
    }
    Some(Some(TargetTls {
        ca: ca?,
        server_name: server_name?,
        insecure_skip_verify: insecure?,
        client_cert: client_cert?,
    }))
}

fn boolean(node: &Node, path: &str, errs: &mut Errors) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => {
            errs.at(
                path,
                node.pos,
                format!(
                    "expected a boolean (true or false), found {}",
                    node.value.kind()
                ),
            );
            None
        }
    }
}

/// A file path, resolved against `base` when relative; it must name a file.
pub(crate) fn file(node: &Node, path: &str, base: &Path, errs: &mut Errors) -> Option<PathBuf> {
    let s = d::string(node, path, errs)?;
    if s.is_empty() {
        errs.at(path, node.pos, "empty file path");
        return None;
    }
    let p = Path::new(&s);
    let resolved = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    match std::fs::metadata(&resolved) {
        Ok(m) if m.is_file() => Some(resolved),
        Ok(_) => {
            errs.at(
                path,
                node.pos,
                format!("{} is not a file", resolved.display()),
            );
            None
        }
        Err(e) => {
            errs.at(
                path,
                node.pos,
                format!("cannot read {}: {e}", resolved.display()),
            );
            None
        }
    }
}

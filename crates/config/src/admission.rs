//! A listener's admission settings (SPEC §13): who may connect (`allow`, `deny`),
//! whose PROXY protocol header is believed (`proxy_protocol`), and how many
//! connections it holds (`max_connections`, `max_connections_per_client`). Their
//! model and their decoding, which reports every error with its path and
//! position like the rest of the config.
//!
//! Control path only. The proxy compiles the ranges into sorted tables
//! (`proxy::admission`).

use serde::Serialize;

use crate::decode::{self as d, Errors, Fields};
use crate::pattern::Cidr;
use crate::source::{Node, Value};

/// Admission settings of one listener; the default admits every connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ListenerAdmission {
    /// Client ranges admitted; empty admits all (security-group semantics).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Cidr>,
    /// Client ranges refused; wins over `allow`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Cidr>,
    /// Connections the listener holds open at once (parked idle ones included);
    /// beyond it new connections wait in the kernel's accept backlog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Connections one client address holds open at once; beyond it a new one
    /// is closed at accept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_client: Option<u32>,
    /// Read a PROXY protocol header (v1 or v2) from these sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl ListenerAdmission {
    pub const MAX_CONNECTIONS: u32 = 10_000_000;

    /// Whether nothing is configured (then the listener does no admission work).
    pub fn is_open(&self) -> bool {
        *self == ListenerAdmission::default()
    }
}

/// PROXY protocol on a listener: the sources (L4 balancers) that must send it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProxyProtocol {
    pub trusted: Vec<Cidr>,
}

/// Read the admission keys of the listener table `f`.
pub fn decode_listener_admission(
    f: &mut Fields<'_>,
    errs: &mut Errors,
) -> Option<ListenerAdmission> {
    let allow = match f.optional("allow") {
        None => Some(Vec::new()),
        Some(n) => cidrs(n, &f.path("allow"), true, errs),
    };
    let deny = match f.optional("deny") {
        None => Some(Vec::new()),
        Some(n) => cidrs(n, &f.path("deny"), true, errs),
    };
    let max = ListenerAdmission::MAX_CONNECTIONS;
    let max_connections = match f.optional("max_connections") {
        None => Some(None),
        Some(n) => d::u32_in(n, &f.path("max_connections"), 1, max, errs).map(Some),
    };
    let per_client = match f.optional("max_connections_per_client") {
        None => Some(None),
        Some(n) => d::u32_in(n, &f.path("max_connections_per_client"), 1, max, errs).map(Some),
    };
    let proxy_protocol = match f.optional("proxy_protocol") {
        None => Some(None),
        Some(n) => decode_proxy_protocol(n, &f.path("proxy_protocol"), errs).map(Some),
    };
    Some(ListenerAdmission {
        allow: allow?,
        deny: deny?,
        max_connections: max_connections?,
        max_connections_per_client: per_client?,
        proxy_protocol: proxy_protocol?,
    })
}

fn decode_proxy_protocol(node: &Node, path: &str, errs: &mut Errors) -> Option<ProxyProtocol> {
    let mut f = Fields::new(node, path, errs)?;
    let trusted = f
        .required("trusted", errs)
        .and_then(|n| cidrs(n, &f.path("trusted"), false, errs));
    f.finish(errs);
    Some(ProxyProtocol { trusted: trusted? })
}

/// A list of ranges; every bad one is reported at its own index.
fn cidrs(node: &Node, path: &str, may_be_empty: bool, errs: &mut Errors) -> Option<Vec<Cidr>> {
    if !matches!(node.value, Value::Array(_)) {
        errs.at(
            path,
            node.pos,
            format!(
                "expected a list of ranges such as [\"10.0.0.0/8\"], found {}",
                node.value.kind()
            ),
        );
        return None;
    }
    let items = d::array(node, path, errs);
    if items.is_empty() && !may_be_empty {
        errs.at(
            path,
            node.pos,
            "empty list; give at least one range, such as \"10.0.0.0/8\"",
        );
        return None;
    }
    let mut nets = Vec::with_capacity(items.len());
    let mut ok = true;
    for (ipath, item) in items {
        let Some(text) = d::string(item, &ipath, errs) else {
            ok = false;
            continue;
        };
        match Cidr::parse(&text) {
            Ok(c) => nets.push(c),
            Err(e) => {
                errs.at(&ipath, item.pos, e);
                ok = false;
            }
        }
    }
    ok.then_some(nets)
}

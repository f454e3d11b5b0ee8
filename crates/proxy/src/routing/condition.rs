//! Compiled rule conditions and what each one checks of a request.
//!
//! Data path (matching); compiled once per snapshot from the validated config. A
//! rule's conditions are ordered cheapest first (method, source address, host,
//! path, header, query) so that a rule that does not match usually says so after a
//! comparison or two. Nothing here allocates, except decoding a query parameter
//! that holds `%` or `+`.

use std::net::IpAddr;

use ballast_config::{Cidr, Condition};
use http::{HeaderName, Method};

use super::glob::Glob;
use super::path;
use super::RequestView;

pub enum Cond {
    Method(Vec<Method>),
    SourceIp(Vec<Cidr>),
    Host(Vec<Glob>),
    Path(Vec<Glob>),
    Header { name: HeaderName, values: Vec<Glob> },
    Query(Vec<(Option<Glob>, Glob)>),
}

/// What the router works out once per request, for every condition to share.
pub struct Facts<'a> {
    pub req: &'a RequestView<'a>,
    /// Lowercased, without port or trailing dot.
    pub host: Option<&'a str>,
    /// Normalised (see `path.rs`); empty when no rule looks at the path.
    pub path: &'a [u8],
    pub client: IpAddr,
}

impl Cond {
    pub fn compile(c: &Condition) -> Cond {
        match c {
            Condition::Host(v) => Cond::Host(v.iter().map(|h| Glob::folded(h)).collect()),
            Condition::Path(v) => Cond::Path(v.iter().map(|p| Glob::new(p)).collect()),
            Condition::Header { name, values } => Cond::Header {
                // Validated as a token by the config crate.
                name: HeaderName::from_bytes(name.as_bytes())
                    .unwrap_or_else(|_| HeaderName::from_static("x-invalid-header-name")),
                values: values.iter().map(|v| Glob::folded(v)).collect(),
            },
            Condition::Method(v) => Cond::Method(
                v.iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect(),
            ),
            Condition::Query(v) => Cond::Query(
                v.iter()
                    .map(|q| (q.key.as_deref().map(Glob::folded), Glob::folded(&q.value)))
                    .collect(),
            ),
            Condition::SourceIp(v) => Cond::SourceIp(v.clone()),
        }
    }

    /// Cheapest first, for ordering a rule's conditions.
    pub fn cost(&self) -> u8 {
        match self {
            Cond::Method(_) => 0,
            Cond::SourceIp(_) => 1,
            Cond::Host(_) => 2,
            Cond::Path(_) => 3,
            Cond::Header { .. } => 4,
            Cond::Query(_) => 5,
        }
    }

    pub fn matches(&self, f: &Facts<'_>) -> bool {
        match self {
            Cond::Method(v) => v.contains(f.req.method),
            Cond::SourceIp(v) => v.iter().any(|c| c.contains(f.client)),
            Cond::Host(v) => f
                .host
                .is_some_and(|h| v.iter().any(|g| g.matches(h.as_bytes()))),
            Cond::Path(v) => v.iter().any(|g| g.matches(f.path)),
            Cond::Header { name, values } => f
                .req
                .headers
                .get_all(name)
                .iter()
                .any(|hv| values.iter().any(|g| g.matches(hv.as_bytes()))),
            Cond::Query(pairs) => f.req.query.is_some_and(|q| query_matches(q, pairs)),
        }
    }
}

/// Whether any `key=value` parameter matches any pair; both decoded first.
fn query_matches(query: &str, pairs: &[(Option<Glob>, Glob)]) -> bool {
    query.split('&').filter(|p| !p.is_empty()).any(|param| {
        let (k, v) = param.split_once('=').unwrap_or((param, ""));
        let (k, v) = (
            path::decode(k.as_bytes(), true),
            path::decode(v.as_bytes(), true),
        );
        pairs
            .iter()
            .any(|(kg, vg)| kg.as_ref().is_none_or(|kg| kg.matches(&k)) && vg.matches(&v))
    })
}

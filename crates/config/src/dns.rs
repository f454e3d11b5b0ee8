//! Targets by DNS name: what a target entry points at (`address` as IP:PORT or
//! HOST:PORT, or `srv`), a group's `dns` refresh bounds and `[server] dns_servers`.
//!
//! Control path only. A name is checked for its syntax here and nowhere resolved:
//! `ballast check` must pass without DNS, and a name that does not resolve yet is
//! a runtime condition (the proxy's `discovery/` keeps trying and says so), not a
//! config error. An entry serialises back to the key it was written with
//! (`address` or `srv`), so what the admin API serves reads back unchanged.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::decode::{self as d, Errors, Fields};
use crate::duration;
use crate::source::Node;

/// Where a target entry points: one address, or a name that resolves to many.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TargetAddress {
    /// A literal `IP:PORT`: one target.
    Socket(SocketAddr),
    /// `HOST:PORT`: one target per A/AAAA record of `host`, each on `port`.
    Host { host: String, port: u16 },
    /// An SRV name: one target per record of the lowest priority, on the
    /// record's port, with the record's weight.
    Srv(String),
}

impl TargetAddress {
    /// The address of a literal `IP:PORT` entry.
    pub fn socket(&self) -> Option<SocketAddr> {
        match self {
            TargetAddress::Socket(a) => Some(*a),
            _ => None,
        }
    }

    /// Whether the entry is resolved through DNS.
    pub fn is_dns(&self) -> bool {
        !matches!(self, TargetAddress::Socket(_))
    }

    /// `IP:PORT` or `HOST:PORT`, as in an `address` key; `None` when it is neither.
    pub fn parse(s: &str) -> Option<TargetAddress> {
        if let Ok(a) = s.parse() {
            return Some(TargetAddress::Socket(a));
        }
        let (host, port) = s.rsplit_once(':')?;
        let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
        is_host_name(host).then(|| TargetAddress::Host {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// As written in the config: `IP:PORT`, `HOST:PORT`, or the SRV name.
impl fmt::Display for TargetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetAddress::Socket(a) => a.fmt(f),
            TargetAddress::Host { host, port } => write!(f, "{host}:{port}"),
            TargetAddress::Srv(name) => f.write_str(name),
        }
    }
}

/// One key (flattened into the target entry): `address = "..."` or `srv = "..."`.
impl Serialize for TargetAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self {
            TargetAddress::Srv(name) => map.serialize_entry("srv", name)?,
            other => map.serialize_entry("address", &other.to_string())?,
        }
        map.end()
    }
}

/// How often a group's DNS names are looked up again: each answer's TTL, kept
/// within `[min_ttl, max_ttl]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DnsRefresh {
    #[serde(serialize_with = "duration::serialize")]
    pub min_ttl: Duration,
    #[serde(serialize_with = "duration::serialize")]
    pub max_ttl: Duration,
}

impl DnsRefresh {
    pub const DEFAULT: DnsRefresh = DnsRefresh {
        min_ttl: Duration::from_secs(5),
        max_ttl: Duration::from_secs(300),
    };
    const LOWEST: Duration = Duration::from_millis(100);
    const HIGHEST: Duration = Duration::from_secs(86_400);

    pub fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }

    /// How long to keep an answer whose TTL is `ttl`.
    pub fn clamp(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min_ttl, self.max_ttl)
    }
}

impl Default for DnsRefresh {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A DNS host name: dot-separated labels of 1 to 63 letters, digits, `-` or `_`
/// (not starting or ending with `-`), 253 characters at most, an optional final
/// dot, and a last label that is not all digits (so that a mistyped IP address,
/// such as `10.0.0.300`, is not taken for a name).
pub fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = s.split('.').collect();
    !s.is_empty()
        && s.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && labels
            .last()
            .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()))
}

/// A target entry's `address` or `srv` (exactly one of them).
pub(crate) fn decode_target_address(
    f: &mut Fields<'_>,
    errs: &mut Errors,
) -> Option<TargetAddress> {
    match (f.optional("address"), f.optional("srv")) {
        (Some(n), None) => {
            let path = f.path("address");
            let s = d::string(n, &path, errs)?;
            let parsed = TargetAddress::parse(&s);
            if parsed.is_none() {
                errs.at(
                    &path,
                    n.pos,
                    format!(
                        "invalid address {s:?}; expected IP:PORT such as \"127.0.0.1:8080\" or \
                         \"[::1]:8080\", or HOST:PORT such as \"app.internal:8080\""
                    ),
                );
            }
            parsed
        }
        (None, Some(n)) => {
            let path = f.path("srv");
            let s = d::string(n, &path, errs)?;
            if !is_host_name(&s) {
                errs.at(
                    &path,
                    n.pos,
                    format!(
                        "invalid SRV name {s:?}; expected a DNS name such as \"_http._tcp.app.internal\""
                    ),
                );
                return None;
            }
            Some(TargetAddress::Srv(s.to_ascii_lowercase()))
        }
        (Some(_), Some(n)) => {
            errs.at(
                &f.path("srv"),
                n.pos,
                "a target has either address or srv, not both",
            );
            None
        }
        (None, None) => {
            errs.at(
                &f.path("address"),
                f.pos(),
                "missing required key address (or srv)",
            );
            None
        }
    }
}

/// A group's `dns = { min_ttl, max_ttl }`.
pub(crate) fn decode_refresh(f: &mut Fields<'_>, errs: &mut Errors) -> Option<DnsRefresh> {
    let Some(node) = f.optional("dns") else {
        return Some(DnsRefresh::DEFAULT);
    };
    decode_refresh_table(node, &f.path("dns"), errs)
}

fn decode_refresh_table(node: &Node, path: &str, errs: &mut Errors) -> Option<DnsRefresh> {
    let mut f = Fields::new(node, path, errs)?;
    let bounds = (DnsRefresh::LOWEST, DnsRefresh::HIGHEST);
    let def = DnsRefresh::DEFAULT;
    let min = crate::parse::optional_duration(&mut f, "min_ttl", def.min_ttl, bounds, errs);
    let max = crate::parse::optional_duration(&mut f, "max_ttl", def.max_ttl, bounds, errs);
    // A bound the user did not write follows the one they did (a default is
    // never the cause of an error); only an explicit pair can disagree.
    let (min_set, max_set) = (f.peek("min_ttl").is_some(), f.peek("max_ttl").is_some());
    let (min, max) = match (min, max) {
        (Some(lo), Some(hi)) if lo > hi && !max_set => (Some(lo), Some(lo)),
        (Some(lo), Some(hi)) if lo > hi && !min_set => (Some(hi), Some(hi)),
        (Some(lo), Some(hi)) if lo > hi => {
            errs.at(
                &f.path("max_ttl"),
                f.peek("max_ttl").and_then(|n| n.pos),
                format!(
                    "max_ttl {} must not be shorter than min_ttl {}",
                    duration::format(hi),
                    duration::format(lo)
                ),
            );
            (None, None)
        }
        other => other,
    };
    f.finish(errs);
    Some(DnsRefresh {
        min_ttl: min?,
        max_ttl: max?,
    })
}

/// `[server] dns_servers = ["IP:PORT", ...]`: the name servers asked instead of
/// those of `/etc/resolv.conf`.
pub(crate) fn decode_servers(
    node: &Node,
    path: &str,
    errs: &mut Errors,
) -> Option<Vec<SocketAddr>> {
    let mut servers = Vec::new();
    let mut ok = true;
    for (p, item) in d::array(node, path, errs) {
        match d::socket_addr(item, &p, errs) {
            Some(a) => servers.push(a),
            None => ok = false,
        }
    }
    ok.then_some(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert_eq!(
            TargetAddress::parse("app.internal:8080"),
            Some(TargetAddress::Host {
                host: "app.internal".into(),
                port: 8080
            })
        );
        assert_eq!(
            TargetAddress::parse("Localhost:1"),
            Some(TargetAddress::Host {
                host: "localhost".into(),
                port: 1
            })
        );
        assert!(matches!(
            TargetAddress::parse("[::1]:80"),
            Some(TargetAddress::Socket(_))
        ));
        for bad in [
            "app.internal",
            "app.internal:0",
            "app.internal:70000",
            "10.0.0.300:80",
            "::1:80",
            "-bad.example:80",
            "a..b:80",
            ":80",
            "app internal:80",
        ] {
            assert_eq!(TargetAddress::parse(bad), None, "{bad}");
        }
        assert!(is_host_name("_http._tcp.app.internal."));
    }
}

//! Routing: which of a listener's rules, if any, a request matches, and the action
//! it then takes (`action.rs`: forward to target groups, redirect, fixed response).
//!
//! May use: `upstream/` (a forward action holds its target groups). Data path for
//! matching; the control path compiles rules and actions once per snapshot.
//!
//! Compiled once per snapshot (control path, [`Router::new`]); matched per request
//! on the data path ([`Router::route`]), without locks and without allocation
//! except when the path must be normalised (see `path.rs`).
//!
//! Rules run lowest priority first and the first whose conditions all hold wins.
//! Trying every rule in turn would cost time in proportion to the number of rules,
//! so rules are indexed by host, as most rule sets are keyed on it: a rule whose
//! (first) host condition lists only exact names (`api.example.com`) or leading
//! wildcards (`*.example.com`) sits in a hash map under each name, or under the
//! suffix after `*.`. A rule without such a host condition whose (first) path
//! condition only has patterns with a literal first segment (`/api/*`, `/admin`)
//! sits in a map under that segment. Every other rule sits in one list. A request
//! looks up its host once, each suffix of it after a dot (`a.b.c` tries `b.c` and
//! `c`), and the first segment of its normalised path, so it visits only the rules
//! that could match those plus the unindexed ones. Each list holds rule positions in priority order; the router
//! walks each list until a rule matches or until its position is past the best
//! match found so far, and keeps the lowest. (sozu rebuilds a trie of hostnames off
//! the data path in the same spirit.)

pub mod action;
mod condition;
pub(crate) mod glob;
pub mod path;
pub mod redirect;

use std::collections::HashMap;
use std::net::IpAddr;

use ballast_config::{Condition, RuleConfig};
use http::{HeaderMap, Method, Request};

use condition::{Cond, Facts};

/// The compiled rules of one listener.
pub struct Router {
    rules: Vec<Rule>,
    exact: HashMap<Box<str>, Vec<u32>>,
    /// `*.example.com` is filed under `example.com`.
    suffix: HashMap<Box<str>, Vec<u32>>,
    /// Rules without an indexable host condition, by the literal first segment of
    /// their path patterns (`/api/v1/*` is filed under `api`).
    segment: HashMap<Box<[u8]>, Vec<u32>>,
    /// Every other rule.
    rest: Vec<u32>,
    /// Whether any rule looks at the path (otherwise it is not normalised).
    needs_path: bool,
}

struct Rule {
    priority: u32,
    conditions: Vec<Cond>,
}

/// The rule a request matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Position of the rule in the listener's rules sorted by priority (as
    /// `ListenerConfig::rules` holds them).
    pub index: usize,
    /// The rule's priority, for the access log.
    pub priority: u32,
}

/// The parts of a request that rules look at, borrowed.
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// The host of the request's authority (`:authority`, or an absolute-form
    /// target) or else its `Host` header, as sent: port and case are dealt with by
    /// the router.
    pub host: Option<&'a str>,
    /// The path as sent (not decoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub client: IpAddr,
}

impl<'a> RequestView<'a> {
    pub fn new<B>(req: &'a Request<B>, client: IpAddr) -> Self {
        let uri = req.uri();
        let host = uri.authority().map(|a| a.host()).or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        });
        RequestView {
            method: req.method(),
            host,
            path: uri.path(),
            query: uri.query(),
            headers: req.headers(),
            client,
        }
    }
}

/// Longest host name looked at (DNS allows 253); longer ones match no host condition.
const MAX_HOST: usize = 255;

impl Router {
    /// Compile rules given in priority order (as the config crate sorts them).
    pub fn new(rules: &[RuleConfig]) -> Router {
        let mut router = Router {
            rules: Vec::with_capacity(rules.len()),
            exact: HashMap::new(),
            suffix: HashMap::new(),
            segment: HashMap::new(),
            rest: Vec::new(),
            needs_path: false,
        };
        for (i, r) in rules.iter().enumerate() {
            let i = i as u32;
            let mut conditions: Vec<Cond> = r.conditions.iter().map(Cond::compile).collect();
            conditions.sort_by_key(Cond::cost);
            router.needs_path |= conditions.iter().any(|c| matches!(c, Cond::Path(_)));
            router.rules.push(Rule {
                priority: r.priority,
                conditions,
            });
            let hosts = r.conditions.iter().find_map(|c| match c {
                Condition::Host(v) => Some(v),
                _ => None,
            });
            let paths = r.conditions.iter().find_map(|c| match c {
                Condition::Path(v) => Some(v),
                _ => None,
            });
            if let Some(keys) = hosts.and_then(|v| host_keys(v)) {
                for (key, wildcard) in keys {
                    let map = if wildcard {
                        &mut router.suffix
                    } else {
                        &mut router.exact
                    };
                    push_once(map.entry(key.into()).or_default(), i);
                }
            } else if let Some(keys) = paths.and_then(|v| segment_keys(v)) {
                for key in keys {
                    push_once(
                        router.segment.entry(key.into_bytes().into()).or_default(),
                        i,
                    );
                }
            } else {
                router.rest.push(i);
            }
        }
        router
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule, by priority, that the request matches.
    pub fn route(&self, req: &RequestView<'_>) -> Option<Match> {
        if self.rules.is_empty() {
            return None;
        }
        let mut buf = [0u8; MAX_HOST];
        let host = req.host.and_then(|h| host_key(h, &mut buf));
        let path = if self.needs_path {
            path::normalise(req.path)
        } else {
            std::borrow::Cow::Borrowed(&b""[..])
        };
        let facts = Facts {
            req,
            host,
            path: &path,
            client: req.client,
        };
        let mut best = u32::MAX;
        if let Some(h) = host {
            if let Some(list) = self.exact.get(h) {
                self.scan(list, &facts, &mut best);
            }
            if !self.suffix.is_empty() {
                for (k, _) in h.match_indices('.') {
                    if let Some(list) = self.suffix.get(&h[k + 1..]) {
                        self.scan(list, &facts, &mut best);
                    }
                }
            }
        }
        if !self.segment.is_empty() {
            if let Some(list) = self.segment.get(first_segment(&path)) {
                self.scan(list, &facts, &mut best);
            }
        }
        self.scan(&self.rest, &facts, &mut best);
        let index = best as usize;
        self.rules.get(index).map(|r| Match {
            index,
            priority: r.priority,
        })
    }

    /// Walk a list in priority order until a rule matches or it cannot beat `best`.
    fn scan(&self, list: &[u32], facts: &Facts<'_>, best: &mut u32) {
        for &i in list {
            if i >= *best {
                return;
            }
            let matched = self
                .rules
                .get(i as usize)
                .is_some_and(|r| r.conditions.iter().all(|c| c.matches(facts)));
            if matched {
                *best = i;
                return;
            }
        }
    }
}

fn push_once(list: &mut Vec<u32>, i: u32) {
    if list.last() != Some(&i) {
        list.push(i);
    }
}

fn wild(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Index keys for a path condition: the literal first segment of each pattern
/// (`/api/v?/*` → `api`, `/admin` → `admin`); `None` when a pattern has none.
fn segment_keys(paths: &[String]) -> Option<Vec<String>> {
    paths
        .iter()
        .map(|p| {
            let rest = p.strip_prefix('/')?;
            let seg = match rest.split_once('/') {
                Some((seg, _)) => seg,
                // `/admin` has a first segment only if it is all literal.
                None if !wild(rest) => rest,
                None => return None,
            };
            (!seg.is_empty() && !wild(seg)).then(|| seg.to_string())
        })
        .collect()
}

/// The first segment of a normalised path: `api` of `/api/v1`.
fn first_segment(path: &[u8]) -> &[u8] {
    let rest = path.strip_prefix(b"/").unwrap_or(path);
    match rest.iter().position(|&b| b == b'/') {
        Some(i) => &rest[..i],
        None => rest,
    }
}

/// Index keys for a host condition: `(name, false)` for exact names, `(suffix,
/// true)` for `*.suffix`; `None` when a pattern has any other wildcard.
fn host_keys(hosts: &[String]) -> Option<Vec<(String, bool)>> {
    hosts
        .iter()
        .map(|h| match h.strip_prefix("*.") {
            Some(rest) if !wild(rest) => Some((rest.to_string(), true)),
            _ if !wild(h) => Some((h.clone(), false)),
            _ => None,
        })
        .collect()
}

/// The host as rules compare it: lowercased, without port or trailing dot, written
/// into `buf` (no allocation). `None` when it does not fit.
pub fn host_key<'b>(raw: &str, buf: &'b mut [u8; MAX_HOST]) -> Option<&'b str> {
    let name = host_name(raw);
    let name = name.strip_suffix('.').unwrap_or(name);
    let out = buf.get_mut(..name.len())?;
    out.copy_from_slice(name.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

/// The host of a `Host` value, without its port (`[::1]:8080` is `[::1]`). A `Host`
/// has no user info (RFC 9110 §7.2): an `@` stays and matches nothing sensible.
pub fn host_name(raw: &str) -> &str {
    if raw.starts_with('[') {
        return raw.find(']').map_or(raw, |i| &raw[..=i]);
    }
    raw.split_once(':').map_or(raw, |(h, _)| h)
}

#[cfg(test)]
mod tests;

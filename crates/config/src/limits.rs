//! Named rate limits (`[[rate_limits]]`, SPEC §13): their model and their decoding.
//! A limit is defined once at the top of the config and attached by name to
//! listeners and rules (`rate_limits = ["per-ip"]`); the references are checked
//! in `parse.rs` like a forward's target groups.
//!
//! Control path only. Every bound the data path relies on is checked here: a rate
//! of at most [`Rate::MAX_PER_SECOND`] (so one request's interval is at least a
//! microsecond and the limiter's clock ticks keep it to 0.2%), a burst that refills
//! within [`RateLimitConfig::MAX_REFILL`], and a table of
//! [`RateLimitConfig::MIN_KEYS`] to [`RateLimitConfig::MAX_KEYS`] keys.

use std::time::Duration;

use serde::Serialize;

use crate::decode::{self as d, Errors, Fields};
use crate::source::{Node, Value};

/// One named limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimitConfig {
    pub name: String,
    /// What one bucket counts: each part of the key, all together (a single part
    /// is written on its own).
    #[serde(serialize_with = "serialize_key")]
    pub key: Vec<KeyPart>,
    pub rate: Rate,
    /// Requests a full bucket admits at once.
    pub burst: u32,
    pub scope: Scope,
    /// Keys the limit's table holds at most (rounded up to whole buckets).
    pub max_keys: u32,
}

impl RateLimitConfig {
    /// 64 Ki keys of 16 bytes: 1 MiB a limit, room for every client of a busy
    /// node's last minutes (an idle key's slot is taken over at no loss anyway).
    pub const DEFAULT_MAX_KEYS: u32 = 65_536;
    pub const MIN_KEYS: u32 = 64;
    /// 16 Mi keys: 256 MiB, a bound on what one typo can allocate.
    pub const MAX_KEYS: u32 = 16 * 1024 * 1024;
    pub const MAX_BURST: u32 = 1_000_000;
    /// The longest a full burst may take to refill (burst ÷ rate).
    pub const MAX_REFILL: Duration = Duration::from_secs(30 * 24 * 3600);

    /// The default burst: one second's worth of the rate, at least 1.
    pub fn default_burst(rate: Rate) -> u32 {
        let per = rate.per.as_secs();
        u32::try_from(u64::from(rate.count).div_ceil(per))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Whether a limit has a header part: a request without that header is not
    /// counted by it.
    pub fn keys_on_header(&self) -> bool {
        self.key.iter().any(|k| matches!(k, KeyPart::Header(_)))
    }
}

/// What a bucket is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPart {
    /// The client's address (IPv4-mapped IPv6 counts as IPv4).
    ClientIp,
    /// The client's network: IPv4 addresses cut to `v4` bits, IPv6 to `v6`.
    ClientIpPrefix { v4: u8, v6: u8 },
    /// A request header's value (name lowercased).
    Header(String),
    /// The rule that matched (the listener's default action is one key too).
    Rule,
}

impl KeyPart {
    /// IPv6 clients are grouped by /64 unless told: one subscriber's LAN.
    pub const DEFAULT_IPV6_PREFIX: u8 = 64;
}

impl Serialize for KeyPart {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            KeyPart::ClientIp => s.serialize_str("client_ip"),
            KeyPart::Rule => s.serialize_str("rule"),
            KeyPart::Header(name) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("header", name)?;
                m.end()
            }
            KeyPart::ClientIpPrefix { v4, v6 } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("client_ip_prefix", v4)?;
                m.serialize_entry("ipv6_prefix", v6)?;
                m.end()
            }
        }
    }
}

fn serialize_key<S: serde::Serializer>(key: &[KeyPart], s: S) -> Result<S::Ok, S::Error> {
    match key {
        [one] => one.serialize(s),
        all => all.serialize(s),
    }
}

/// `count` requests per `per` (a second, a minute or an hour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    pub const ALLOWED: &'static str =
        "N/s, N/m or N/h with N a whole number from 1, such as \"100/s\" or \"6000/m\"";
    /// One request a microsecond: the limiter's clock ticks (4 ns) then keep
    /// a request's interval to within 0.2%.
    pub const MAX_PER_SECOND: u64 = 1_000_000;

    pub fn parse(text: &str) -> Option<Rate> {
        let (n, unit) = text.split_once('/')?;
        let per = match unit {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let count: u32 = n.parse().ok().filter(|&c| c > 0)?;
        Some(Rate { count, per })
    }

    /// The time one request takes of the rate.
    pub fn interval(&self) -> Duration {
        self.per / self.count
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where a limit counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// On this node, in its memory.
    #[default]
    Local,
    /// Across the fleet, through Redis (`[cluster] redis`).
    Global,
}

/// Decode `[[rate_limits]]`; each limit's name with where it was written, for the
/// uniqueness and reference checks.
/// `redis`: whether `[cluster] redis` is set, which `scope = "global"` needs.
pub(crate) fn decode(
    node: &Node,
    redis: bool,
    errs: &mut Errors,
) -> (Vec<RateLimitConfig>, Vec<crate::parse::Located<String>>) {
    let mut limits = Vec::new();
    let mut names = Vec::new();
    for (path, item) in d::array(node, "rate_limits", errs) {
        let Some(mut f) = Fields::new(item, &path, errs) else {
            continue;
        };
        let name = f.required("name", errs).and_then(|n| {
            let p = f.path("name");
            let v = d::name(n, &p, errs)?;
            names.push(crate::parse::Located {
                value: v.clone(),
                path: p,
                pos: n.pos,
            });
            Some(v)
        });
        let key = f
            .required("key", errs)
            .and_then(|n| decode_key(n, &f.path("key"), errs));
        let rate_node = f.required("rate", errs);
        let rate = rate_node.and_then(|n| {
            let p = f.path("rate");
            let s = d::string(n, &p, errs)?;
            let Some(rate) = Rate::parse(&s) else {
                errs.at(
                    &p,
                    n.pos,
                    format!("invalid rate {s:?}; expected {}", Rate::ALLOWED),
                );
                return None;
            };
            if rate.interval() < Duration::from_secs(1) / Rate::MAX_PER_SECOND as u32 {
                errs.at(
                    &p,
                    n.pos,
                    format!(
                        "rate {s:?} is above {} a second, the most a limit counts",
                        Rate::MAX_PER_SECOND
                    ),
                );
                return None;
            }
            Some(rate)
        });
        let burst = match f.optional("burst") {
            None => rate.map(RateLimitConfig::default_burst),
            Some(n) => {
                let p = f.path("burst");
                d::u32_in(n, &p, 1, RateLimitConfig::MAX_BURST, errs).filter(|&b| {
                    let slow = rate
                        .filter(|r| r.interval().saturating_mul(b) > RateLimitConfig::MAX_REFILL);
                    if let Some(r) = slow {
                        errs.at(
                            &p,
                            n.pos,
                            format!(
                                "a burst of {b} at \"{r}\" takes longer than 30 days to refill; lower the burst or raise the rate"
                            ),
                        );
                    }
                    slow.is_none()
                })
            }
        };
        let scope = match f.optional("scope") {
            None => Some(Scope::Local),
            Some(n) => {
                let p = f.path("scope");
                match d::string(n, &p, errs).as_deref() {
                    Some("local") => Some(Scope::Local),
                    Some("global") if redis => Some(Scope::Global),
                    Some("global") => {
                        errs.at(
                            &p,
                            n.pos,
                            "scope = \"global\" counts across a fleet through Redis: set [cluster] redis = \"redis://...\" \
                             (and node_name), or use \"local\"",
                        );
                        None
                    }
                    Some(other) => {
                        errs.at(
                            &p,
                            n.pos,
                            format!("unknown value {other:?}; allowed: \"local\", \"global\" (cluster mode)"),
                        );
                        None
                    }
                    None => None,
                }
            }
        };
        let max_keys = match f.optional("max_keys") {
            None => Some(RateLimitConfig::DEFAULT_MAX_KEYS),
            Some(n) => d::u32_in(
                n,
                &f.path("max_keys"),
                RateLimitConfig::MIN_KEYS,
                RateLimitConfig::MAX_KEYS,
                errs,
            ),
        };
        f.finish(errs);
        let limit = (|| {
            Some(RateLimitConfig {
                name: name?,
                key: key?,
                rate: rate?,
                burst: burst?,
                scope: scope?,
                max_keys: max_keys?,
            })
        })();
        limits.extend(limit);
    }
    (limits, names)
}

const KEY_ALLOWED: &str =
    "\"client_ip\", \"rule\", { client_ip_prefix = N }, { header = \"NAME\" }, or a list of these";

fn decode_key(node: &Node, path: &str, errs: &mut Errors) -> Option<Vec<KeyPart>> {
    let items = match &node.value {
        Value::Array(v) if v.is_empty() => {
            errs.at(path, node.pos, format!("empty key; give {KEY_ALLOWED}"));
            return None;
        }
        Value::Array(_) => d::array(node, path, errs),
        _ => vec![(path.to_string(), node)],
    };
    let mut parts = Vec::new();
    let mut ok = true;
    for (ipath, item) in items {
        match decode_part(item, &ipath, errs) {
            Some(p) if parts.contains(&p) => {
                errs.at(&ipath, item.pos, "listed twice in the key");
                ok = false;
            }
            Some(p) => parts.push(p),
            None => ok = false,
        }
    }
    let ips = parts
        .iter()
        .filter(|p| matches!(p, KeyPart::ClientIp | KeyPart::ClientIpPrefix { .. }))
        .count();
    if ips > 1 {
        errs.at(
            path,
            node.pos,
            "the client's address is in the key twice; keep one of \"client_ip\" and { client_ip_prefix }",
        );
        ok = false;
    }
    ok.then_some(parts)
}

fn decode_part(node: &Node, path: &str, errs: &mut Errors) -> Option<KeyPart> {
    match &node.value {
        Value::String(s) => match s.as_str() {
            "client_ip" => Some(KeyPart::ClientIp),
            "rule" => Some(KeyPart::Rule),
            other => {
                errs.at(
                    path,
                    node.pos,
                    format!("unknown key {other:?}; allowed: {KEY_ALLOWED}"),
                );
                None
            }
        },
        Value::Table(_) => {
            let mut f = Fields::new(node, path, errs)?;
            let header = f.optional("header");
            let v4 = f.optional("client_ip_prefix");
            let v6 = f.optional("ipv6_prefix");
            f.finish(errs);
            match (header, v4, v6) {
                (Some(h), None, None) => {
                    let p = format!("{path}.header");
                    let s = d::string(h, &p, errs)?;
                    let token = !s.is_empty()
                        && s.len() <= 64
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                    if !token {
                        errs.at(
                            &p,
                            h.pos,
                            format!("invalid header name {s:?}; allowed: 1 to 64 letters, digits and !#$%&'*+-.^_`|~"),
                        );
                        return None;
                    }
                    Some(KeyPart::Header(s.to_ascii_lowercase()))
                }
                (None, Some(v4), v6) => {
                    let v4 = d::integer_in(v4, &format!("{path}.client_ip_prefix"), 1, 32, errs);
                    let v6 = match v6 {
                        None => Some(i64::from(KeyPart::DEFAULT_IPV6_PREFIX)),
                        Some(n) => d::integer_in(n, &format!("{path}.ipv6_prefix"), 1, 128, errs),
                    };
                    Some(KeyPart::ClientIpPrefix {
                        v4: u8::try_from(v4?).ok()?,
                        v6: u8::try_from(v6?).ok()?,
                    })
                }
                (None, None, Some(n)) => {
                    errs.at(
                        &format!("{path}.ipv6_prefix"),
                        n.pos,
                        "ipv6_prefix goes with client_ip_prefix (the IPv4 prefix), e.g. { client_ip_prefix = 24, ipv6_prefix = 64 }",
                    );
                    None
                }
                (Some(_), Some(n), _) | (Some(_), None, Some(n)) => {
                    errs.at(
                        path,
                        n.pos,
                        "one key part per table; write a combination as a list, e.g. [\"client_ip\", { header = \"X-Api-Key\" }]",
                    );
                    None
                }
                (None, None, None) => {
                    errs.at(
                        path,
                        node.pos,
                        format!("empty key part; give {KEY_ALLOWED}"),
                    );
                    None
                }
            }
        }
        other => {
            errs.at(
                path,
                node.pos,
                format!("expected {KEY_ALLOWED}, found {}", other.kind()),
            );
            None
        }
    }
}

/// `rate_limits = ["a", "b"]` on a listener or a rule: names, each with where it
/// was written so that `parse.rs` can report one that no limit has.
pub(crate) fn decode_refs(
    node: &Node,
    path: &str,
    refs: &mut Vec<crate::parse::Located<String>>,
    errs: &mut Errors,
) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let mut ok = true;
    for (p, item) in d::array(node, path, errs) {
        match d::string(item, &p, errs) {
            Some(s) if names.contains(&s) => {
                errs.at(&p, item.pos, format!("rate limit {s:?} listed twice"));
                ok = false;
            }
            Some(s) => {
                refs.push(crate::parse::Located {
                    value: s.clone(),
                    path: p,
                    pos: item.pos,
                });
                names.push(s);
            }
            None => ok = false,
        }
    }
    (ok && matches!(node.value, Value::Array(_))).then_some(names)
}

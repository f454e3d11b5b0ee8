//! The `[cluster]` table (SPEC §11, §13): this node's name and place in a fleet
//! that shares its config through etcd and its global rate limits through Redis.
//!
//! Control path only. `[cluster]` is the node's own, like `[admin]`, `[state]`,
//! `[server]` and `[access_log]`: it never travels through etcd (see
//! [`crate::Config::fleet_json`] and [`crate::Config::localize`]). With `etcd`
//! set, the file's listeners, rules, groups and limits only seed an empty prefix;
//! after that the fleet's config in etcd is the truth, and `listeners` may be
//! left out of the file. Endpoints are checked for form here (scheme, host, port)
//! so that `ballast check` finds a typo, never the first connection attempt.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::decode::{self as d, Errors, Fields};
use crate::duration;
use crate::source::{Node, Value};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterConfig {
    /// This node's name in the fleet (its registration key, the API's `nodes`).
    pub node_name: String,
    /// etcd's client URLs (`http://` or `https://`); empty: no shared config.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub etcd: Vec<String>,
    /// Where the fleet's keys live in etcd: `{prefix}config`, `{prefix}nodes/{name}`.
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_tls: Option<EtcdTls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_auth: Option<EtcdAuth>,
    /// The registration's lease: a node silent this long leaves the fleet's list.
    #[serde(serialize_with = "duration::serialize")]
    pub lease_ttl: Duration,
    /// Redis for `scope = "global"` rate limits (`redis://`; `rediss://` is refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    pub on_redis_error: OnRedisError,
    /// This node's own bind address for listeners of the fleet's config, by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub listener_binds: BTreeMap<String, SocketAddr>,
}

impl ClusterConfig {
    pub const DEFAULT_PREFIX: &'static str = "/ballast/";
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

    /// The key holding the fleet's config.
    pub fn config_key(&self) -> String {
        format!("{}config", self.prefix)
    }

    /// The prefix of the nodes' registrations.
    pub fn nodes_prefix(&self) -> String {
        format!("{}nodes/", self.prefix)
    }

    /// Whether the config comes from etcd.
    pub fn shares_config(&self) -> bool {
        !self.etcd.is_empty()
    }
}

/// TLS to etcd: `ca` verifies its certificate (the system roots without it);
/// `cert` and `key` are this node's client certificate when etcd asks for one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EtcdTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// etcd's user authentication (`etcdctl --user`): the password is read from a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EtcdAuth {
    pub user: String,
    pub password_file: PathBuf,
}

/// What a global rate limit does while Redis cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRedisError {
    /// Admit (fail open); local limits still apply.
    #[default]
    Allow,
    /// Refuse with 429 (fail closed).
    Deny,
}

pub(crate) fn decode(node: &Node, base: &Path, errs: &mut Errors) -> Option<ClusterConfig> {
    let mut f = Fields::new(node, "cluster", errs)?;
    let mut ok = true;
    let node_name = match f.required("node_name", errs) {
        Some(n) => d::name(n, &f.path("node_name"), errs),
        None => None,
    };
    let mut etcd = Vec::new();
    if let Some(n) = f.optional("etcd") {
        let p = f.path("etcd");
        let items = d::array(n, &p, errs);
        if items.is_empty() && matches!(n.value, Value::Array(_)) {
            errs.at(&p, n.pos, "at least one etcd URL, or leave etcd out");
            ok = false;
        }
        for (path, item) in items {
            match url(item, &path, &["http", "https"], errs) {
                Some(u) => etcd.push(u),
                None => ok = false,
            }
        }
    }
    let prefix = match f.optional("prefix") {
        None => Some(ClusterConfig::DEFAULT_PREFIX.to_string()),
        Some(n) => {
            let p = f.path("prefix");
            let s = d::string(n, &p, errs);
            match s {
                Some(s) if s.starts_with('/') && s.ends_with('/') && !s.contains("//") => Some(s),
                Some(s) => {
                    errs.at(
                        &p,
                        n.pos,
                        format!("invalid prefix {s:?}; it must start and end with '/', such as \"/ballast/\""),
                    );
                    None
                }
                None => None,
            }
        }
    };
    let etcd_tls = match f.optional("etcd_tls") {
        None => Some(None),
        Some(n) => decode_tls(n, &f.path("etcd_tls"), base, errs).map(Some),
    };
    let etcd_auth = match f.optional("etcd_auth") {
        None => Some(None),
        Some(n) => decode_auth(n, &f.path("etcd_auth"), base, errs).map(Some),
    };
    let lease_ttl = match f.optional("lease_ttl") {
        None => Some(ClusterConfig::DEFAULT_LEASE_TTL),
        Some(n) => d::duration_in(
            n,
            &f.path("lease_ttl"),
            Duration::from_secs(2),
            Duration::from_secs(300),
            errs,
        ),
    };
    let redis = match f.optional("redis") {
        None => Some(None),
        Some(n) => match url(n, &f.path("redis"), &["redis", "rediss"], errs) {
            // The proxy's Redis client is built without TLS: say so here, not
            // at the first connection.
            Some(u) if u.starts_with("rediss://") => {
                errs.at(
                    &f.path("redis"),
                    n.pos,
                    "rediss:// (TLS to Redis) is not supported; use redis:// to a Redis on a trusted network, or a local TLS tunnel (stunnel, spiped) to it",
                );
                None
            }
            u => u.map(Some),
        },
    };
    let on_redis_error = match f.optional("on_redis_error") {
        None => Some(OnRedisError::Allow),
        Some(n) => d::one_of(
            n,
            &f.path("on_redis_error"),
            &[("allow", OnRedisError::Allow), ("deny", OnRedisError::Deny)],
            errs,
        ),
    };
    let mut listener_binds = BTreeMap::new();
    if let Some(n) = f.optional("listener_binds") {
        let p = f.path("listener_binds");
        match &n.value {
            Value::Table(entries) => {
                for (key, value) in entries {
                    let path = format!("{p}.{}", key.name);
                    match d::socket_addr(value, &path, errs) {
                        Some(a) => {
                            listener_binds.insert(key.name.clone(), a);
                        }
                        None => ok = false,
                    }
                }
            }
            other => {
                errs.at(
                    &p,
                    n.pos,
                    format!(
                        "expected a table of listener names to addresses, such as {{ public = \"127.0.0.1:18081\" }}, found {}",
                        other.kind()
                    ),
                );
                ok = false;
            }
        }
    }
    f.finish(errs);
    if !ok {
        return None;
    }
    Some(ClusterConfig {
        node_name: node_name?,
        etcd,
        prefix: prefix?,
        etcd_tls: etcd_tls?,
        etcd_auth: etcd_auth?,
        lease_ttl: lease_ttl?,
        redis: redis?,
        on_redis_error: on_redis_error?,
        listener_binds,
    })
}

/// A URL of one of `schemes` with a host and a port (`http://127.0.0.1:2379`);
/// kept as written, less a trailing '/'.
fn url(node: &Node, path: &str, schemes: &[&str], errs: &mut Errors) -> Option<String> {
    let s = d::string(node, path, errs)?;
    let problem = match s.split_once("://") {
        None => Some("no scheme".to_string()),
        Some((scheme, _)) if !schemes.contains(&scheme) => Some(format!(
            "scheme {scheme:?} is not one of {}",
            schemes.join(", ")
        )),
        Some((_, rest)) => {
            let authority = rest.split('/').next().unwrap_or("");
            let host_port = authority.rsplit('@').next().unwrap_or("");
            match host_port.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) =>
                {
                    None
                }
                _ => Some("it needs a host and a port".to_string()),
            }
        }
    };
    match problem {
        None => Some(s.trim_end_matches('/').to_string()),
        Some(why) => {
            let example = format!("{}://127.0.0.1:PORT", schemes[0]);
            errs.at(
                path,
                node.pos,
                format!("invalid URL {s:?}: {why}; expected such as {example:?}"),
            );
            None
        }
    }
}

/// A file that must exist, resolved against the config's directory.
fn file(node: &Node, path: &str, base: &Path, errs: &mut Errors) -> Option<PathBuf> {
    let s = d::string(node, path, errs)?;
    let file = base.join(&s);
    if s.is_empty() {
        errs.at(path, node.pos, "empty file path");
        return None;
    }
    if let Err(e) = std::fs::metadata(&file) {
        errs.at(
            path,
            node.pos,
            format!("cannot read {}: {e}", file.display()),
        );
        return None;
    }
    Some(file)
}

fn decode_tls(node: &Node, path: &str, base: &Path, errs: &mut Errors) -> Option<EtcdTls> {
    let mut f = Fields::new(node, path, errs)?;
    let mut get = |f: &mut Fields<'_>, key: &'static str| match f.optional(key) {
        None => Some(None),
        Some(n) => file(n, &f.path(key), base, errs).map(Some),
    };
    let ca = get(&mut f, "ca");
    let cert = get(&mut f, "cert");
    let key = get(&mut f, "key");
    let pos = f.pos();
    f.finish(errs);
    let (ca, cert, key) = (ca?, cert?, key?);
    if cert.is_some() != key.is_some() {
        errs.at(
            path,
            pos,
            "cert and key go together: a client certificate needs its key",
        );
        return None;
    }
    Some(EtcdTls { ca, cert, key })
}

fn decode_auth(node: &Node, path: &str, base: &Path, errs: &mut Errors) -> Option<EtcdAuth> {
    let mut f = Fields::new(node, path, errs)?;
    let user = f
        .required("user", errs)
        .and_then(|n| d::string(n, &f.path("user"), errs));
    let password_file = f.required("password_file", errs).and_then(|n| {
        let p = f.path("password_file");
        let file = file(n, &p, base, errs)?;
        match std::fs::read_to_string(&file) {
            Ok(s) if !s.trim().is_empty() => Some(file),
            Ok(_) => {
                errs.at(&p, n.pos, format!("{} is empty", file.display()));
                None
            }
            Err(e) => {
                errs.at(&p, n.pos, format!("cannot read {}: {e}", file.display()));
                None
            }
        }
    });
    f.finish(errs);
    Some(EtcdAuth {
        user: user?,
        password_file: password_file?,
    })
}

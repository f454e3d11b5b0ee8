//! A target group's `shuffle_shard` (SPEC §13, issue 21 §4): each value of a
//! request key (a tenant's header, or the client address) is served by its own
//! stable subset of `size` targets, so one tenant that breaks its targets
//! breaks only the tenants that share all of them.
//!
//! Control path only: the model and its decoding, which reports every error with
//! its path and position like the rest of the config. The data path's shard
//! selection lives in the proxy's `upstream/shard.rs`.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::decode::{self as d, Errors, Fields};
use crate::source::{Node, Value};

/// `shuffle_shard = { key = { header = "X-Tenant" }, size = 2 }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ShuffleShard {
    pub key: ShardKey,
    /// Targets in each key's shard: 1 to `MAX_SIZE`, and at most the group's
    /// number of targets.
    pub size: u32,
    /// When none of a shard's targets can take a request: `true` (default) sends
    /// it to the healthy rest of the group, `false` keeps it on the shard's own
    /// targets, healthy or not.
    pub fail_open: bool,
}

impl ShuffleShard {
    /// The largest shard: the data path keeps a shard in a fixed array of this
    /// many indices (no allocation per request). A larger shard isolates little.
    pub const MAX_SIZE: u32 = 16;
}

/// What names a request's tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardKey {
    /// A request header's value; the name is kept in lower case.
    Header(String),
    /// The client's address (after PROXY protocol / trusted forwarding, as the
    /// rest of ballast sees it).
    ClientIp,
}

impl Serialize for ShardKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ShardKey::ClientIp => s.serialize_str("client_ip"),
            ShardKey::Header(name) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("header", name)?;
                m.end()
            }
        }
    }
}

/// `targets`: how many targets the group has, when they decoded.
pub fn decode(
    node: &Node,
    path: &str,
    targets: Option<usize>,
    errs: &mut Errors,
) -> Option<ShuffleShard> {
    let mut f = Fields::new(node, path, errs)?;
    let key = f
        .required("key", errs)
        .and_then(|n| decode_key(n, &f.path("key"), errs));
    let size = f.required("size", errs).and_then(|n| {
        let p = f.path("size");
        let size = d::u32_in(n, &p, 1, ShuffleShard::MAX_SIZE, errs)?;
        match targets {
            Some(count) if size as usize > count => {
                errs.at(
                    &p,
                    n.pos,
                    format!(
                        "a shard of {size} targets is larger than the group, which has {count}; \
                         allowed: 1 to {}",
                        count.min(ShuffleShard::MAX_SIZE as usize)
                    ),
                );
                None
            }
            _ => Some(size),
        }
    });
    let fail_open = match f.optional("fail_open") {
        None => Some(true),
        Some(n) => d::boolean(n, &f.path("fail_open"), errs),
    };
    f.finish(errs);
    Some(ShuffleShard {
        key: key?,
        size: size?,
        fail_open: fail_open?,
    })
}

fn decode_key(node: &Node, path: &str, errs: &mut Errors) -> Option<ShardKey> {
    const ALLOWED: &str = "allowed: \"client_ip\" or { header = \"NAME\" }";
    match &node.value {
        Value::String(s) if s == "client_ip" => Some(ShardKey::ClientIp),
        Value::String(s) => {
            errs.at(
                path,
                node.pos,
                format!("unknown shard key {s:?}; {ALLOWED}"),
            );
            None
        }
        Value::Table(_) => {
            let mut f = Fields::new(node, path, errs)?;
            let header = f.required("header", errs).and_then(|n| {
                let p = f.path("header");
                let name = d::string(n, &p, errs)?;
                let token = !name.is_empty()
                    && name.len() <= 128
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !token {
                    errs.at(
                        &p,
                        n.pos,
                        format!("invalid header name {name:?}; allowed: 1 to 128 token characters (letters, digits, !#$%&'*+-.^_`|~)"),
                    );
                    return None;
                }
                Some(ShardKey::Header(name.to_ascii_lowercase()))
            });
            f.finish(errs);
            header
        }
        other => {
            errs.at(
                path,
                node.pos,
                format!("expected a shard key, found {}; {ALLOWED}", other.kind()),
            );
            None
        }
    }
}

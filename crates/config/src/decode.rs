//! Field access for the decoder: typed reads out of the source tree that record an
//! error (path, position, what was found, what is allowed) instead of stopping.
//!
//! Control path only. Written by hand instead of `#[derive(Deserialize)]` because
//! serde stops at the first error, and a config check must report every error at
//! once (as linkerd2-proxy's `env.rs` does), unknown keys included.

use std::net::SocketAddr;
use std::time::Duration;

use crate::duration;
use crate::error::ConfigError;
use crate::size;
use crate::source::{Key, Node, Pos, Value};

/// Collected errors of one decode.
#[derive(Default)]
pub struct Errors(pub Vec<ConfigError>);

impl Errors {
    pub fn at(&mut self, path: &str, pos: Option<Pos>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, pos, message));
    }

    fn wrong_type(&mut self, path: &str, node: &Node, expected: &str) {
        self.at(
            path,
            node.pos,
            format!("expected {expected}, found {}", node.value.kind()),
        );
    }
}

/// A table being decoded: hands out its fields and, at `finish`, reports every key
/// that no one asked for as unknown, listing the keys that are allowed.
pub struct Fields<'a> {
    path: String,
    pos: Option<Pos>,
    entries: &'a [(Key, Node)],
    asked: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub fn new(node: &'a Node, path: &str, errs: &mut Errors) -> Option<Self> {
        match &node.value {
            Value::Table(entries) => Some(Fields {
                path: path.to_string(),
                pos: node.pos,
                entries,
                asked: Vec::new(),
            }),
            _ => {
                errs.wrong_type(path, node, "a table");
                None
            }
        }
    }

    pub fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn pos(&self) -> Option<Pos> {
        self.pos
    }

    pub fn optional(&mut self, key: &'static str) -> Option<&'a Node> {
        self.asked.push(key);
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// A field's node without asking for it (for checks across fields).
    pub fn peek(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    pub fn required(&mut self, key: &'static str, errs: &mut Errors) -> Option<&'a Node> {
        let node = self.optional(key);
        if node.is_none() {
            let at = if self.path.is_empty() {
                "config"
            } else {
                &self.path
            };
            errs.at(
                &self.path(key),
                self.pos,
                format!("missing required field `{key}` in {at}"),
            );
        }
        node
    }

    /// Report every key nobody asked for.
    pub fn finish(self, errs: &mut Errors) {
        for (key, _) in self.entries {
            if self.asked.contains(&key.name.as_str()) {
                continue;
            }
            let mut msg = format!("unknown field `{}`", key.name);
            if let Some(near) = closest(&key.name, &self.asked) {
                msg.push_str(&format!(" (did you mean `{near}`?)"));
            }
            msg.push_str(&format!("; allowed: {}", self.asked.join(", ")));
            errs.at(&self.path(&key.name), key.pos, msg);
        }
    }
}

/// The allowed key nearest to a typo, if it is near enough to be a suggestion.
fn closest<'k>(typo: &str, allowed: &[&'k str]) -> Option<&'k str> {
    allowed
        .iter()
        .map(|a| (edit_distance(typo, a), *a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub fn string(node: &Node, path: &str, errs: &mut Errors) -> Option<String> {
    match &node.value {
        Value::String(s) => Some(s.clone()),
        _ => {
            errs.wrong_type(path, node, "a string");
            None
        }
    }
}

/// A non-empty name of letters, digits, `-`, `_` and `.`, as used in URLs and metrics.
pub fn name(node: &Node, path: &str, errs: &mut Errors) -> Option<String> {
    let s = string(node, path, errs)?;
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        errs.at(
            path,
            node.pos,
            format!("invalid name {s:?}; allowed: 1 to 64 ASCII letters, digits, '-', '_' or '.'"),
        );
        return None;
    }
    Some(s)
}

pub fn integer_in(node: &Node, path: &str, lo: i64, hi: i64, errs: &mut Errors) -> Option<i64> {
    match node.value {
        Value::Integer(n) if (lo..=hi).contains(&n) => Some(n),
        Value::Integer(n) => {
            errs.at(
                path,
                node.pos,
                format!("{n} is out of range; allowed: {lo} to {hi}"),
            );
            None
        }
        _ => {
            errs.wrong_type(path, node, &format!("an integer from {lo} to {hi}"));
            None
        }
    }
}

pub fn u32_in(node: &Node, path: &str, lo: u32, hi: u32, errs: &mut Errors) -> Option<u32> {
    integer_in(node, path, lo.into(), hi.into(), errs).map(|n| n as u32)
}

pub fn duration(node: &Node, path: &str, errs: &mut Errors) -> Option<Duration> {
    let s = string(node, path, errs)?;
    let d = duration::parse(&s);
    if d.is_none() {
        errs.at(
            path,
            node.pos,
            format!("invalid duration {s:?}; expected {}", duration::ALLOWED),
        );
    }
    d
}

/// A duration within bounds, inclusive.
pub fn duration_in(
    node: &Node,
    path: &str,
    lo: Duration,
    hi: Duration,
    errs: &mut Errors,
) -> Option<Duration> {
    let d = duration(node, path, errs)?;
    if d < lo || d > hi {
        errs.at(
            path,
            node.pos,
            format!(
                "duration {} is out of range; allowed: {} to {}",
                duration::format(d),
                duration::format(lo),
                duration::format(hi)
            ),
        );
        return None;
    }
    Some(d)
}

pub fn boolean(node: &Node, path: &str, errs: &mut Errors) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => {
            errs.wrong_type(path, node, "true or false");
            None
        }
    }
}

/// A byte size in the config's grammar (`size.rs`), within `lo..=hi`.
pub fn size_in(node: &Node, path: &str, lo: usize, hi: usize, errs: &mut Errors) -> Option<usize> {
    let s = string(node, path, errs)?;
    let Some(n) = size::parse(&s) else {
        errs.at(
            path,
            node.pos,
            format!("invalid size {s:?}; expected {}", size::ALLOWED),
        );
        return None;
    };
    if n < lo || n > hi {
        errs.at(
            path,
            node.pos,
            format!(
                "size {} is out of range; allowed: {} to {}",
                size::format(n),
                size::format(lo),
                size::format(hi)
            ),
        );
        return None;
    }
    Some(n)
}

pub fn socket_addr(node: &Node, path: &str, errs: &mut Errors) -> Option<SocketAddr> {
    let s = string(node, path, errs)?;
    let addr = s.parse().ok();
    if addr.is_none() {
        errs.at(
            path,
            node.pos,
            format!(
                "invalid address {s:?}; expected IP:PORT such as \"127.0.0.1:8080\" or \"[::1]:8080\""
            ),
        );
    }
    addr
}

/// One of a fixed set of words.
pub fn one_of<T: Copy>(
    node: &Node,
    path: &str,
    choices: &[(&str, T)],
    errs: &mut Errors,
) -> Option<T> {
    let s = string(node, path, errs)?;
    let found = choices.iter().find(|(w, _)| *w == s).map(|(_, v)| *v);
    if found.is_none() {
        let allowed: Vec<String> = choices.iter().map(|(w, _)| format!("{w:?}")).collect();
        errs.at(
            path,
            node.pos,
            format!("unknown value {s:?}; allowed: {}", allowed.join(", ")),
        );
    }
    found
}

/// The items of an array, each with its own path.
pub fn array<'a>(node: &'a Node, path: &str, errs: &mut Errors) -> Vec<(String, &'a Node)> {
    match &node.value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("{path}[{i}]"), n))
            .collect(),
        _ => {
            errs.wrong_type(path, node, "an array");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_keys_only() {
        assert_eq!(
            closest("intreval", &["interval", "timeout"]),
            Some("interval")
        );
        assert_eq!(closest("zzz", &["interval", "timeout"]), None);
    }
}

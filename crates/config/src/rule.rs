//! Decoding `[[listeners.rules]]`: priority, conditions and action of each rule, and
//! the checks across a listener's rules (unique priorities).
//!
//! Control path only. A condition is a table with exactly one kind (`host`, `path`,
//! `header`, `method`, `query`, `source_ip`); a kind that takes patterns accepts a
//! string or a list of strings. Every pattern is checked here (`pattern.rs`,
//! `template.rs`) so the proxy only compiles what is known to be valid.

use crate::action::decode_action;
use crate::decode::{self as d, Errors, Fields};
use crate::model::{Condition, QueryMatch, RuleConfig};
use crate::parse::{check_unique, Located, Refs};
use crate::pattern::{check_glob, Cidr, GlobKind};
use crate::source::{Node, Value};

const KINDS: [&str; 6] = ["host", "path", "header", "method", "query", "source_ip"];

/// Decode a listener's rules, sorted by priority; `None` if any had an error.
pub fn decode_rules(
    node: &Node,
    path: &str,
    refs: Refs<'_>,
    errs: &mut Errors,
) -> Option<Vec<RuleConfig>> {
    let mut rules = Vec::new();
    let mut priorities = Vec::new();
    let mut ok = true;
    for (rpath, item) in d::array(node, path, errs) {
        let item_refs = Refs {
            groups: &mut *refs.groups,
            limits: &mut *refs.limits,
        };
        match decode_rule(item, &rpath, item_refs, &mut priorities, errs) {
            Some(rule) => rules.push(rule),
            None => ok = false,
        }
    }
    check_unique(priorities.iter(), "priority", errs);
    rules.sort_by_key(|r: &RuleConfig| r.priority);
    ok.then_some(rules)
}

fn decode_rule(
    node: &Node,
    path: &str,
    refs: Refs<'_>,
    priorities: &mut Vec<Located<u32>>,
    errs: &mut Errors,
) -> Option<RuleConfig> {
    let mut f = Fields::new(node, path, errs)?;
    let priority = f.required("priority", errs).and_then(|n| {
        let p = f.path("priority");
        let v = d::u32_in(n, &p, 1, RuleConfig::MAX_PRIORITY, errs)?;
        priorities.push(Located {
            value: v,
            path: p,
            pos: n.pos,
        });
        Some(v)
    });
    let conditions = f.required("conditions", errs).and_then(|n| {
        let p = f.path("conditions");
        let items = d::array(n, &p, errs);
        if items.is_empty() && matches!(n.value, Value::Array(_)) {
            errs.at(
                &p,
                n.pos,
                format!(
                    "a rule needs at least one condition (one of: {}); for a catch-all, use the listener's default_action",
                    KINDS.join(", ")
                ),
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (cpath, item) in items {
            match decode_condition(item, &cpath, errs) {
                Some(c) => out.push(c),
                None => ok = false,
            }
        }
        ok.then_some(out)
    });
    let action = f
        .required("action", errs)
        .and_then(|n| decode_action(n, &f.path("action"), refs.groups, errs));
    let rate_limits = match f.optional("rate_limits") {
        None => Some(Vec::new()),
        Some(n) => crate::limits::decode_refs(n, &f.path("rate_limits"), refs.limits, errs),
    };
    f.finish(errs);
    Some(RuleConfig {
        priority: priority?,
        conditions: conditions?,
        action: action?,
        rate_limits: rate_limits?,
    })
}

fn decode_condition(node: &Node, path: &str, errs: &mut Errors) -> Option<Condition> {
    let mut f = Fields::new(node, path, errs)?;
    let found: Vec<(&str, &Node)> = KINDS
        .iter()
        .filter_map(|k| f.optional(k).map(|n| (*k, n)))
        .collect();
    let unknown_before = errs.0.len();
    f.finish(errs);
    let (kind, n) = match found.as_slice() {
        [one] => *one,
        [] => {
            if errs.0.len() == unknown_before {
                errs.at(
                    path,
                    node.pos,
                    format!("empty condition; give one of: {}", KINDS.join(", ")),
                );
            }
            return None;
        }
        [_, (second, n), ..] => {
            errs.at(
                &format!("{path}.{second}"),
                n.pos,
                "one kind per condition; write each kind as its own table in `conditions` (they must all match)",
            );
            return None;
        }
    };
    let p = format!("{path}.{kind}");
    match kind {
        "host" => globs(n, &p, GlobKind::Host, errs)
            .map(|v| Condition::Host(v.into_iter().map(|h| h.to_ascii_lowercase()).collect())),
        "path" => globs(n, &p, GlobKind::Path, errs).map(Condition::Path),
        "header" => decode_header(n, &p, errs),
        "method" => {
            let methods = strings(n, &p, errs)?;
            let mut ok = true;
            for (m, mpath, pos) in &methods {
                let token = !m.is_empty()
                    && m.len() <= 32
                    && m.bytes()
                        .all(|b| b.is_ascii_uppercase() || b"-_".contains(&b));
                if !token {
                    let hint = if m.bytes().any(|b| b.is_ascii_lowercase()) {
                        format!(
                            " (methods are case-sensitive: {:?}?)",
                            m.to_ascii_uppercase()
                        )
                    } else {
                        String::new()
                    };
                    errs.at(mpath, *pos, format!("invalid method {m:?}{hint}; allowed: uppercase letters, `-` and `_`, such as \"GET\""));
                    ok = false;
                }
            }
            ok.then(|| Condition::Method(methods.into_iter().map(|m| m.0).collect()))
        }
        "query" => decode_query(n, &p, errs),
        _ => {
            let mut nets = Vec::new();
            let mut ok = true;
            for (s, ipath, pos) in strings(n, &p, errs)? {
                match Cidr::parse(&s) {
                    Ok(c) => nets.push(c),
                    Err(e) => {
                        errs.at(&ipath, pos, e);
                        ok = false;
                    }
                }
            }
            ok.then_some(Condition::SourceIp(nets))
        }
    }
}

type Item = (String, String, Option<crate::Pos>);

/// A string or a non-empty list of strings, each with its path and position.
fn strings(node: &Node, path: &str, errs: &mut Errors) -> Option<Vec<Item>> {
    match &node.value {
        Value::String(s) => Some(vec![(s.clone(), path.to_string(), node.pos)]),
        Value::Array(items) if items.is_empty() => {
            errs.at(path, node.pos, "empty list; give at least one value");
            None
        }
        Value::Array(_) => {
            let mut out = Vec::new();
            let mut ok = true;
            for (ipath, item) in d::array(node, path, errs) {
                match d::string(item, &ipath, errs) {
                    Some(s) => out.push((s, ipath, item.pos)),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        other => {
            errs.at(
                path,
                node.pos,
                format!(
                    "expected a string or a list of strings, found {}",
                    other.kind()
                ),
            );
            None
        }
    }
}

fn globs(node: &Node, path: &str, kind: GlobKind, errs: &mut Errors) -> Option<Vec<String>> {
    let items = strings(node, path, errs)?;
    let mut ok = true;
    for (s, ipath, pos) in &items {
        if let Err(e) = check_glob(s, kind) {
            errs.at(ipath, *pos, e);
            ok = false;
        }
    }
    ok.then(|| items.into_iter().map(|i| i.0).collect())
}

fn decode_header(node: &Node, path: &str, errs: &mut Errors) -> Option<Condition> {
    let mut f = Fields::new(node, path, errs)?;
    let name = f.required("name", errs).and_then(|n| {
        let p = f.path("name");
        let s = d::string(n, &p, errs)?;
        let token = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            errs.at(
                &p,
                n.pos,
                format!("invalid header name {s:?}; allowed: 1 to 64 letters, digits and !#$%&'*+-.^_`|~"),
            );
        }
        token.then(|| s.to_ascii_lowercase())
    });
    let values = f
        .required("values", errs)
        .and_then(|n| globs(n, &f.path("values"), GlobKind::Value, errs));
    f.finish(errs);
    Some(Condition::Header {
        name: name?,
        values: values?,
    })
}

/// `{ key, value }` or a list of them; `key` may be left out.
fn decode_query(node: &Node, path: &str, errs: &mut Errors) -> Option<Condition> {
    let items: Vec<(String, &Node)> = match &node.value {
        Value::Array(v) if v.is_empty() => {
            errs.at(
                path,
                node.pos,
                "empty list; give at least one { key, value }",
            );
            return None;
        }
        Value::Array(_) => d::array(node, path, errs),
        _ => vec![(path.to_string(), node)],
    };
    let mut pairs = Vec::new();
    let mut ok = true;
    for (qpath, item) in items {
        let Some(mut f) = Fields::new(item, &qpath, errs) else {
            ok = false;
            continue;
        };
        let glob = |f: &mut Fields<'_>, key: &'static str, n: &Node, errs: &mut Errors| {
            let p = f.path(key);
            let s = d::string(n, &p, errs)?;
            check_glob(&s, GlobKind::Value)
                .map_err(|e| errs.at(&p, n.pos, e))
                .ok()?;
            Some(s)
        };
        let key = match f.optional("key") {
            None => Some(None),
            Some(n) => glob(&mut f, "key", n, errs).map(Some),
        };
        let value = match f.required("value", errs) {
            Some(n) => glob(&mut f, "value", n, errs),
            None => None,
        };
        f.finish(errs);
        match (key, value) {
            (Some(key), Some(value)) => pairs.push(QueryMatch { key, value }),
            _ => ok = false,
        }
    }
    ok.then_some(Condition::Query(pairs))
}

//! Decoding an action — a listener's `default_action` or a rule's `action`: forward
//! (to one group, or weighted over up to five, with optional group stickiness),
//! redirect, or fixed response.
//!
//! Control path only. Every target group an action names is recorded with where it
//! was written, so that `parse.rs` can report an unknown one once all groups are
//! known.

use std::time::Duration;

use crate::decode::{self as d, Errors, Fields};
use crate::model::{Action, ForwardAction, WeightedGroup};
use crate::parse::Located;
use crate::source::{Node, Value};
use crate::template::RedirectTemplate;

#[derive(Clone, Copy)]
enum Kind {
    Forward,
    Redirect,
    FixedResponse,
}

/// Decode an action; the group names it refers to are appended to `refs`.
pub fn decode_action(
    node: &Node,
    path: &str,
    refs: &mut Vec<Located<String>>,
    errs: &mut Errors,
) -> Option<Action> {
    let mut f = Fields::new(node, path, errs)?;
    let kind = f.required("type", errs).and_then(|n| {
        d::one_of(
            n,
            &f.path("type"),
            &[
                ("forward", Kind::Forward),
                ("redirect", Kind::Redirect),
                ("fixed_response", Kind::FixedResponse),
            ],
            errs,
        )
    });
    // Without a known type the other keys cannot be judged: report the type alone.
    let action = match kind? {
        Kind::Forward => decode_forward(&mut f, node, path, refs, errs),
        Kind::Redirect => decode_redirect(&mut f, errs),
        Kind::FixedResponse => decode_fixed(&mut f, errs),
    };
    f.finish(errs);
    action
}

fn decode_forward(
    f: &mut Fields<'_>,
    node: &Node,
    path: &str,
    refs: &mut Vec<Located<String>>,
    errs: &mut Errors,
) -> Option<Action> {
    let one = f.optional("target_group");
    let many = f.optional("target_groups");
    let groups = match (one, many) {
        (Some(n), None) => {
            let name = d::name(n, &f.path("target_group"), errs)?;
            // Reported at the action, as `ballast check` has always done for this form.
            refs.push(Located {
                value: name.clone(),
                path: path.to_string(),
                pos: node.pos,
            });
            Some(vec![WeightedGroup { name, weight: 1 }])
        }
        (None, Some(n)) => decode_weighted(n, &f.path("target_groups"), refs, errs),
        (Some(_), Some(n)) => {
            errs.at(
                &f.path("target_groups"),
                n.pos,
                "give either `target_group` or `target_groups`, not both",
            );
            None
        }
        (None, None) => {
            errs.at(
                &f.path("target_group"),
                f.pos(),
                "missing required field `target_group` (or `target_groups`) in a forward action",
            );
            None
        }
    };
    let stickiness = match f.optional("stickiness") {
        None => Some(None),
        Some(n) => decode_stickiness(n, &f.path("stickiness"), errs),
    };
    Some(Action::Forward(ForwardAction {
        target_groups: groups?,
        stickiness: stickiness?,
    }))
}

fn decode_weighted(
    node: &Node,
    path: &str,
    refs: &mut Vec<Located<String>>,
    errs: &mut Errors,
) -> Option<Vec<WeightedGroup>> {
    let items = d::array(node, path, errs);
    if !matches!(node.value, Value::Array(_)) {
        return None;
    }
    let max = ForwardAction::MAX_GROUPS;
    if items.is_empty() || items.len() > max {
        errs.at(
            path,
            node.pos,
            format!("{} target groups; allowed: 1 to {max}", items.len()),
        );
        return None;
    }
    let mut groups = Vec::new();
    let mut ok = true;
    for (gpath, item) in items {
        let Some(mut f) = Fields::new(item, &gpath, errs) else {
            ok = false;
            continue;
        };
        let name = f.required("name", errs).and_then(|n| {
            let p = f.path("name");
            let name = d::name(n, &p, errs)?;
            Some((name, p, n.pos))
        });
        let weight = match f.optional("weight") {
            None => Some(1),
            Some(n) => d::u32_in(n, &f.path("weight"), 0, ForwardAction::MAX_WEIGHT, errs),
        };
        f.finish(errs);
        let (Some((name, npath, pos)), Some(weight)) = (name, weight) else {
            ok = false;
            continue;
        };
        if let Some(i) = groups.iter().position(|g: &WeightedGroup| g.name == name) {
            errs.at(
                &npath,
                pos,
                format!("duplicate target group {name:?}; already listed as {path}[{i}]"),
            );
            ok = false;
        }
        refs.push(Located {
            value: name.clone(),
            path: npath,
            pos,
        });
        groups.push(WeightedGroup { name, weight });
    }
    if ok && groups.iter().all(|g| g.weight == 0) {
        errs.at(
            path,
            node.pos,
            "every weight is 0; at least one target group needs a weight from 1 to 999",
        );
        return None;
    }
    ok.then_some(groups)
}

/// `{ enabled = true, duration = "1h" }`: `Some(None)` when disabled.
fn decode_stickiness(node: &Node, path: &str, errs: &mut Errors) -> Option<Option<Duration>> {
    let mut f = Fields::new(node, path, errs)?;
    let enabled = match f.required("enabled", errs) {
        Some(Node {
            value: Value::Bool(b),
            ..
        }) => Some(*b),
        Some(n) => {
            errs.at(
                &f.path("enabled"),
                n.pos,
                format!("expected a boolean, found {}", n.value.kind()),
            );
            None
        }
        None => None,
    };
    let duration = match f.optional("duration") {
        Some(n) => d::duration_in(
            n,
            &f.path("duration"),
            ForwardAction::MIN_STICKINESS,
            ForwardAction::MAX_STICKINESS,
            errs,
        )
        .map(Some),
        None if enabled == Some(true) => {
            errs.at(
                &f.path("duration"),
                f.pos(),
                "missing required field `duration` for enabled stickiness (1s to 7 days, e.g. \"1h\")",
            );
            None
        }
        None => Some(None),
    };
    f.finish(errs);
    Some(if enabled? { duration? } else { None })
}

fn decode_redirect(f: &mut Fields<'_>, errs: &mut Errors) -> Option<Action> {
    let status = f.required("status", errs).and_then(|n| {
        let p = f.path("status");
        let code = d::integer_in(n, &p, 0, 999, errs)?;
        let ok = Action::REDIRECT_STATUSES.contains(&(code as u16));
        if !ok {
            errs.at(
                &p,
                n.pos,
                format!("status {code} is not a redirect; allowed: 301, 302, 303, 307, 308"),
            );
        }
        ok.then_some(code as u16)
    });
    let location = f.required("location", errs).and_then(|n| {
        let p = f.path("location");
        let text = d::string(n, &p, errs)?;
        RedirectTemplate::parse(&text)
            .map_err(|e| errs.at(&p, n.pos, e))
            .ok()
    });
    Some(Action::Redirect {
        status: status?,
        location: location?,
    })
}

fn decode_fixed(f: &mut Fields<'_>, errs: &mut Errors) -> Option<Action> {
    let status = f
        .required("status", errs)
        .and_then(|n| d::integer_in(n, &f.path("status"), 200, 599, errs))
        .map(|s| s as u16);
    let content_type = match f.optional("content_type") {
        None => Some("text/plain".to_string()),
        Some(n) => {
            let p = f.path("content_type");
            d::string(n, &p, errs).and_then(|s| {
                let ok = s.len() <= 128
                    && s.contains('/')
                    && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
                if !ok {
                    errs.at(&p, n.pos, format!("invalid content type {s:?}; expected a media type such as \"text/plain\" or \"application/json; charset=utf-8\""));
                }
                ok.then_some(s)
            })
        }
    };
    let body = match f.optional("body") {
        None => Some(String::new()),
        Some(n) => {
            let p = f.path("body");
            d::string(n, &p, errs).and_then(|s| {
                let ok = s.len() <= Action::MAX_BODY;
                if !ok {
                    errs.at(
                        &p,
                        n.pos,
                        format!(
                            "body is {} bytes; allowed: at most {}",
                            s.len(),
                            Action::MAX_BODY
                        ),
                    );
                }
                ok.then_some(s)
            })
        }
    };
    Some(Action::FixedResponse {
        status: status?,
        content_type: content_type?,
        body: body?,
    })
}

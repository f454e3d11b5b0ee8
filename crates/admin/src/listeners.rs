//! `GET /api/v1/listeners`: each listener with its bound address, its rules in
//! priority order (conditions and action as short text, and how many requests
//! each chose), the default action's hits, and a TLS listener's certificates
//! (subject, names, expiry and the days left).
//!
//! Control path: read from the running snapshot (rules and hit counters), the
//! server (bound addresses) and the TLS terminators (the certificates in effect,
//! described when they were loaded). Nothing here is on a request's way.

use std::time::SystemTime;

use axum::extract::State;
use axum::Json;
use ballast_config::{Action, Condition, ListenerConfig, ListenerProtocol};
use ballast_proxy::{rfc3339, CertificateInfo};
use serde_json::{json, Value};

use crate::auth::ReadAccess;
use crate::AdminState;

pub async fn list(State(state): State<AdminState>, _read: ReadAccess) -> Json<Value> {
    let server = &state.control.server;
    let snapshot = server.snapshot();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut listeners = Vec::new();
    for (name, route) in snapshot.listeners() {
        let l = &route.config;
        let hits = &route.hits;
        let rules: Vec<Value> = l
            .rules
            .iter()
            .map(|r| {
                json!({
                    "priority": r.priority,
                    "conditions": conditions_text(&r.conditions),
                    "action": action_text(&r.action),
                    "hits": hits.rule(r.priority),
                })
            })
            .collect();
        let certificates: Vec<Value> = server
            .certificates(name)
            .iter()
            .map(|c| certificate_json(c, now))
            .collect();
        let local_addr = server.local_addr(name).await.map(|a| a.to_string());
        listeners.push(json!({
            "name": name,
            "bind": l.bind.to_string(),
            "local_addr": local_addr,
            "protocol": protocol(l),
            "default_action": action_text(&l.default_action),
            "rules": rules,
            "default_hits": hits.default_hits(),
            "certificates": certificates,
        }));
    }
    Json(json!({ "version": snapshot.version, "listeners": listeners }))
}

fn protocol(l: &ListenerConfig) -> &'static str {
    match l.protocol {
        ListenerProtocol::Http => "http",
        ListenerProtocol::Https => "https",
    }
}

fn certificate_json(c: &CertificateInfo, now: i64) -> Value {
    json!({
        "file": c.file.display().to_string(),
        "subject": c.subject,
        "names": c.names,
        "not_after": rfc3339::seconds(c.not_after),
        "days_to_expiry": c.days_to_expiry(now),
    })
}

/// A rule's conditions as one line: `host api.example.com and path /v1/*`.
pub fn conditions_text(conditions: &[Condition]) -> String {
    let parts: Vec<String> = conditions
        .iter()
        .map(|c| match c {
            Condition::Host(hosts) => format!("host {}", hosts.join(" | ")),
            Condition::Path(paths) => format!("path {}", paths.join(" | ")),
            Condition::Header { name, values } => {
                format!("header {name}: {}", values.join(" | "))
            }
            Condition::Method(methods) => format!("method {}", methods.join(" | ")),
            Condition::Query(pairs) => {
                let pairs: Vec<String> = pairs
                    .iter()
                    .map(|q| match &q.key {
                        Some(k) => format!("{k}={}", q.value),
                        None => q.value.clone(),
                    })
                    .collect();
                format!("query {}", pairs.join(" | "))
            }
            Condition::SourceIp(cidrs) => {
                let cidrs: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
                format!("source ip {}", cidrs.join(" | "))
            }
        })
        .collect();
    parts.join(" and ")
}

/// An action as a few words: `forward to web`, `forward to web 90%, canary 10%`,
/// `redirect 301 to https://#{host}#{path}`, `respond 404`.
pub fn action_text(action: &Action) -> String {
    match action {
        Action::Forward(f) => {
            let total: u32 = f.target_groups.iter().map(|g| g.weight).sum();
            let groups: Vec<String> = match f.target_groups.as_slice() {
                [one] => vec![one.name.clone()],
                many => many
                    .iter()
                    .map(|g| {
                        let share = f64::from(g.weight) * 100.0 / f64::from(total.max(1));
                        format!("{} {}%", g.name, (share * 10.0).round() / 10.0)
                    })
                    .collect(),
            };
            format!("forward to {}", groups.join(", "))
        }
        Action::Redirect { status, location } => {
            format!("redirect {status} to {}", location.as_str())
        }
        Action::FixedResponse { status, .. } => format!("respond {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_config::Config;

    #[test]
    fn rules_read_as_short_text() {
        let config = Config::from_toml(
            r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"
default_action = { type = "fixed_response", status = 404 }

[[listeners.rules]]
priority = 10
conditions = [{ host = ["api.example.com"] }, { path = ["/v1/*", "/v2/*"] }]
action = { type = "forward", target_groups = [{ name = "web", weight = 9 }, { name = "canary", weight = 1 }] }

[[listeners.rules]]
priority = 20
conditions = [{ header = { name = "X-Env", values = ["beta"] } }, { method = ["GET"] }]
action = { type = "redirect", status = 301, location = "https://#{host}#{path}" }

[[target_groups]]
name = "web"
targets = [{ address = "127.0.0.1:9001" }]

[[target_groups]]
name = "canary"
targets = [{ address = "127.0.0.1:9002" }]
"#,
        )
        .expect("valid");
        let l = &config.listeners[0];
        assert_eq!(
            conditions_text(&l.rules[0].conditions),
            "host api.example.com and path /v1/* | /v2/*"
        );
        assert_eq!(
            action_text(&l.rules[0].action),
            "forward to web 90%, canary 10%"
        );
        assert_eq!(
            conditions_text(&l.rules[1].conditions),
            "header x-env: beta and method GET"
        );
        assert_eq!(
            action_text(&l.rules[1].action),
            "redirect 301 to https://#{host}#{path}"
        );
        assert_eq!(action_text(&l.default_action), "respond 404");
    }
}

//! What a new config changes against the running one, in a few words for the audit
//! trail: `+listener api`, `-target_group old`, `~rule public/10`,
//! `+target web/10.0.0.7:8080`, `~server`.
//!
//! Control path. Listeners, target groups and rate limits are matched by name,
//! rules by priority within their listener, targets by address within their
//! group; a listener or group counts as changed (`~`) when something besides its
//! rules or targets differs, so adding one target reads `+target`, not also
//! `~target_group`. The top-level tables (`server`, `admin`, `state`,
//! `access_log`) are one word each. At most [`MAX`] items, then a count of the
//! rest, so one entry stays one short line.

use ballast_config::{Config, ListenerConfig, TargetGroupConfig};

pub const MAX: usize = 32;

pub fn summary(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (name, changed) in [
        ("server", old.server != new.server),
        ("admin", old.admin != new.admin),
        ("state", old.state != new.state),
        ("access_log", old.access_log != new.access_log),
    ] {
        if changed {
            out.push(format!("~{name}"));
        }
    }
    by_key(
        &mut out,
        "listener",
        &old.listeners,
        &new.listeners,
        |l| l.name.clone(),
        |a, b| without_rules(a) != without_rules(b),
    );
    for l in &new.listeners {
        if let Some(before) = old.listeners.iter().find(|o| o.name == l.name) {
            let prefix = format!("rule {}/", l.name);
            by_key(
                &mut out,
                &prefix,
                &before.rules,
                &l.rules,
                |r| r.priority.to_string(),
                |a, b| a != b,
            );
        }
    }
    by_key(
        &mut out,
        "target_group",
        &old.target_groups,
        &new.target_groups,
        |g| g.name.clone(),
        |a, b| without_targets(a) != without_targets(b),
    );
    for g in &new.target_groups {
        if let Some(before) = old.target_groups.iter().find(|o| o.name == g.name) {
            let prefix = format!("target {}/", g.name);
            by_key(
                &mut out,
                &prefix,
                &before.targets,
                &g.targets,
                |t| t.address.to_string(),
                |a, b| a != b,
            );
        }
    }
    by_key(
        &mut out,
        "rate_limit",
        &old.rate_limits,
        &new.rate_limits,
        |l| l.name.clone(),
        |a, b| a != b,
    );
    if out.len() > MAX {
        let rest = out.len() - MAX;
        out.truncate(MAX);
        out.push(format!("… and {rest} more"));
    }
    out
}

/// `+what key`, `-what key`, `~what key` for items matched by `key`. A `what`
/// ending in `/` is a prefix (`rule public/`), joined to the key without a space.
fn by_key<T>(
    out: &mut Vec<String>,
    what: &str,
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
    changed: impl Fn(&T, &T) -> bool,
) {
    let sep = if what.ends_with('/') { "" } else { " " };
    for n in new {
        let k = key(n);
        match old.iter().find(|o| key(o) == k) {
            None => out.push(format!("+{what}{sep}{k}")),
            Some(o) if changed(o, n) => out.push(format!("~{what}{sep}{k}")),
            Some(_) => {}
        }
    }
    for o in old {
        let k = key(o);
        if !new.iter().any(|n| key(n) == k) {
            out.push(format!("-{what}{sep}{k}"));
        }
    }
}

fn without_rules(l: &ListenerConfig) -> ListenerConfig {
    ListenerConfig {
        rules: Vec::new(),
        ..l.clone()
    }
}

fn without_targets(g: &TargetGroupConfig) -> TargetGroupConfig {
    TargetGroupConfig {
        targets: Vec::new(),
        ..g.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:8080"
default_action = { type = "forward", target_group = "web" }
[[listeners.rules]]
priority = 10
conditions = [{ path = ["/api/*"] }]
action = { type = "forward", target_group = "web" }
[[target_groups]]
name = "web"
targets = [{ address = "127.0.0.1:9001" }, { address = "127.0.0.1:9002" }]
"#;

    fn config(text: &str) -> Config {
        Config::from_toml(text).expect("valid")
    }

    #[test]
    fn names_what_was_added_removed_and_changed() {
        let old = config(BASE);
        assert!(summary(&old, &old).is_empty());
        let text = BASE
            .replace("{ address = \"127.0.0.1:9001\" }, ", "")
            .replace(
                "\"127.0.0.1:9002\" }",
                "\"127.0.0.1:9002\", weight = 5 }, { address = \"127.0.0.1:9003\" }",
            )
            .replace("[\"/api/*\"]", "[\"/v2/*\"]")
            .replace(
                "name = \"web\"\n",
                "name = \"web\"\nalgorithm = \"least_outstanding_requests\"\n",
            )
            + "[[listeners]]\nname = \"api\"\nbind = \"127.0.0.1:8081\"\n\
               default_action = { type = \"fixed_response\", status = 204 }\n\
               [server]\ndrain_timeout = \"1s\"\n";
        let new = config(&text);
        assert_eq!(
            summary(&old, &new),
            [
                "~server",
                "+listener api",
                "~rule public/10",
                "~target_group web",
                "~target web/127.0.0.1:9002",
                "+target web/127.0.0.1:9003",
                "-target web/127.0.0.1:9001",
            ]
        );
        assert_eq!(summary(&new, &old)[1], "-listener api");
    }
}

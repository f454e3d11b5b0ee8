//! Decoding the source tree into the config model, and the checks that span fields
//! (unique names, references that must resolve, health-check timing).
//!
//! Control path only. Each `decode_*` function reads one table of SPEC §2, records
//! every error it finds and returns `None` for a part it could not build; the caller
//! returns the model only when no error was recorded at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::action::decode_action;
use crate::decode::{self as d, Errors, Fields};
use crate::model::*;
use crate::parse_group::decode_group;
use crate::rule::decode_rules;
use crate::source::{Node, Pos};

/// `base` is the directory relative file paths (TLS files) are resolved against.
pub fn decode(root: &Node, base: &Path, errs: &mut Errors) -> Option<Config> {
    let mut f = Fields::new(root, "", errs)?;
    let server = f
        .optional("server")
        .and_then(|n| decode_server(n, base, errs));
    let admin = f
        .optional("admin")
        .and_then(|n| crate::admin::decode_admin(n, base, errs));
    let state = f.optional("state").and_then(|n| decode_state(n, errs));
    let access_log = f
        .optional("access_log")
        .and_then(|n| decode_access_log(n, errs));
    let cluster_node = f.optional("cluster");
    let cluster = cluster_node.and_then(|n| crate::cluster::decode(n, base, errs));
    // Global limits need Redis; a `[cluster]` that failed to decode has
    // already been reported, so its limits are not reported again.
    let redis = cluster
        .as_ref()
        .map_or(cluster_node.is_some(), |c| c.redis.is_some());

    let (rate_limits, limit_names) = f
        .optional("rate_limits")
        .map(|n| crate::limits::decode(n, redis, errs))
        .unwrap_or_default();

    // Every target group named by an action, and every rate limit attached, with
    // where it was named.
    let mut refs = Vec::new();
    let mut limit_refs = Vec::new();
    let mut listeners = Vec::new();
    // A node whose config comes from etcd may leave its listeners to the fleet.
    let from_etcd = cluster.as_ref().is_some_and(|c| c.shares_config());
    let listeners_node = if from_etcd {
        f.optional("listeners")
    } else {
        f.required("listeners", errs)
    };
    if let Some(n) = listeners_node {
        let items = d::array(n, "listeners", errs);
        if items.is_empty() && matches!(n.value, crate::source::Value::Array(_)) {
            errs.at("listeners", n.pos, "at least one listener is required");
        }
        for (path, item) in items {
            let refs = Refs {
                groups: &mut refs,
                limits: &mut limit_refs,
            };
            listeners.push(decode_listener(item, &path, base, refs, errs));
        }
    }
    let mut groups = Vec::new();
    if let Some(n) = f.optional("target_groups") {
        for (path, item) in d::array(n, "target_groups", errs) {
            groups.push(decode_group(item, &path, base, errs));
        }
    }
    f.finish(errs);

    // Cross-field checks run on whatever decoded, so that they are reported too. A
    // group with an error elsewhere still counts as defined, for its references.
    let group_names: Vec<_> = groups.iter().filter_map(|g| g.name.clone()).collect();
    check_unique(
        groups.iter().filter_map(|g| g.name.as_ref()),
        "target group",
        errs,
    );
    check_unique(
        listeners.iter().filter_map(|l| l.name.as_ref()),
        "listener",
        errs,
    );
    check_unique(
        listeners.iter().filter_map(|l| l.bind.as_ref()),
        "listener bind address",
        errs,
    );
    check_unique(limit_names.iter(), "rate limit", errs);
    check_refs(&refs, &group_names, "target group", errs);
    check_refs(&limit_refs, &limit_names, "rate limit", errs);

    if !errs.0.is_empty() {
        return None;
    }
    Some(Config {
        server: server.unwrap_or_default(),
        admin: admin.unwrap_or_default(),
        state: state.unwrap_or_default(),
        access_log: access_log.unwrap_or(AccessLogConfig::Stdout),
        listeners: listeners.into_iter().filter_map(|l| l.config).collect(),
        target_groups: groups.into_iter().filter_map(|g| g.config).collect(),
        rate_limits,
        cluster,
    })
}

/// Report each reference to a `what` that is not defined.
fn check_refs(
    refs: &[Located<String>],
    defined: &[Located<String>],
    what: &str,
    errs: &mut Errors,
) {
    for r in refs {
        if !defined.iter().any(|g| g.value == r.value) {
            let known: Vec<_> = defined.iter().map(|n| format!("{:?}", n.value)).collect();
            errs.at(
                &r.path,
                r.pos,
                format!(
                    "unknown {what} {:?}; defined {what}s: {}",
                    r.value,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
}

/// Where a listener's references go: the target groups its actions name, the
/// rate limits it and its rules attach.
pub(crate) struct Refs<'a> {
    pub groups: &'a mut Vec<Located<String>>,
    pub limits: &'a mut Vec<Located<String>>,
}

/// A value as written, with where it was written, for cross-field errors.
#[derive(Clone)]
pub(crate) struct Located<T> {
    pub value: T,
    pub path: String,
    pub pos: Option<Pos>,
}

pub(crate) fn located<T>(node: &Node, path: String, value: Option<T>) -> Option<Located<T>> {
    value.map(|value| Located {
        value,
        path,
        pos: node.pos,
    })
}

pub(crate) fn check_unique<'a, T: PartialEq + std::fmt::Display + 'a>(
    values: impl Iterator<Item = &'a Located<T>>,
    what: &str,
    errs: &mut Errors,
) {
    let mut seen: Vec<&Located<T>> = Vec::new();
    for v in values {
        if let Some(first) = seen.iter().find(|s| s.value == v.value) {
            errs.at(
                &v.path,
                v.pos,
                format!(
                    "duplicate {what} \"{}\"; already used by {}",
                    v.value, first.path
                ),
            );
        } else {
            seen.push(v);
        }
    }
}

fn decode_server(node: &Node, base: &Path, errs: &mut Errors) -> Option<ServerConfig> {
    let mut f = Fields::new(node, "server", errs)?;
    let mut server = ServerConfig::default();
    if let Some(n) = f.optional("drain_timeout") {
        let path = f.path("drain_timeout");
        server.drain_timeout =
            d::duration_in(n, &path, Duration::ZERO, Duration::from_secs(3600), errs)?;
    }
    if let Some(n) = f.optional("stickiness_key_file") {
        let path = f.path("stickiness_key_file");
        server.stickiness_key_file = Some(crate::resilience::key_file(n, &path, base, errs)?);
    }
    if let Some(n) = f.optional("dns_servers") {
        server.dns_servers = crate::dns::decode_servers(n, &f.path("dns_servers"), errs)?;
    }
    f.finish(errs);
    Some(server)
}

fn decode_state(node: &Node, errs: &mut Errors) -> Option<StateConfig> {
    let mut f = Fields::new(node, "state", errs)?;
    let mut state = StateConfig::default();
    if let Some(n) = f.optional("dir") {
        state.dir = PathBuf::from(d::string(n, &f.path("dir"), errs)?);
    }
    f.finish(errs);
    Some(state)
}

fn decode_access_log(node: &Node, errs: &mut Errors) -> Option<AccessLogConfig> {
    let mut f = Fields::new(node, "access_log", errs)?;
    let log = match f.optional("path") {
        None => AccessLogConfig::Stdout,
        Some(n) => match d::string(n, &f.path("path"), errs)?.as_str() {
            "off" => AccessLogConfig::Off,
            "" => {
                errs.at(
                    &f.path("path"),
                    n.pos,
                    "empty path; give a file path, or \"off\"",
                );
                return None;
            }
            p => AccessLogConfig::File(PathBuf::from(p)),
        },
    };
    f.finish(errs);
    Some(log)
}

/// A listener as decoded: its config when it had no error, and the parts the
/// cross-field checks need even when it had some.
#[derive(Default)]
struct DecodedListener {
    config: Option<ListenerConfig>,
    name: Option<Located<String>>,
    bind: Option<Located<std::net::SocketAddr>>,
}

fn decode_listener(
    node: &Node,
    path: &str,
    base: &Path,
    refs: Refs<'_>,
    errs: &mut Errors,
) -> DecodedListener {
    let Refs {
        groups: refs,
        limits: limit_refs,
    } = refs;
    let Some(mut f) = Fields::new(node, path, errs) else {
        return DecodedListener::default();
    };
    let name = f.required("name", errs).and_then(|n| {
        let p = f.path("name");
        located(n, p.clone(), d::name(n, &p, errs))
    });
    let bind = f.required("bind", errs).and_then(|n| {
        let p = f.path("bind");
        located(n, p.clone(), d::socket_addr(n, &p, errs))
    });
    let protocol = match f.optional("protocol") {
        None => Some(ListenerProtocol::Http),
        Some(n) => {
            let p = f.path("protocol");
            match d::string(n, &p, errs).as_deref() {
                Some("http") => Some(ListenerProtocol::Http),
                Some("https") => Some(ListenerProtocol::Https),
                Some(other) => {
                    errs.at(
                        &p,
                        n.pos,
                        format!("unknown value {other:?}; allowed: \"http\", \"https\""),
                    );
                    None
                }
                None => None,
            }
        }
    };
    let action = f
        .required("default_action", errs)
        .and_then(|n| decode_action(n, &f.path("default_action"), refs, errs));
    let header_read_timeout = optional_duration(
        &mut f,
        "header_read_timeout",
        ListenerConfig::DEFAULT_HEADER_READ_TIMEOUT,
        (Duration::from_millis(1), Duration::from_secs(3600)),
        errs,
    );
    let idle_timeout = optional_duration(
        &mut f,
        "idle_timeout",
        ListenerConfig::DEFAULT_IDLE_TIMEOUT,
        (Duration::from_millis(1), Duration::from_secs(4000)),
        errs,
    );
    let upgrade_idle_timeout = optional_duration(
        &mut f,
        "upgrade_idle_timeout",
        ListenerConfig::DEFAULT_UPGRADE_IDLE_TIMEOUT,
        (Duration::from_millis(1), Duration::from_secs(24 * 3600)),
        errs,
    );
    let desync_mitigation_mode = match f.optional("desync_mitigation_mode") {
        None => Some(DesyncMitigationMode::default()),
        Some(n) => d::one_of(
            n,
            &f.path("desync_mitigation_mode"),
            &[
                ("monitor", DesyncMitigationMode::Monitor),
                ("defensive", DesyncMitigationMode::Defensive),
                ("strictest", DesyncMitigationMode::Strictest),
            ],
            errs,
        ),
    };
    let drop_invalid_header_fields = match f.optional("drop_invalid_header_fields") {
        None => Some(false),
        Some(n) => d::boolean(n, &f.path("drop_invalid_header_fields"), errs),
    };
    let max_request_head_size = match f.optional("max_request_head_size") {
        None => Some(ListenerConfig::DEFAULT_MAX_REQUEST_HEAD_SIZE),
        Some(n) => d::size_in(
            n,
            &f.path("max_request_head_size"),
            ListenerConfig::MIN_REQUEST_HEAD_SIZE,
            ListenerConfig::MAX_REQUEST_HEAD_SIZE,
            errs,
        ),
    };
    let rules = match f.optional("rules") {
        None => Some(Vec::new()),
        Some(n) => decode_rules(
            n,
            &f.path("rules"),
            Refs {
                groups: refs,
                limits: limit_refs,
            },
            errs,
        ),
    };
    let rate_limits = match f.optional("rate_limits") {
        None => Some(Vec::new()),
        Some(n) => crate::limits::decode_refs(n, &f.path("rate_limits"), limit_refs, errs),
    };
    let https = protocol.map(|p| p == ListenerProtocol::Https);
    let tls = crate::tls::decode_listener_tls(&mut f, https, base, errs);
    let admission = crate::admission::decode_listener_admission(&mut f, errs);
    let client_timeouts = crate::client_timeouts::decode_client_timeouts(&mut f, errs);
    f.finish(errs);
    let config = (|| {
        Some(ListenerConfig {
            upgrade_idle_timeout: upgrade_idle_timeout?,
            name: name.as_ref()?.value.clone(),
            bind: bind.as_ref()?.value,
            protocol: protocol?,
            default_action: action.clone()?,
            header_read_timeout: header_read_timeout?,
            idle_timeout: idle_timeout?,
            desync_mitigation_mode: desync_mitigation_mode?,
            drop_invalid_header_fields: drop_invalid_header_fields?,
            max_request_head_size: max_request_head_size?,
            rules: rules?,
            rate_limits: rate_limits?,
            tls: tls?,
            admission: admission?,
            client_timeouts: client_timeouts?,
        })
    })();
    DecodedListener { config, name, bind }
}

pub(crate) fn optional_duration(
    f: &mut Fields<'_>,
    key: &'static str,
    default: Duration,
    (lo, hi): (Duration, Duration),
    errs: &mut Errors,
) -> Option<Duration> {
    match f.optional(key) {
        None => Some(default),
        Some(n) => d::duration_in(n, &f.path(key), lo, hi, errs),
    }
}

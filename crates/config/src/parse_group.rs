//! Decoding a `[[target_groups]]` table: its targets, health check and unhealthy
//! state routing, and the resilience keys each read by its own module.

use std::path::Path;
use std::time::Duration;

use crate::decode::{self as d, Errors, Fields};
use crate::model::*;
use crate::parse::{located, optional_duration, Located};
use crate::source::Node;

/// A target group as decoded: its config when it had no error, and its name even
/// when it had some.
pub(crate) struct DecodedGroup {
    pub(crate) config: Option<TargetGroupConfig>,
    pub(crate) name: Option<Located<String>>,
}

pub(crate) fn decode_group(
    node: &Node,
    path: &str,
    base: &Path,
    errs: &mut Errors,
) -> DecodedGroup {
    let Some(mut f) = Fields::new(node, path, errs) else {
        return DecodedGroup {
            config: None,
            name: None,
        };
    };
    let name = f.required("name", errs).and_then(|n| {
        let p = f.path("name");
        located(n, p.clone(), d::name(n, &p, errs))
    });
    let algorithm = match f.optional("algorithm") {
        None => Some(Algorithm::RoundRobin),
        Some(n) => d::one_of(
            n,
            &f.path("algorithm"),
            &[
                ("round_robin", Algorithm::RoundRobin),
                (
                    "least_outstanding_requests",
                    Algorithm::LeastOutstandingRequests,
                ),
                ("weighted_random", Algorithm::WeightedRandom),
            ],
            errs,
        ),
    };
    let protocol = match f.optional("protocol") {
        None => Some(TargetProtocol::Http1),
        Some(n) => d::one_of(
            n,
            &f.path("protocol"),
            &[
                ("http1", TargetProtocol::Http1),
                ("http2", TargetProtocol::Http2),
            ],
            errs,
        ),
    };
    let targets = match f.required("targets", errs) {
        Some(n) => decode_targets(n, &f.path("targets"), errs),
        None => None,
    };
    let health_check = match f.optional("health_check") {
        None => Some(HealthCheckConfig::default()),
        Some(n) => decode_health_check(n, &f.path("health_check"), protocol, errs),
    };
    let routing = match f.optional("unhealthy_state_routing") {
        None => Some(UnhealthyStateRouting::default()),
        Some(n) => decode_routing(n, &f.path("unhealthy_state_routing"), errs),
    };
    let connect_timeout = optional_duration(
        &mut f,
        "connect_timeout",
        TargetGroupConfig::DEFAULT_CONNECT_TIMEOUT,
        (Duration::from_millis(1), Duration::from_secs(600)),
        errs,
    );
    let response_timeout = optional_duration(
        &mut f,
        "response_timeout",
        TargetGroupConfig::DEFAULT_RESPONSE_TIMEOUT,
        (Duration::from_millis(1), Duration::from_secs(4000)),
        errs,
    );
    let deregistration_delay = optional_duration(
        &mut f,
        "deregistration_delay",
        TargetGroupConfig::DEFAULT_DEREGISTRATION_DELAY,
        (Duration::ZERO, Duration::from_secs(3600)),
        errs,
    );
    let resilience = crate::resilience::decode(&mut f, errs);
    let load_shedding = crate::shedding::decode(&mut f, errs);
    let shuffle_shard = match f.optional("shuffle_shard") {
        None => Some(None),
        Some(n) => {
            let count = targets.as_ref().map(Vec::len);
            crate::shuffle_shard::decode(n, &f.path("shuffle_shard"), count, errs).map(Some)
        }
    };
    // With `protocol = "http2"`, TLS carries HTTP/2 negotiated by ALPN `h2`.
    let tls = crate::tls::decode_group_tls(&mut f, base, errs);
    let dns = crate::dns::decode_refresh(&mut f, errs);
    f.finish(errs);
    let config = (|| {
        Some(TargetGroupConfig {
            name: name.as_ref()?.value.clone(),
            algorithm: algorithm?,
            protocol: protocol?,
            targets: targets?,
            health_check: health_check?,
            unhealthy_state_routing: routing?,
            connect_timeout: connect_timeout?,
            response_timeout: response_timeout?,
            deregistration_delay: deregistration_delay?,
            tls: tls?,
            anomaly_mitigation: resilience.anomaly_mitigation?,
            slow_start: resilience.slow_start?,
            stickiness: resilience.stickiness?,
            retry: resilience.retry?,
            circuit_breaker: resilience.circuit_breaker?,
            load_shedding: load_shedding?,
            shuffle_shard: shuffle_shard?,
            dns: dns?,
        })
    })();
    DecodedGroup { config, name }
}

fn decode_targets(node: &Node, path: &str, errs: &mut Errors) -> Option<Vec<TargetConfig>> {
    let mut targets = Vec::new();
    let mut ok = true;
    for (tpath, item) in d::array(node, path, errs) {
        let Some(mut f) = Fields::new(item, &tpath, errs) else {
            ok = false;
            continue;
        };
        let address = crate::dns::decode_target_address(&mut f, errs);
        let weight = match f.optional("weight") {
            None => Some(TargetConfig::DEFAULT_WEIGHT),
            Some(n) => d::u32_in(n, &f.path("weight"), 0, TargetConfig::MAX_WEIGHT, errs),
        };
        let name = match f.optional("name") {
            None => Some(None),
            Some(n) => target_name(n, &f.path("name"), &targets, path, errs).map(Some),
        };
        f.finish(errs);
        match (address, weight, name) {
            (Some(address), Some(weight), Some(name)) => {
                if let Some(i) = targets
                    .iter()
                    .position(|t: &TargetConfig| t.address == address)
                {
                    errs.at(
                        &format!("{tpath}.address"),
                        item.pos,
                        format!("duplicate target {address}; already listed as {path}[{i}]"),
                    );
                    ok = false;
                }
                targets.push(TargetConfig {
                    address,
                    weight,
                    name,
                });
            }
            _ => ok = false,
        }
    }
    ok.then_some(targets)
}

/// A target's optional `name`: a name as group and listener names are, unique
/// within its group.
fn target_name(
    node: &Node,
    path: &str,
    earlier: &[TargetConfig],
    targets_path: &str,
    errs: &mut Errors,
) -> Option<String> {
    let name = d::name(node, path, errs)?;
    if let Some(i) = earlier
        .iter()
        .position(|t| t.name.as_deref() == Some(name.as_str()))
    {
        errs.at(
            path,
            node.pos,
            format!("duplicate target name {name:?}; already used by {targets_path}[{i}]"),
        );
        return None;
    }
    Some(name)
}

fn decode_health_check(
    node: &Node,
    path: &str,
    protocol: Option<TargetProtocol>,
    errs: &mut Errors,
) -> Option<HealthCheckConfig> {
    let mut f = Fields::new(node, path, errs)?;
    let def = HealthCheckConfig::default();
    let hc_path = match f.optional("path") {
        None => Some(def.path),
        Some(n) => {
            let p = f.path("path");
            d::string(n, &p, errs).and_then(|s| {
                let valid = s.starts_with('/')
                    && s.bytes().all(|b| b.is_ascii_graphic())
                    && !s.contains('#');
                if valid {
                    Some(s)
                } else {
                    errs.at(&p, n.pos, format!("invalid health check path {s:?}; expected an absolute path such as \"/healthz\" (no spaces)"));
                    None
                }
            })
        }
    };
    let interval = optional_duration(
        &mut f,
        "interval",
        def.interval,
        (Duration::from_millis(100), Duration::from_secs(300)),
        errs,
    );
    // An unwritten timeout follows the interval, so a default never fails.
    let default_timeout = HealthCheckConfig::default_timeout(interval.unwrap_or(def.interval));
    let timeout_node = f.peek("timeout");
    let timeout = optional_duration(
        &mut f,
        "timeout",
        default_timeout,
        (Duration::from_millis(10), Duration::from_secs(120)),
        errs,
    );
    let threshold = |f: &mut Fields<'_>, key, default, errs: &mut Errors| match f.optional(key) {
        None => Some(default),
        Some(n) => d::u32_in(n, &f.path(key), 1, 10, errs),
    };
    let healthy_threshold = threshold(&mut f, "healthy_threshold", def.healthy_threshold, errs);
    let unhealthy_threshold =
        threshold(&mut f, "unhealthy_threshold", def.unhealthy_threshold, errs);
    let matcher = match f.optional("matcher") {
        None => Some(def.matcher),
        Some(n) => {
            let p = f.path("matcher");
            d::string(n, &p, errs).and_then(|s| {
                let m = StatusMatcher::parse(&s);
                if m.is_none() {
                    errs.at(
                        &p,
                        n.pos,
                        format!("invalid matcher {s:?}; expected {}", StatusMatcher::ALLOWED),
                    );
                }
                m
            })
        }
    };
    if let (Some(i), Some(t), Some(node)) = (interval, timeout, timeout_node) {
        if t >= i {
            errs.at(
                &f.path("timeout"),
                node.pos,
                format!(
                    "timeout {} must be shorter than interval {}",
                    crate::duration::format(t),
                    crate::duration::format(i)
                ),
            );
        }
    }
    let grpc = crate::parse_grpc::decode_grpc_check(&mut f, protocol, errs);
    f.finish(errs);
    Some(HealthCheckConfig {
        path: hc_path?,
        interval: interval?,
        timeout: timeout?,
        healthy_threshold: healthy_threshold?,
        unhealthy_threshold: unhealthy_threshold?,
        matcher: matcher?,
        grpc: grpc?,
    })
}

fn decode_routing(node: &Node, path: &str, errs: &mut Errors) -> Option<UnhealthyStateRouting> {
    let mut f = Fields::new(node, path, errs)?;
    let mut r = UnhealthyStateRouting::default();
    if let Some(n) = f.optional("minimum_healthy_targets") {
        r.minimum_healthy_targets =
            d::u32_in(n, &f.path("minimum_healthy_targets"), 0, 1000, errs)?;
    }
    f.finish(errs);
    Some(r)
}

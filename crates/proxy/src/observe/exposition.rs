//! Prometheus text exposition (format 0.0.4) of the metric cells in `metrics.rs`.
//!
//! Control path: runs on a scrape, never on a request. It is given a view of the
//! current snapshot (`Snapshot::render_metrics`), so the label sets are exactly the
//! listeners, groups and targets that exist now (draining targets included until
//! they are removed); the gauges of health and weight are read from the targets
//! themselves at the scrape rather than mirrored. Only the format is known here,
//! not what is observed.

use std::fmt::Write as _;

use crate::hygiene::desync::Class;
use crate::observe::metrics::{
    Histogram, ListenerMetrics, Rejection, TargetMetrics, TimeoutPhase, BUCKETS, HTTP2_REASONS,
};

/// One listener as a scrape shows it.
pub struct ListenerView<'a> {
    pub name: &'a str,
    pub metrics: &'a ListenerMetrics,
}

/// One target group as a scrape shows it.
pub struct GroupView<'a> {
    pub name: &'a str,
    pub healthy: usize,
    pub unhealthy: usize,
    /// Targets of a group no listener forwards to.
    pub unused: usize,
    pub failing_open: bool,
    /// Targets the anomaly detector judges anomalous now.
    pub anomalous: usize,
    /// Targets whose weight anomaly mitigation has cut.
    pub mitigated: usize,
    pub targets: Vec<TargetView<'a>>,
}

/// One target as a scrape shows it.
pub struct TargetView<'a> {
    pub address: String,
    /// The effective weight: configured × slow start × mitigation.
    pub weight: f64,
    pub metrics: &'a TargetMetrics,
}

/// Everything at `GET /metrics` but the TLS counters (`render_tls`), for these
/// listeners and groups, in the order given.
pub fn render(listeners: &[ListenerView<'_>], groups: &[GroupView<'_>]) -> String {
    let mut out = String::with_capacity(16 * 1024);

    family(
        &mut out,
        "ballast_requests_total",
        "counter",
        "Requests answered, by listener and status code.",
    );
    for ListenerView { name, metrics } in listeners {
        for (code, n) in metrics.requests.read() {
            sample(
                &mut out,
                "ballast_requests_total",
                &[("listener", name), ("code", &code.to_string())],
                n,
            );
        }
    }
    family(
        &mut out,
        "ballast_request_duration_seconds",
        "histogram",
        "Time from a request head arriving to its response head, by listener.",
    );
    for ListenerView { name, metrics } in listeners {
        histogram(
            &mut out,
            "ballast_request_duration_seconds",
            &[("listener", name)],
            &metrics.duration,
        );
    }
    family(
        &mut out,
        "ballast_active_connections",
        "gauge",
        "Open client connections, by listener.",
    );
    for ListenerView { name, metrics } in listeners {
        let n = metrics
            .active_connections
            .load(std::sync::atomic::Ordering::Relaxed);
        sample(
            &mut out,
            "ballast_active_connections",
            &[("listener", name)],
            n.max(0),
        );
    }
    family(
        &mut out,
        "ballast_upgraded_connections",
        "gauge",
        "Upgraded (WebSocket) connections being relayed, by listener.",
    );
    for ListenerView { name, metrics } in listeners {
        let n = metrics.upgraded.load(std::sync::atomic::Ordering::Relaxed);
        sample(
            &mut out,
            "ballast_upgraded_connections",
            &[("listener", name)],
            n.max(0),
        );
    }
    family(
        &mut out,
        "ballast_upgraded_connections_total",
        "counter",
        "Connections upgraded (WebSocket) since start, by listener.",
    );
    for ListenerView { name, metrics } in listeners {
        let n = metrics
            .upgrades_total
            .load(std::sync::atomic::Ordering::Relaxed);
        sample(
            &mut out,
            "ballast_upgraded_connections_total",
            &[("listener", name)],
            n,
        );
    }
    family(
        &mut out,
        "ballast_parked_connections_total",
        "counter",
        "Times a quiet keep-alive connection gave its HTTP state and buffers back, by listener.",
    );
    for ListenerView { name, metrics } in listeners {
        let n = metrics
            .parked_total
            .load(std::sync::atomic::Ordering::Relaxed);
        sample(
            &mut out,
            "ballast_parked_connections_total",
            &[("listener", name)],
            n,
        );
    }
    family(
        &mut out,
        "ballast_rejected_requests_total",
        "counter",
        "Requests ballast answered itself without trying a target, by listener and reason.",
    );
    for ListenerView { name, metrics } in listeners {
        for why in Rejection::ALL {
            sample(
                &mut out,
                "ballast_rejected_requests_total",
                &[("listener", name), ("reason", why.as_str())],
                metrics.rejected(why),
            );
        }
    }
    family(
        &mut out,
        "ballast_client_timeouts_total",
        "counter",
        "Slow clients cut off, by listener and phase: head (header_read_timeout), body (request_body_timeout) or send (response_send_timeout).",
    );
    for ListenerView { name, metrics } in listeners {
        for phase in TimeoutPhase::ALL {
            sample(
                &mut out,
                "ballast_client_timeouts_total",
                &[("listener", name), ("phase", phase.as_str())],
                metrics.timeouts(phase),
            );
        }
    }
    family(
        &mut out,
        "ballast_desync_requests_total",
        "counter",
        "HTTP/1 requests by listener and desync classification (compliant, acceptable, ambiguous, severe).",
    );
    for ListenerView { name, metrics } in listeners {
        for class in Class::ALL {
            sample(
                &mut out,
                "ballast_desync_requests_total",
                &[("listener", name), ("classification", class.as_str())],
                metrics.desync(class),
            );
        }
    }
    family(
        &mut out,
        "ballast_http2_connections_closed_total",
        "counter",
        "HTTP/2 client connections ballast closed with a GOAWAY carrying an error, by listener and error code.",
    );
    for ListenerView { name, metrics } in listeners {
        for (i, reason) in HTTP2_REASONS.iter().enumerate().skip(1) {
            sample(
                &mut out,
                "ballast_http2_connections_closed_total",
                &[("listener", name), ("reason", reason)],
                metrics.http2_closed_by(i),
            );
        }
    }

    family(
        &mut out,
        "ballast_target_requests_total",
        "counter",
        "Responses from targets, by target group, target and status code.",
    );
    for g in groups {
        for t in &g.targets {
            let addr = &t.address;
            for (code, n) in t.metrics.requests.read() {
                sample(
                    &mut out,
                    "ballast_target_requests_total",
                    &[
                        ("target_group", g.name),
                        ("target", addr),
                        ("code", &code.to_string()),
                    ],
                    n,
                );
            }
        }
    }
    family(
        &mut out,
        "ballast_target_response_duration_seconds",
        "histogram",
        "Time from sending a request to a target to its response head.",
    );
    for g in groups {
        for t in &g.targets {
            histogram(
                &mut out,
                "ballast_target_response_duration_seconds",
                &[("target_group", g.name), ("target", &t.address)],
                &t.metrics.duration,
            );
        }
    }
    family(
        &mut out,
        "ballast_target_connection_errors_total",
        "counter",
        "Failed connection attempts to a target on the data path.",
    );
    for g in groups {
        for t in &g.targets {
            let n = t
                .metrics
                .connection_errors
                .load(std::sync::atomic::Ordering::Relaxed);
            sample(
                &mut out,
                "ballast_target_connection_errors_total",
                &[("target_group", g.name), ("target", &t.address)],
                n,
            );
        }
    }
    family(
        &mut out,
        "ballast_target_weight",
        "gauge",
        "Each target's effective weight: its configured weight shaped by slow start and anomaly mitigation.",
    );
    for g in groups {
        for t in &g.targets {
            sample(
                &mut out,
                "ballast_target_weight",
                &[("target_group", g.name), ("target", &t.address)],
                t.weight,
            );
        }
    }
    family(
        &mut out,
        "ballast_healthy_targets",
        "gauge",
        "Healthy targets, by target group.",
    );
    for g in groups {
        sample(
            &mut out,
            "ballast_healthy_targets",
            &[("target_group", g.name)],
            g.healthy,
        );
    }
    family(
        &mut out,
        "ballast_unhealthy_targets",
        "gauge",
        "Unhealthy targets, by target group.",
    );
    for g in groups {
        sample(
            &mut out,
            "ballast_unhealthy_targets",
            &[("target_group", g.name)],
            g.unhealthy,
        );
    }
    family(
        &mut out,
        "ballast_unused_targets",
        "gauge",
        "Targets of a group no listener forwards to (state unused), by target group.",
    );
    for g in groups {
        sample(
            &mut out,
            "ballast_unused_targets",
            &[("target_group", g.name)],
            g.unused,
        );
    }
    family(
        &mut out,
        "ballast_unhealthy_state_routing",
        "gauge",
        "1 while a target group fails open (too few healthy targets), else 0.",
    );
    for g in groups {
        sample(
            &mut out,
            "ballast_unhealthy_state_routing",
            &[("target_group", g.name)],
            u8::from(g.failing_open),
        );
    }
    family(
        &mut out,
        "ballast_anomalous_targets",
        "gauge",
        "Targets failing markedly more than their peers (anomaly detection), by target group.",
    );
    for g in groups {
        sample(
            &mut out,
            "ballast_anomalous_targets",
            &[("target_group", g.name)],
            g.anomalous,
        );
    }
    family(
        &mut out,
        "ballast_mitigated_targets",
        "gauge",
        "Targets whose weight anomaly mitigation has cut, by target group.",
    );
    for g in groups {
        sample(
            &mut out,
            "ballast_mitigated_targets",
            &[("target_group", g.name)],
            g.mitigated,
        );
    }
    family(
        &mut out,
        "ballast_access_log_dropped_total",
        "counter",
        "Access-log lines dropped because the writer could not keep up.",
    );
    sample(
        &mut out,
        "ballast_access_log_dropped_total",
        &[],
        crate::observe::access_log::dropped(),
    );
    out
}

/// The TLS counters, which live in the TLS registry rather than the snapshot:
/// handshake failures per `https` listener, and TLS files that failed to load.
pub fn render_tls(out: &mut String, handshake_errors: &[(&str, u64)], reload_errors: u64) {
    family(
        out,
        "ballast_tls_handshake_errors_total",
        "counter",
        "TLS handshakes that failed (bad client certificate, protocol, timeout), by listener.",
    );
    for (listener, n) in handshake_errors {
        sample(
            out,
            "ballast_tls_handshake_errors_total",
            &[("listener", listener)],
            n,
        );
    }
    family(
        out,
        "ballast_tls_reload_errors_total",
        "counter",
        "TLS files (certificates, keys, CAs, CRLs) that failed to load; the last good ones stay.",
    );
    sample(out, "ballast_tls_reload_errors_total", &[], reload_errors);
}

pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub(crate) fn sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    write_labels(out, labels, None);
    let _ = writeln!(out, " {value}");
}

fn histogram(out: &mut String, name: &str, labels: &[(&str, &str)], h: &Histogram) {
    let (cumulative, sum) = h.read();
    for (i, count) in cumulative.iter().enumerate() {
        let le = BUCKETS
            .get(i)
            .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        let _ = write!(out, "{name}_bucket");
        write_labels(out, labels, Some(&le));
        let _ = writeln!(out, " {count}");
    }
    let _ = write!(out, "{name}_sum");
    write_labels(out, labels, None);
    let _ = writeln!(out, " {sum}");
    let _ = write!(out, "{name}_count");
    write_labels(out, labels, None);
    let _ = writeln!(out, " {}", cumulative[BUCKETS.len()]);
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
    for (i, (k, v)) in all.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

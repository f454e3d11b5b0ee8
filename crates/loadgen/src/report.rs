//! The two renderings of a [`Summary`]: a text report for people (wrk-like, one fact a
//! line) and one JSON document for scripts (the keys of SPEC §7 plus a few more).
//! Both print milliseconds with microsecond precision, the histogram's resolution.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::summary::{Latency, Summary};

/// The text report, ending with a newline.
pub fn text(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "ballast bench {}", s.url);
    let _ = writeln!(out, "  {}", s.description);
    if s.interrupted {
        let _ = writeln!(out, "  (interrupted)");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  Requests   {} in {:.3} s = {:.1} req/s",
        s.requests,
        s.seconds(),
        s.rps()
    );
    let _ = writeln!(
        out,
        "  Body       {} bytes = {}/s",
        s.bytes,
        human_bytes(s.bytes_per_s())
    );
    let status: Vec<String> = s.status.iter().map(|(c, n)| format!("{c}: {n}")).collect();
    let status = if status.is_empty() {
        "-".to_owned()
    } else {
        status.join(", ")
    };
    let _ = writeln!(out, "  Status     {status}");
    let errors: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(out, "  Errors     {}", errors.join(", "));
    if s.rate.is_some() {
        let _ = writeln!(out, "  Late       {}", s.late);
    }
    let l = &s.latency;
    let _ = writeln!(
        out,
        "  Latency    {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
    let _ = writeln!(
        out,
        "  (ms)       {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
        l.p50, l.p90, l.p99, l.p999, l.p9999, l.max
    );
    out
}

fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

#[derive(Serialize)]
struct Document<'a> {
    url: &'a str,
    connections: u32,
    threads: usize,
    http: &'static str,
    mode: &'static str,
    rate: Option<f64>,
    interrupted: bool,
    requests: u64,
    duration_s: f64,
    rps: f64,
    bytes: u64,
    bytes_per_s: f64,
    status: BTreeMap<String, u64>,
    errors: BTreeMap<&'static str, u64>,
    latency_ms: LatencyMs,
    /// Of 2xx responses only.
    latency_ms_2xx: LatencyMs,
    late: u64,
    timeline: Vec<PointJson>,
}

#[derive(Serialize)]
struct LatencyMs {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    p9999: f64,
    max: f64,
}

#[derive(Serialize)]
struct PointJson {
    t: f64,
    requests: u64,
    errors: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl From<&Latency> for LatencyMs {
    fn from(l: &Latency) -> Self {
        Self {
            p50: l.p50,
            p90: l.p90,
            p99: l.p99,
            p999: l.p999,
            p9999: l.p9999,
            max: l.max,
        }
    }
}

/// The JSON document, pretty-printed.
pub fn json(s: &Summary) -> anyhow::Result<String> {
    let doc = Document {
        url: &s.url,
        connections: s.connections,
        threads: s.threads,
        http: if s.http2 { "2" } else { "1.1" },
        mode: if s.rate.is_some() { "open" } else { "closed" },
        rate: s.rate,
        interrupted: s.interrupted,
        requests: s.requests,
        duration_s: s.seconds(),
        rps: s.rps(),
        bytes: s.bytes,
        bytes_per_s: s.bytes_per_s(),
        status: s.status.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
        errors: s.errors.iter().copied().collect(),
        latency_ms: (&s.latency).into(),
        latency_ms_2xx: (&s.latency_2xx).into(),
        late: s.late,
        timeline: s
            .timeline
            .iter()
            .map(|p| PointJson {
                t: p.t,
                requests: p.requests,
                errors: p.errors,
                rps: p.rps,
                p50_ms: p.p50_ms,
                p99_ms: p.p99_ms,
                max_ms: p.max_ms,
            })
            .collect(),
    };
    Ok(serde_json::to_string_pretty(&doc)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(999.0), "999.00 B");
        assert_eq!(human_bytes(1_500.0), "1.50 kB");
        assert_eq!(human_bytes(2_000_000.0), "2.00 MB");
    }
}

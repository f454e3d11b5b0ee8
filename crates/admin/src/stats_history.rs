//! The dashboard's 15 minutes of history: requests/s, 4xx/s, 5xx/s and p50/p90/p99
//! latency per listener, per target group and per target, sampled every 5 s and
//! served at `GET /api/v1/stats/history`.
//!
//! Control path: one background task, started with the admin listener
//! (`listener.rs`), reads the running snapshot's metric cells on each tick
//! (`Snapshot::metric_views`, the same cells `/metrics` renders; no text is
//! parsed), turns the difference from the previous tick into one point per
//! series (`sample.rs`) and appends it to that series' ring. The data path is
//! not involved: it keeps counting into its cells as always. A group's point is
//! the sum of its targets' differences, so a target that joins or leaves between
//! two ticks never makes the group's rate jump or go negative.
//!
//! Bounded: each series keeps the last [`KEEP`] points (15 minutes at the 5 s
//! interval) and series of listeners, groups and targets that no longer exist
//! are dropped at the next tick, so memory follows the config, not the uptime.
//! The rings sit behind one `std` mutex that only the sampler (every few
//! seconds) and readers of the endpoint take, briefly, never across an await.
//!
//! `BALLAST_DASHBOARD_SAMPLE_MS` (milliseconds, 10 to 60000) replaces the 5 s
//! interval: a knob for tests, so a browser test sees points within a second.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::Json;
use ballast_proxy::Snapshot;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::ReadAccess;
use crate::error::ApiError;
use crate::sample::{Point, Reading};
use crate::AdminState;

/// Points kept per series: 15 minutes at the default interval.
pub const KEEP: usize = 180;
/// The default sampling interval.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// The test knob replacing [`INTERVAL`].
pub const INTERVAL_ENV: &str = "BALLAST_DASHBOARD_SAMPLE_MS";

/// The series of every listener, group and target, and the last readings.
pub struct History {
    interval: Duration,
    rings: Mutex<Rings>,
}

/// What one tick read: listeners by name, and each group's targets by address.
#[derive(Default)]
pub struct Readings {
    pub listeners: Vec<(String, Reading)>,
    pub groups: Vec<(String, Vec<(String, Reading)>)>,
}

impl Readings {
    pub fn of(snapshot: &Snapshot) -> Readings {
        let (listeners, groups) = snapshot.metric_views();
        Readings {
            listeners: listeners
                .iter()
                .map(|l| {
                    let m = l.metrics;
                    let open = m.active_connections.load(Ordering::Relaxed).max(0);
                    let reading = Reading {
                        open: open.unsigned_abs(),
                        ..Reading::of(&m.requests, &m.duration, 0)
                    };
                    (l.name.to_string(), reading)
                })
                .collect(),
            groups: groups
                .iter()
                .map(|g| {
                    let targets = g.targets.iter().map(|t| {
                        let m = t.metrics;
                        let errors = m.connection_errors.load(Ordering::Relaxed);
                        (
                            t.address.clone(),
                            Reading::of(&m.requests, &m.duration, errors),
                        )
                    });
                    (g.name.to_string(), targets.collect())
                })
                .collect(),
        }
    }
}

/// The previous tick: when, and its readings by listener and by (group, target).
struct Last {
    at: Instant,
    listeners: HashMap<String, Reading>,
    targets: HashMap<(String, String), Reading>,
}

#[derive(Default)]
struct Rings {
    /// The previous tick: when, and its readings by listener and by (group, target).
    last: Option<Last>,
    listeners: BTreeMap<String, VecDeque<Point>>,
    groups: BTreeMap<String, VecDeque<Point>>,
    targets: BTreeMap<String, BTreeMap<String, VecDeque<Point>>>,
}

fn push(ring: &mut VecDeque<Point>, point: Point) {
    if ring.len() == KEEP {
        ring.pop_front();
    }
    ring.push_back(point);
}

impl History {
    pub fn new(interval: Duration) -> History {
        History {
            interval,
            rings: Mutex::new(Rings::default()),
        }
    }

    /// The interval from [`INTERVAL_ENV`] if set and valid, else [`INTERVAL`].
    pub fn from_env() -> History {
        let interval = match std::env::var(INTERVAL_ENV) {
            Err(_) => INTERVAL,
            Ok(v) => match v.parse::<u64>() {
                Ok(ms) if (10..=60_000).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    tracing::warn!(value = %v, "{INTERVAL_ENV} must be 10 to 60000 (milliseconds); sampling every 5 s");
                    INTERVAL
                }
            },
        };
        History::new(interval)
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Read `snapshot`'s counters now and record them (what each tick does).
    pub fn sample(&self, snapshot: &Snapshot) {
        self.record(Instant::now(), unix_ms(), Readings::of(snapshot));
    }

    /// Add one tick's readings, taken at `at` (unix time `t` in ms): a point per
    /// series from the difference with the previous tick (none at the first),
    /// and the series of what is gone dropped.
    pub fn record(&self, at: Instant, t: u64, now: Readings) {
        let mut rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        let listeners: HashMap<String, Reading> = now.listeners.into_iter().collect();
        let targets: HashMap<(String, String), Reading> = now
            .groups
            .iter()
            .flat_map(|(g, ts)| ts.iter().map(move |(a, r)| ((g.clone(), a.clone()), *r)))
            .collect();
        let rings = &mut *rings;
        rings
            .listeners
            .retain(|name, _| listeners.contains_key(name));
        rings
            .groups
            .retain(|name, _| now.groups.iter().any(|(g, _)| g == name));
        rings.targets.retain(|group, series| {
            series.retain(|addr, _| targets.contains_key(&(group.clone(), addr.clone())));
            !series.is_empty()
        });
        if let Some(last) = &rings.last {
            let seconds = at.saturating_duration_since(last.at).as_secs_f64();
            for (name, reading) in &listeners {
                let earlier = last.listeners.get(name).copied().unwrap_or_default();
                let ring = rings.listeners.entry(name.clone()).or_default();
                push(ring, Point::new(t, &reading.since(&earlier), seconds));
            }
            for (group, members) in &now.groups {
                let mut sum = Reading::default();
                for (address, reading) in members {
                    let key = (group.clone(), address.clone());
                    let delta = reading.since(&last.targets.get(&key).copied().unwrap_or_default());
                    sum = sum.plus(&delta);
                    let series = rings.targets.entry(group.clone()).or_default();
                    push(
                        series.entry(address.clone()).or_default(),
                        Point::new(t, &delta, seconds),
                    );
                }
                let ring = rings.groups.entry(group.clone()).or_default();
                push(ring, Point::new(t, &sum, seconds));
            }
        }
        rings.last = Some(Last {
            at,
            listeners,
            targets,
        });
    }

    /// The series as `GET /api/v1/stats/history` gives them: only points after
    /// `since` (unix ms) when given.
    pub fn to_json(&self, since: Option<u64>) -> Value {
        let rings = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        let series = |ring: &VecDeque<Point>, listener: bool| series_json(ring, since, listener);
        let listeners: Map<String, Value> = rings
            .listeners
            .iter()
            .map(|(n, r)| (n.clone(), series(r, true)))
            .collect();
        let groups: Map<String, Value> = rings
            .groups
            .iter()
            .map(|(n, r)| (n.clone(), series(r, false)))
            .collect();
        let targets: Map<String, Value> = rings
            .targets
            .iter()
            .map(|(g, ts)| {
                let ts: Map<String, Value> = ts
                    .iter()
                    .map(|(a, r)| (a.clone(), series(r, false)))
                    .collect();
                (g.clone(), Value::Object(ts))
            })
            .collect();
        json!({
            "interval_s": self.interval.as_secs_f64(),
            "keep": KEEP,
            "listeners": listeners,
            "target_groups": groups,
            "targets": targets,
        })
    }
}

/// One series as columns (`t`, `rps`, ...), rates rounded to 0.001/s and
/// latencies to 0.001 ms; a latency is `null` for an interval without requests.
/// A listener's has its open connections, a group's or target's its failed
/// connections per second.
fn series_json(ring: &VecDeque<Point>, since: Option<u64>, listener: bool) -> Value {
    let points: Vec<&Point> = ring
        .iter()
        .filter(|p| since.is_none_or(|s| p.t > s))
        .collect();
    let round = |v: f64| (v * 1000.0).round() / 1000.0;
    let column = |f: fn(&Point) -> f64| points.iter().map(|p| round(f(p))).collect::<Vec<_>>();
    let latency =
        |f: fn(&Point) -> Option<f64>| points.iter().map(|p| f(p).map(round)).collect::<Vec<_>>();
    let mut out = json!({
        "t": points.iter().map(|p| p.t).collect::<Vec<_>>(),
        "rps": column(|p| p.rps),
        "r4xx": column(|p| p.r4xx),
        "r5xx": column(|p| p.r5xx),
        "p50_ms": latency(|p| p.p50_ms),
        "p90_ms": latency(|p| p.p90_ms),
        "p99_ms": latency(|p| p.p99_ms),
    });
    if listener {
        out["connections"] = json!(points.iter().map(|p| p.open).collect::<Vec<_>>());
    } else {
        out["conn_err"] = json!(column(|p| p.conn_err));
    }
    out
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sample `server`'s counters into `history` every interval, until aborted.
pub async fn sample(history: Arc<History>, server: Arc<ballast_proxy::Server>) {
    let mut tick = tokio::time::interval(history.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        history.sample(&server.snapshot());
    }
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    since: Option<String>,
}

/// `GET /api/v1/stats/history[?since=<unix ms>]`.
pub async fn get(
    State(state): State<AdminState>,
    _read: ReadAccess,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let since = match q.since.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "since must be a unix time in milliseconds, not {s:?}"
            ))
        })?),
    };
    Ok(Json(state.control.history().to_json(since)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_proxy::BUCKETS;

    fn reading(requests: u64, r5xx: u64) -> Reading {
        let mut latency = [0; BUCKETS.len() + 1];
        latency[3..].fill(requests); // all within 5 ms
        Reading {
            requests,
            r5xx,
            latency,
            ..Reading::default()
        }
    }

    fn tick(listener: u64, a: u64, b: Option<u64>) -> Readings {
        let mut targets = vec![("10.0.0.1:80".to_string(), reading(a, 0))];
        if let Some(b) = b {
            targets.push(("10.0.0.2:80".to_string(), reading(b, b)));
        }
        let open = Reading {
            open: 3,
            ..reading(listener, 0)
        };
        Readings {
            listeners: vec![("public".into(), open)],
            groups: vec![("web".into(), targets)],
        }
    }

    #[test]
    fn points_are_rates_over_the_interval_and_groups_sum_their_targets() {
        let h = History::new(INTERVAL);
        let start = Instant::now();
        h.record(start, 1_000, tick(0, 0, Some(0)));
        assert_eq!(
            h.to_json(None)["listeners"],
            json!({}),
            "no point from one reading"
        );
        h.record(
            start + Duration::from_secs(5),
            6_000,
            tick(50, 20, Some(30)),
        );
        let v = h.to_json(None);
        assert_eq!(v["listeners"]["public"]["t"], json!([6000]));
        assert_eq!(v["listeners"]["public"]["rps"], json!([10.0]));
        assert_eq!(v["target_groups"]["web"]["rps"], json!([10.0]));
        assert_eq!(v["target_groups"]["web"]["r5xx"], json!([6.0]));
        assert_eq!(v["targets"]["web"]["10.0.0.2:80"]["r5xx"], json!([6.0]));
        let p50 = v["target_groups"]["web"]["p50_ms"][0].as_f64().unwrap();
        assert!(p50 > 2.5 && p50 <= 5.0, "{p50}");
        assert!(v["listeners"]["public"].get("conn_err").is_none());
        assert_eq!(v["listeners"]["public"]["connections"], json!([3]));
    }

    #[test]
    fn removed_targets_are_dropped_and_since_filters() {
        let h = History::new(INTERVAL);
        let start = Instant::now();
        h.record(start, 1_000, tick(0, 0, Some(0)));
        h.record(start + Duration::from_secs(5), 6_000, tick(10, 10, Some(0)));
        // The second target leaves: its series goes, the group does not jump.
        h.record(start + Duration::from_secs(10), 11_000, tick(20, 15, None));
        let v = h.to_json(None);
        assert!(v["targets"]["web"].get("10.0.0.2:80").is_none());
        assert_eq!(v["target_groups"]["web"]["rps"], json!([2.0, 1.0]));
        let v = h.to_json(Some(6_000));
        assert_eq!(v["listeners"]["public"]["t"], json!([11000]));
        assert_eq!(v["listeners"]["public"]["rps"], json!([2.0]));
        // A group without targets left is dropped with its last target.
        h.record(start + Duration::from_secs(15), 16_000, Readings::default());
        assert_eq!(h.to_json(None)["targets"], json!({}));
        assert_eq!(h.to_json(None)["target_groups"], json!({}));
    }

    #[test]
    fn rings_keep_the_last_points_only() {
        let h = History::new(INTERVAL);
        let start = Instant::now();
        for i in 0..(KEEP as u64 + 10) {
            h.record(start + INTERVAL * i as u32, i * 5_000, tick(i, i, None));
        }
        let t = &h.to_json(None)["listeners"]["public"]["t"];
        assert_eq!(t.as_array().map(Vec::len), Some(KEEP));
        assert_eq!(t[KEEP - 1], json!((KEEP as u64 + 9) * 5_000));
    }
}

//! A target group's `load_shedding` (SPEC §13): the latency its targets should
//! keep, and the bounds of the adaptive concurrency limit that keeps it
//! (`ballast-proxy`'s `resilience/shedding.rs` is the controller). Model and
//! decoding, with every error at its path and position.
//!
//! Control path only.

use std::time::Duration;

use serde::Serialize;

use crate::decode::{self as d, Errors, Fields};
use crate::duration;
use crate::source::Node;

/// `load_shedding = { latency_target = "50ms" }`, with the controller's knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LoadShedding {
    /// The mean latency of the group's targets (admission to response head) the
    /// limit steers towards.
    #[serde(serialize_with = "duration::serialize")]
    pub latency_target: Duration,
    /// How often the limit is recomputed, from the latencies of that window.
    #[serde(serialize_with = "duration::serialize")]
    pub window: Duration,
    /// The limit never falls below this many requests in flight.
    pub min_limit: u32,
    /// Nor rises above this many; it also starts here, so turning shedding on
    /// sheds nothing until latency rises over the target.
    pub max_limit: u32,
}

impl LoadShedding {
    /// Ten decisions a second: at a few hundred requests a second a window
    /// holds dozens of samples, and a queue that starts to build is cut within
    /// a few windows (a halving at most per window).
    pub const DEFAULT_WINDOW: Duration = Duration::from_millis(100);
    /// Envoy's adaptive concurrency floor is 3; 4 keeps a target that is slow
    /// even unloaded serving a few requests at once rather than one.
    pub const DEFAULT_MIN_LIMIT: u32 = 4;
    /// Envoy's default `max_concurrency_limit`.
    pub const DEFAULT_MAX_LIMIT: u32 = 1000;
    pub const MAX: u32 = 100_000;
    const TARGET_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(60));
    const WINDOW_RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(10));
}

/// `load_shedding` of the group whose fields are `f`: `Some(None)` when omitted
/// (off), `None` when invalid (the errors are in `errs`).
pub fn decode(f: &mut Fields<'_>, errs: &mut Errors) -> Option<Option<LoadShedding>> {
    match f.optional("load_shedding") {
        None => Some(None),
        Some(n) => decode_one(n, &f.path("load_shedding"), errs).map(Some),
    }
}

fn decode_one(node: &Node, path: &str, errs: &mut Errors) -> Option<LoadShedding> {
    let mut f = Fields::new(node, path, errs)?;
    let latency_target = f.required("latency_target", errs).and_then(|n| {
        let (lo, hi) = LoadShedding::TARGET_RANGE;
        d::duration_in(n, &f.path("latency_target"), lo, hi, errs)
    });
    let window = match f.optional("window") {
        None => Some(LoadShedding::DEFAULT_WINDOW),
        Some(n) => {
            let (lo, hi) = LoadShedding::WINDOW_RANGE;
            d::duration_in(n, &f.path("window"), lo, hi, errs)
        }
    };
    let mut limit = |key: &'static str, default: u32, f: &mut Fields<'_>| match f.optional(key) {
        None => Some((default, None)),
        Some(n) => d::u32_in(n, &f.path(key), 1, LoadShedding::MAX, errs).map(|v| (v, Some(n.pos))),
    };
    let min = limit("min_limit", LoadShedding::DEFAULT_MIN_LIMIT, &mut f);
    let max = limit("max_limit", LoadShedding::DEFAULT_MAX_LIMIT, &mut f);
    let bounds = match (min, max) {
        (Some((lo, lo_node)), Some((hi, hi_node))) if lo > hi => {
            // Point at whichever of the two was written (min_limit when both were).
            let (key, at) = match (lo_node, hi_node) {
                (Some(pos), _) => ("min_limit", pos),
                (None, Some(pos)) => ("max_limit", pos),
                (None, None) => ("min_limit", node.pos),
            };
            errs.at(
                &f.path(key),
                at,
                format!("min_limit {lo} is above max_limit {hi}; the limit moves between the two"),
            );
            None
        }
        (Some((lo, _)), Some((hi, _))) => Some((lo, hi)),
        _ => None,
    };
    f.finish(errs);
    let (min_limit, max_limit) = bounds?;
    Some(LoadShedding {
        latency_target: latency_target?,
        window: window?,
        min_limit,
        max_limit,
    })
}

//! Anomaly mitigation (`anomaly_mitigation = "on"`, ALB's automatic target
//! weights): cut an anomalous target's weight step by step, give it back once it
//! recovers, and explain every decision.
//!
//! Control path, on the group's tick after detection (`anomaly.rs`), publishing
//! through `Target::set_mitigation_factor`, which the balancers read with one
//! load. Every algorithm honours it (they all pick by effective weight).
//!
//! - **Signal**: the detector's verdicts, this tick (with hysteresis for a target
//!   already cut: it stays anomalous until its error share is back under the
//!   threshold, so a trickle's small sample does not let it bounce).
//! - **Step**: at most every `STEP` (5 s, as ALB), a target judged anomalous has
//!   its mitigation factor halved; one that is no longer anomalous (or that cannot
//!   be judged for want of requests or peers: no evidence against it) gets it
//!   doubled back, up the same ladder (1/16 → 1/8 → 1/4 → 1/2 → 1), so at worst
//!   the way back is 4 steps, 20 s after the window (10 s) has forgotten the
//!   failures. Multiplicative both ways: a few steps cut a target to a trickle,
//!   and the first steps back are cheap if it turns out to be still failing.
//! - **Bounds**: never below `FLOOR` (1/16 of its weight): a trickle keeps
//!   reaching the target, so its recovery can be seen. Never more than `cap` =
//!   half the group's healthy targets mitigated at once, so the others can carry
//!   the load: an anomalous target the cap holds back keeps its weight, and the
//!   explanation says so (once, when the cap starts holding it). The worst
//!   targets are cut first. With the peers' median as the baseline, a majority
//!   failing alike is the group's normal and none of it is anomalous; the cap
//!   holds when the cut targets, at the floor, have too few requests to be
//!   anyone's peers (or leave `healthy`) and more targets start failing.
//! - **Modes**: `monitor` runs the same steps on would-be factors kept in the
//!   group's state and explains them, never touching a weight; `off` explains
//!   nothing (verdicts are still reported). Leaving `on` gives every cut back at
//!   once (`disabled`).
//!
//! Each change writes one `info` log line and one entry in the group's bounded
//! history (`registry.rs`): the time, the target, the signal (error share,
//! requests in the window), the peers' baseline and the threshold, the verdict,
//! the effective weight before and after, and why.

use std::time::{Duration, Instant, SystemTime};

use ballast_config::resilience::AnomalyMitigation;

use crate::observe::rfc3339;
use crate::resilience::anomaly::{self, Counters, Reading, MIN_REQUESTS, MIN_TARGETS, WINDOW};
use crate::resilience::registry::{Decision, GroupState, Why};
use crate::resilience::TICK;
use crate::upstream::target::Target;
use crate::upstream::target_group::TargetGroup;
use crate::upstream::verdict::VerdictView;

/// How often a factor may move.
pub const STEP: Duration = Duration::from_secs(5);
/// The lowest mitigation factor, in thousandths (1/16).
pub const FLOOR: u32 = Target::FULL / 16;

/// How many targets may be mitigated at once: half the healthy ones.
pub fn cap(healthy: usize) -> usize {
    healthy / 2
}

/// One step down: half, not below the floor.
pub fn down(factor: u32) -> u32 {
    (factor / 2).max(FLOOR)
}

/// One step up the ladder of halvings from full (62 → 125 → 250 → 500 → 1000).
pub fn up(factor: u32) -> u32 {
    let mut level = Target::FULL;
    while level / 2 > factor {
        level /= 2;
    }
    level
}

/// A factor that changes (or, for `Cap`, is held).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub index: usize,
    pub before: u32,
    pub after: u32,
    pub why: Why,
}

/// One mitigation step: the changes to `factors` (mitigation factors, in
/// thousandths) that `verdicts` call for in a group with `healthy` healthy
/// targets, by target index.
pub fn plan(factors: &[u32], verdicts: &[VerdictView], healthy: usize) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut mitigated = factors.iter().filter(|&&f| f < Target::FULL).count();
    let mut anomalous: Vec<usize> = (0..factors.len())
        .filter(|&i| verdicts.get(i).is_some_and(|v| v.anomalous))
        .collect();
    // The worst first: the cap holds back the least bad.
    anomalous.sort_by(|&a, &b| verdicts[b].error_rate.total_cmp(&verdicts[a].error_rate));
    for i in anomalous {
        let before = factors[i];
        if before >= Target::FULL {
            if mitigated >= cap(healthy) {
                let why = Why::Cap;
                changes.push(Change {
                    index: i,
                    before,
                    after: before,
                    why,
                });
                continue;
            }
            mitigated += 1;
        }
        if before > FLOOR {
            let after = down(before);
            let why = if after == FLOOR {
                Why::Floor
            } else {
                Why::StepDown
            };
            changes.push(Change {
                index: i,
                before,
                after,
                why,
            });
        }
    }
    for (i, &before) in factors.iter().enumerate() {
        let anomalous = verdicts.get(i).is_some_and(|v| v.anomalous);
        if !anomalous && before < Target::FULL {
            let after = up(before);
            let why = if after >= Target::FULL {
                Why::Recovered
            } else {
                Why::StepUp
            };
            changes.push(Change {
                index: i,
                before,
                after,
                why,
            });
        }
    }
    changes.sort_by_key(|c| c.index);
    changes
}

/// One tick of a group's anomaly controller: detect, publish the verdicts, and
/// when a step is due, mitigate (or, in `monitor`, say what it would do).
pub fn tick(group: &TargetGroup, state: &mut GroupState, now: Instant) {
    let mode = group.config.anomaly_mitigation;
    let readings: Vec<Reading> = group
        .targets
        .iter()
        .map(|t| {
            let window = state.windows.entry(t.addr).or_default();
            window.push(Counters::read(t));
            let cut = match mode {
                AnomalyMitigation::On => t.is_mitigated(),
                AnomalyMitigation::Monitor => state.monitor.contains_key(&t.addr),
                AnomalyMitigation::Off => false,
            };
            Reading {
                healthy: t.is_healthy(),
                window: window.sum(),
                cut,
            }
        })
        .collect();
    let present = |addr: &std::net::SocketAddr| group.targets.iter().any(|t| t.addr == *addr);
    state.windows.retain(|a, _| present(a));
    state.monitor.retain(|a, _| present(a));
    let verdicts = anomaly::judge(&readings);
    for (t, v) in group.targets.iter().zip(&verdicts) {
        t.anomaly.store(*v);
    }
    let healthy = readings.iter().filter(|r| r.healthy).count();

    if mode != AnomalyMitigation::On {
        for (index, (t, v)) in group.targets.iter().zip(&verdicts).enumerate() {
            let before = t.mitigation_factor();
            if before < Target::FULL {
                t.set_mitigation_factor(Target::FULL);
                let change = Change {
                    index,
                    before,
                    after: Target::FULL,
                    why: Why::Disabled,
                };
                let d = explain(group, t, mode, *v, healthy, change);
                state.record(d);
            }
        }
    }
    if mode == AnomalyMitigation::Off {
        state.monitor.clear();
        state.held.clear();
        return;
    }
    let due = state
        .last_step
        .is_none_or(|at| now.duration_since(at) + TICK / 2 >= STEP);
    if !due {
        return;
    }
    let factors: Vec<u32> = group
        .targets
        .iter()
        .map(|t| match mode {
            AnomalyMitigation::Monitor => *state.monitor.get(&t.addr).unwrap_or(&Target::FULL),
            _ => t.mitigation_factor(),
        })
        .collect();
    state.held.retain(|a| {
        group
            .targets
            .iter()
            .zip(&verdicts)
            .any(|(t, v)| t.addr == *a && v.anomalous)
    });
    let mut stepped = false;
    for change in plan(&factors, &verdicts, healthy) {
        let (Some(t), Some(v)) = (group.targets.get(change.index), verdicts.get(change.index))
        else {
            continue;
        };
        if change.why == Why::Cap {
            if !state.held.insert(t.addr) {
                continue; // already explained
            }
        } else {
            state.held.remove(&t.addr);
            stepped = true;
        }
        let d = explain(group, t, mode, *v, healthy, change);
        match mode {
            AnomalyMitigation::On => t.set_mitigation_factor(change.after),
            _ if change.after >= Target::FULL => {
                state.monitor.remove(&t.addr);
            }
            _ => {
                state.monitor.insert(t.addr, change.after);
            }
        }
        state.record(d);
    }
    if stepped {
        state.last_step = Some(now);
    }
}

/// The effective weight `t` has (or would have) with mitigation factor `m`.
fn effective(t: &Target, m: u32) -> f64 {
    let w = f64::from(t.weight()) * f64::from(t.slow_start_factor()) * f64::from(m) / 1e6;
    (w * 1000.0).round() / 1000.0
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// Build the explanation of one change and write its log line.
fn explain(
    group: &TargetGroup,
    t: &Target,
    mode: AnomalyMitigation,
    v: VerdictView,
    healthy: usize,
    c: Change,
) -> Decision {
    let mode_str = match mode {
        AnomalyMitigation::On => "on",
        AnomalyMitigation::Monitor => "monitor",
        AnomalyMitigation::Off => "off",
    };
    // `monitor` changes nothing, but for giving back a cut left from `on`.
    let applied = mode != AnomalyMitigation::Monitor || c.why == Why::Disabled;
    let before = effective(t, c.before);
    let after = effective(t, c.after);
    let threshold = anomaly::threshold(v.baseline);
    let window = WINDOW as u64 * TICK.as_secs();
    // A cut target is judged on any number of requests (hysteresis, `judge`).
    let signal = if v.requests > 0 && healthy >= MIN_TARGETS {
        format!(
            "error share {} over {} requests in {window} s against the peers' median {} (threshold {})",
            percent(v.error_rate),
            v.requests,
            percent(v.baseline),
            percent(threshold),
        )
    } else {
        format!(
            "no verdict: {} requests in {window} s and {healthy} healthy targets (needs {MIN_REQUESTS} and {MIN_TARGETS})",
            v.requests
        )
    };
    let verdict = if v.anomalous { "anomalous" } else { "normal" };
    let outcome = match c.why {
        Why::StepDown => format!("weight {before:.3} -> {after:.3} (halved)"),
        Why::Floor => format!("weight {before:.3} -> {after:.3}, the floor (1/16: a trickle shows recovery)"),
        Why::Cap => format!(
            "held at weight {before:.3}: half the group's {healthy} healthy targets are already mitigated (cap {})",
            cap(healthy)
        ),
        Why::StepUp => format!("weight {before:.3} -> {after:.3} (doubled)"),
        Why::Recovered => format!("weight {before:.3} -> {after:.3}, full weight again"),
        Why::Disabled => format!("anomaly_mitigation is {mode_str}: weight {before:.3} -> {after:.3} at once"),
    };
    let would = if applied {
        ""
    } else {
        " (monitor: would be, not applied)"
    };
    let explanation = format!("{signal}: {verdict}; {outcome}{would}");
    tracing::info!(
        target_group = %group.name(), target = %t.addr, mode = mode_str, why = c.why.as_str(),
        verdict, error_rate = v.error_rate, requests = v.requests, baseline = v.baseline,
        weight_before = before, weight_after = after,
        "anomaly mitigation: {explanation}"
    );
    Decision {
        time: rfc3339::millis(SystemTime::now()),
        target: t.addr.to_string(),
        mode: mode_str,
        applied,
        verdict,
        error_rate: v.error_rate,
        requests: v.requests,
        window_seconds: window,
        baseline: v.baseline,
        threshold,
        weight_before: before,
        weight_after: after,
        why: c.why,
        explanation,
    }
}

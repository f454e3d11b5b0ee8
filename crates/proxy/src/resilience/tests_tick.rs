//! The controller's tick on a real `TargetGroup` whose counters are fed by hand
//! (no socket): modes, the step clock, the cap's explanation, giving back a cut.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_config::Config;

use super::mitigation::{tick, FLOOR};
use super::registry::{GroupState, Why};
use crate::upstream::target::{Probe, Target};
use crate::upstream::target_group::TargetGroup;

/// A group of `n` healthy targets with `anomaly_mitigation = mode`.
fn group(mode: &str, n: usize) -> TargetGroup {
    let targets: Vec<String> = (1..=n)
        .map(|i| format!("{{ address = \"127.0.0.1:{i}\" }}"))
        .collect();
    let text = format!(
        "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n\
         [[target_groups]]\nname = \"web\"\nanomaly_mitigation = \"{mode}\"\ntargets = [{}]\n",
        targets.join(", ")
    );
    let config = Config::from_toml(&text).expect("valid config");
    let g = config.target_groups[0].clone();
    let targets = g
        .targets
        .iter()
        .map(|t| {
            let address = t.address.socket().expect("a literal address");
            let target = Target::new("web", address, t.weight, Duration::from_secs(1));
            target.record(Probe::Ok, 1, 1);
            Arc::new(target)
        })
        .collect();
    TargetGroup::new(g, targets)
}

/// One second of traffic: 20 requests per target, in proportion to its effective
/// weight (a target at the floor gets 1); the `bad` ones fail 30% of theirs
/// (rounded up).
fn second(g: &TargetGroup, bad: &[usize]) {
    for (i, t) in g.targets.iter().enumerate() {
        let n = 20 * t.factor() / Target::FULL;
        let failed = if bad.contains(&i) {
            (n * 3).div_ceil(10)
        } else {
            0
        };
        for k in 0..n {
            t.metrics.requests.inc(if k < failed { 500 } else { 200 });
        }
    }
}

/// Run `seconds` ticks, one a second from `start`.
fn run(g: &TargetGroup, state: &mut GroupState, start: Instant, seconds: u64, bad: &[usize]) {
    for s in 0..seconds {
        second(g, bad);
        tick(g, state, start + Duration::from_secs(s));
    }
}

#[test]
fn on_steps_every_5s_to_the_floor_and_explains_each_step() {
    let g = group("on", 5);
    let mut state = GroupState::default();
    let start = Instant::now();
    run(&g, &mut state, start, 30, &[2]);
    let bad = &g.targets[2];
    assert!(bad.anomaly.is_anomalous());
    assert_eq!(bad.mitigation_factor(), FLOOR);
    let h = state.history();
    let whys: Vec<Why> = h.iter().map(|d| d.why).collect();
    assert_eq!(
        whys,
        [Why::StepDown, Why::StepDown, Why::StepDown, Why::Floor]
    );
    assert!(h.iter().all(|d| d.applied && d.target == "127.0.0.1:3"));
    // Effective weights: 1 → 0.5 → 0.25 → 0.125 → 0.062.
    let weights: Vec<(f64, f64)> = h
        .iter()
        .map(|d| (d.weight_before, d.weight_after))
        .collect();
    assert_eq!(
        weights,
        [(1.0, 0.5), (0.5, 0.25), (0.25, 0.125), (0.125, 0.062)]
    );
    assert!(g
        .targets
        .iter()
        .enumerate()
        .all(|(i, t)| i == 2 || !t.is_mitigated()));
}

#[test]
fn monitor_never_touches_a_weight_and_giving_back_is_explained() {
    let g = group("monitor", 5);
    let mut state = GroupState::default();
    let start = Instant::now();
    run(&g, &mut state, start, 12, &[2]);
    assert!(g.targets.iter().all(|t| t.factor() == Target::FULL));
    let h = state.history();
    assert_eq!(h.len(), 3, "steps at 1, 6 and 11 s");
    assert!(h.iter().all(|d| !d.applied && d.mode == "monitor"));
    assert_eq!(h[2].weight_after, 0.125);

    // A cut left by `on` (a reload to monitor) is given back at once, applied.
    g.targets[0].set_mitigation_factor(250);
    run(&g, &mut state, start + Duration::from_secs(12), 1, &[2]);
    assert_eq!(g.targets[0].mitigation_factor(), Target::FULL);
    let last = state.history().pop().expect("a decision");
    assert_eq!((last.why, last.applied), (Why::Disabled, true));
}

#[test]
fn off_reports_the_verdict_and_explains_nothing() {
    let g = group("off", 5);
    let mut state = GroupState::default();
    run(&g, &mut state, Instant::now(), 12, &[2]);
    assert!(g.targets[2].anomaly.is_anomalous());
    assert!(!g.targets[2].is_mitigated());
    assert!(state.history().is_empty());
}

/// Two targets cut to the floor get too few requests to be anyone's peers; a
/// third that starts failing is then anomalous against the two good ones, but
/// half the five are already mitigated: it is held back, and that is explained
/// once.
#[test]
fn the_cap_is_explained_once_while_it_holds() {
    let g = group("on", 5);
    let mut state = GroupState::default();
    let start = Instant::now();
    run(&g, &mut state, start, 20, &[0, 1]);
    assert!(g.targets[..2]
        .iter()
        .all(|t| t.mitigation_factor() == FLOOR));
    run(
        &g,
        &mut state,
        start + Duration::from_secs(20),
        20,
        &[0, 1, 2],
    );
    assert!(g.targets[2].anomaly.is_anomalous());
    assert!(!g.targets[2].is_mitigated());
    let mitigated = g.targets.iter().filter(|t| t.is_mitigated()).count();
    assert_eq!(mitigated, 2);
    let caps: Vec<_> = state
        .history()
        .into_iter()
        .filter(|d| d.why == Why::Cap)
        .collect();
    assert_eq!(caps.len(), 1, "{caps:?}");
    assert_eq!(caps[0].target, "127.0.0.1:3");
    assert_eq!(caps[0].weight_before, caps[0].weight_after);
    assert!(
        caps[0].explanation.contains("cap 2"),
        "{}",
        caps[0].explanation
    );
}

#[test]
fn recovery_gives_the_weight_back_up_the_ladder() {
    let g = group("on", 5);
    let mut state = GroupState::default();
    let start = Instant::now();
    run(&g, &mut state, start, 25, &[2]);
    assert_eq!(g.targets[2].mitigation_factor(), FLOOR);
    // Healthy again: the window forgets in 10 s, then 4 steps of 5 s.
    run(&g, &mut state, start + Duration::from_secs(25), 35, &[]);
    assert_eq!(g.targets[2].mitigation_factor(), Target::FULL);
    let whys: Vec<Why> = state.history().iter().map(|d| d.why).collect();
    assert_eq!(
        &whys[whys.len() - 4..],
        [Why::StepUp, Why::StepUp, Why::StepUp, Why::Recovered]
    );
}

//! The detector's and the mitigation step's arithmetic, on synthetic counters.

use super::anomaly::{self, judge, median, threshold, wilson_lower, Counters, Reading, Window};
use super::mitigation::{self, cap, down, plan, up, Change, FLOOR};
use super::registry::Why;
use crate::upstream::target::Target;
use crate::upstream::verdict::VerdictView;

fn c(requests: u64, errors: u64) -> Counters {
    Counters { requests, errors }
}

/// A target not cut.
fn reading(healthy: bool, window: Counters) -> Reading {
    Reading {
        healthy,
        window,
        cut: false,
    }
}

fn healthy(counters: &[Counters]) -> Vec<Reading> {
    counters.iter().map(|&c| reading(true, c)).collect()
}

#[test]
fn the_window_slides_and_restarts_when_counters_go_back() {
    let mut w = Window::default();
    assert_eq!(w.sum(), c(0, 0));
    for tick in 0..=20u64 {
        w.push(c(tick * 10, tick));
    }
    // The last WINDOW ticks: 10 requests and 1 error each.
    assert_eq!(
        w.sum(),
        c(anomaly::WINDOW as u64 * 10, anomaly::WINDOW as u64)
    );
    w.push(c(5, 0)); // a new Target for the same address
    assert_eq!(w.sum(), c(0, 0));
    w.push(c(25, 1));
    assert_eq!(w.sum(), c(20, 1));
}

#[test]
fn the_figures_are_what_the_doc_says() {
    assert_eq!(median(vec![]), 0.0);
    assert_eq!(median(vec![0.3, 0.0, 0.1]), 0.1);
    assert_eq!(median(vec![0.3, 0.0, 0.0, 0.1]), 0.05);
    assert!((threshold(0.0) - 0.05).abs() < 1e-12);
    assert!((threshold(0.01) - 0.06).abs() < 1e-12);
    assert!(
        (threshold(0.2) - 0.4).abs() < 1e-12,
        "twice a high baseline"
    );
    // Against peers at 0%: 5 failures in 20 are anomalous, 4 are not.
    assert!(wilson_lower(5, 20) > threshold(0.0));
    assert!(wilson_lower(4, 20) < threshold(0.0));
    // With 100 requests against 1% it takes 15.
    assert!(wilson_lower(15, 100) > threshold(0.01));
    assert!(wilson_lower(14, 100) < threshold(0.01));
    // 30% is flagged from 20 requests on.
    let lower = wilson_lower(6, 20);
    assert!((0.08..0.09).contains(&lower), "{lower}");
    assert_eq!(wilson_lower(0, 0), 0.0);
}

#[test]
fn one_failing_target_among_five_is_anomalous_and_only_it() {
    let v = judge(&healthy(&[
        c(200, 1),
        c(200, 0),
        c(200, 60),
        c(200, 2),
        c(200, 0),
    ]));
    let anomalous: Vec<bool> = v.iter().map(|v| v.anomalous).collect();
    assert_eq!(anomalous, [false, false, true, false, false]);
    assert!((v[2].error_rate - 0.3).abs() < 1e-12);
    // Its peers' median: shares 0, 0, 0.005, 0.01.
    assert!((v[2].baseline - 0.0025).abs() < 1e-12);
    assert_eq!(v[2].requests, 200);
    // A good target's baseline is barely raised by the bad one: the median of
    // 0, 0.01, 0, 0.3 is 0.005 where the mean would be 0.0775.
    assert!((v[0].baseline - 0.005).abs() < 1e-12, "{}", v[0].baseline);
}

#[test]
fn no_verdict_without_volume_or_peers() {
    // Too few requests on the failing target.
    let v = judge(&healthy(&[c(100, 0), c(100, 0), c(19, 19)]));
    assert!(v.iter().all(|v| !v.anomalous));
    assert_eq!(v[2].error_rate, 1.0, "figures are still reported");
    // Only two healthy targets.
    let v = judge(&[
        reading(true, c(100, 0)),
        reading(true, c(100, 90)),
        reading(false, c(100, 0)),
    ]);
    assert!(v.iter().all(|v| !v.anomalous));
    // Three healthy, but one peer without volume: too few peers to compare.
    let v = judge(&healthy(&[c(100, 0), c(5, 0), c(100, 90)]));
    assert!(v.iter().all(|v| !v.anomalous));
    // An unhealthy target is neither judged nor a peer.
    let v = judge(&[
        reading(true, c(100, 0)),
        reading(true, c(100, 0)),
        reading(true, c(100, 90)),
        reading(false, c(100, 100)),
    ]);
    assert_eq!(
        v.iter().map(|v| v.anomalous).collect::<Vec<_>>(),
        [false, false, true, false]
    );
    assert_eq!(v[2].baseline, 0.0);
}

#[test]
fn a_fleet_wide_error_rate_flags_nobody() {
    let v = judge(&healthy(&[
        c(500, 100),
        c(500, 110),
        c(500, 140),
        c(500, 95),
    ]));
    assert!(v.iter().all(|v| !v.anomalous), "{v:?}");
    // Twice the peers' share and 5 points more is.
    let v = judge(&healthy(&[
        c(500, 100),
        c(500, 110),
        c(500, 260),
        c(500, 95),
    ]));
    assert!(v[2].anomalous);
}

/// A cut target keeps its verdict until its share is back under the threshold:
/// a trickle's small sample does not let it bounce.
#[test]
fn a_cut_target_stays_anomalous_until_its_share_is_back() {
    let group = |bad: Counters, cut: bool| {
        let mut r = healthy(&[c(400, 0), c(400, 0), c(400, 0), bad]);
        r[3].cut = cut;
        judge(&r)[3].anomalous
    };
    // 5 failures in 30: not enough evidence to cut, but no recovery either.
    assert!(!group(c(30, 5), false));
    assert!(group(c(30, 5), true));
    // 1 in 30 (3.3%) is under the threshold: recovered. So is no request at all.
    assert!(!group(c(30, 1), true));
    assert!(!group(c(0, 0), true));
    // A trickle of 3 requests, 1 failed, is still worse than the peers.
    assert!(group(c(3, 1), true));
}

/// A binomial draw: failures among `n` requests at share `p`.
fn failures(rng: &mut fastrand::Rng, n: u64, p: f64) -> u64 {
    (0..n).filter(|_| rng.f64() < p).count() as u64
}

/// Simulate `ticks` seconds of a group: per tick, target i gets `rates[i]`
/// requests of which a share `shares[i]` fail; returns each tick's verdicts.
fn simulate(seed: u64, ticks: usize, rates: &[u64], shares: &[f64]) -> Vec<Vec<VerdictView>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut totals = vec![c(0, 0); rates.len()];
    let mut windows: Vec<Window> = rates.iter().map(|_| Window::default()).collect();
    (0..ticks)
        .map(|_| {
            let readings: Vec<Reading> = (0..rates.len())
                .map(|i| {
                    totals[i].requests += rates[i];
                    totals[i].errors += failures(&mut rng, rates[i], shares[i]);
                    windows[i].push(totals[i]);
                    reading(true, windows[i].sum())
                })
                .collect();
            judge(&readings)
        })
        .collect()
}

/// The "no false verdicts": every target at 1% for 2 minutes, at low,
/// medium and high volume, over several seeds: never anomalous.
#[test]
fn equal_targets_at_one_percent_for_two_minutes_are_never_anomalous() {
    for seed in 0..10 {
        for rate in [2, 3, 5, 20, 100] {
            let verdicts = simulate(seed, 120, &[rate; 5], &[0.01; 5]);
            for (tick, v) in verdicts.iter().enumerate() {
                assert!(
                    v.iter().all(|v| !v.anomalous),
                    "seed {seed}, {rate}/s, tick {tick}: {v:?}"
                );
            }
        }
    }
}

/// A target failing 30% among four at 1% is found within a few seconds, at
/// 10 requests a second per target, and stays found.
#[test]
fn a_gray_failure_is_found_within_seconds() {
    for seed in 0..10 {
        let verdicts = simulate(seed, 30, &[10; 5], &[0.01, 0.01, 0.3, 0.01, 0.01]);
        let first = verdicts.iter().position(|v| v[2].anomalous);
        assert!(first.is_some_and(|t| t <= 5), "seed {seed}: {first:?}");
        assert!(verdicts[10..].iter().all(|v| v[2].anomalous), "seed {seed}");
        assert!(verdicts
            .iter()
            .all(|v| !v[0].anomalous && !v[1].anomalous && !v[3].anomalous));
    }
}

fn verdict(anomalous: bool, error_rate: f64) -> VerdictView {
    VerdictView {
        anomalous,
        error_rate,
        baseline: 0.0,
        requests: 100,
    }
}

#[test]
fn the_ladder_goes_down_by_halves_to_the_floor_and_back_up() {
    assert_eq!(FLOOR, 62);
    let mut f = Target::FULL;
    let mut downs = vec![f];
    while f > FLOOR {
        f = down(f);
        downs.push(f);
    }
    assert_eq!(downs, [1000, 500, 250, 125, 62]);
    let mut ups = vec![f];
    while f < Target::FULL {
        f = up(f);
        ups.push(f);
    }
    assert_eq!(
        ups,
        [62, 125, 250, 500, 1000],
        "4 steps (20 s) back from the floor"
    );
    assert_eq!(down(FLOOR), FLOOR);
    assert_eq!(cap(5), 2);
    assert_eq!(cap(3), 1);
}

#[test]
fn a_step_cuts_the_anomalous_and_gives_back_to_the_recovered() {
    let factors = [1000, 250, 1000, FLOOR, 125];
    let verdicts = [
        verdict(true, 0.3),
        verdict(true, 0.3),
        verdict(false, 0.0),
        verdict(true, 0.3),
        verdict(false, 0.0),
    ];
    // Ten healthy targets: a cap of 5, not reached.
    let changes = plan(&factors, &verdicts, 10);
    let ch = |index, before, after, why| Change {
        index,
        before,
        after,
        why,
    };
    assert_eq!(
        changes,
        [
            ch(0, 1000, 500, Why::StepDown),
            ch(1, 250, 125, Why::StepDown),
            ch(4, 125, 250, Why::StepUp),
        ],
        "the target at the floor stays there without a change"
    );
    let changes = plan(&[125, 500], &[verdict(true, 0.3), verdict(false, 0.0)], 4);
    assert_eq!(
        changes,
        [
            ch(0, 125, FLOOR, Why::Floor),
            ch(1, 500, 1000, Why::Recovered)
        ]
    );
}

#[test]
fn the_cap_holds_back_the_least_bad_and_says_so() {
    // Five healthy targets, three anomalous: at most two mitigated at once.
    let factors = [1000; 5];
    let verdicts = [
        verdict(true, 0.2),
        verdict(false, 0.0),
        verdict(true, 0.5),
        verdict(true, 0.3),
        verdict(false, 0.0),
    ];
    let changes = plan(&factors, &verdicts, 5);
    let whys: Vec<(usize, Why)> = changes.iter().map(|c| (c.index, c.why)).collect();
    assert_eq!(
        whys,
        [(0, Why::Cap), (2, Why::StepDown), (3, Why::StepDown)]
    );
    assert_eq!(changes[0].before, changes[0].after, "held: unchanged");
    // Already mitigated targets keep stepping while the cap is reached.
    let changes = plan(&[500, 1000, 500, 1000, 1000], &verdicts, 5);
    let whys: Vec<(usize, Why)> = changes.iter().map(|c| (c.index, c.why)).collect();
    assert_eq!(
        whys,
        [(0, Why::StepDown), (2, Why::StepDown), (3, Why::Cap)]
    );
    // Three healthy targets: one at a time.
    let changes = plan(
        &[1000; 3],
        &[verdict(true, 0.3), verdict(true, 0.4), verdict(false, 0.0)],
        3,
    );
    let whys: Vec<(usize, Why)> = changes.iter().map(|c| (c.index, c.why)).collect();
    assert_eq!(whys, [(0, Why::Cap), (1, Why::StepDown)]);
}

/// From the start of a 30% failure to the floor and, once it ends, back to full,
/// step by step as the controller would run it (one step per `STEP`).
#[test]
fn detection_and_mitigation_end_to_end_on_synthetic_counters() {
    let steps = (mitigation::STEP.as_secs() / super::TICK.as_secs()) as usize;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut totals = [c(0, 0); 5];
    let mut windows: Vec<Window> = (0..5).map(|_| Window::default()).collect();
    let mut factors = [Target::FULL; 5];
    let mut share = 0.3;
    let mut at_floor = None;
    let mut full_again = None;
    let mut bounced = false;
    for tick in 0..120 {
        if tick == 40 {
            share = 0.0; // the target recovers
        }
        // 200 requests a second, split by effective weight.
        let sum: u32 = factors.iter().sum();
        let readings: Vec<Reading> = (0..5)
            .map(|i| {
                let n = u64::from(200 * factors[i] / sum);
                let p = if i == 2 { share } else { 0.0 };
                totals[i].requests += n;
                totals[i].errors += failures(&mut rng, n, p);
                windows[i].push(totals[i]);
                Reading {
                    healthy: true,
                    window: windows[i].sum(),
                    cut: factors[i] < Target::FULL,
                }
            })
            .collect();
        let verdicts = judge(&readings);
        if tick % steps == 0 {
            for change in plan(&factors, &verdicts, 5) {
                factors[change.index] = change.after;
            }
        }
        if factors[2] == FLOOR && at_floor.is_none() {
            at_floor = Some(tick);
        }
        bounced |= at_floor.is_some() && tick < 40 && factors[2] != FLOOR;
        if tick > 40 && factors[2] == Target::FULL && full_again.is_none() {
            full_again = Some(tick);
        }
        assert!(factors
            .iter()
            .enumerate()
            .all(|(i, &f)| i == 2 || f == Target::FULL));
    }
    assert!(at_floor.is_some_and(|t| t <= 25), "{at_floor:?}");
    assert!(!bounced, "at the floor, a failing target stays there");
    // Back within 60 s of the recovery: the window forgets, then 4 steps.
    assert!(full_again.is_some_and(|t| t <= 40 + 60), "{full_again:?}");
}

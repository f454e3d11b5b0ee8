//! Unit tests of `target.rs`: the state machine, its history and the overlays.

use super::*;

fn target() -> Target {
    Target::new(
        "g",
        "127.0.0.1:1".parse().expect("addr"),
        1,
        Duration::from_secs(1),
    )
}

#[test]
fn initial_becomes_healthy_after_one_success() {
    let t = target();
    assert_eq!(t.record(Probe::Ok, 3, 2), Some(HealthState::Healthy));
}

#[test]
fn unhealthy_needs_thresholds_both_ways() {
    let t = target();
    t.record(Probe::Ok, 3, 2);
    assert_eq!(t.record(Probe::Failed(HealthReason::Timeout), 3, 2), None);
    assert_eq!(
        t.record(Probe::Failed(HealthReason::Timeout), 3, 2),
        Some(HealthState::Unhealthy)
    );
    assert_eq!(t.health().1, HealthReason::Timeout);
    assert_eq!(t.record(Probe::Ok, 3, 2), None);
    assert_eq!(t.record(Probe::Ok, 3, 2), None);
    assert_eq!(t.record(Probe::Ok, 3, 2), Some(HealthState::Healthy));
}

#[test]
fn connect_failure_is_immediate_and_resets_successes() {
    let t = target();
    t.record(Probe::Ok, 2, 2);
    assert_eq!(t.mark_connect_failed(), Some(HealthState::Unhealthy));
    assert_eq!(t.health().1, HealthReason::ConnectionFailed);
    assert_eq!(t.record(Probe::Ok, 2, 2), None);
    assert_eq!(t.record(Probe::Ok, 2, 2), Some(HealthState::Healthy));
}

#[test]
fn draining_is_not_moved_by_probes() {
    let t = target();
    t.set_state(
        HealthState::Draining,
        HealthReason::DeregistrationInProgress,
    );
    assert_eq!(t.record(Probe::Ok, 1, 1), None);
    assert_eq!(t.mark_connect_failed(), None);
    assert_eq!(t.state(), HealthState::Draining);
}

/// Every state change lands in the history once, with its reason; an
/// unused target ignores probes and starts over at `initial` when used.
#[test]
fn state_changes_are_recorded_once_each() {
    let t = target();
    t.set_unused();
    t.set_unused();
    assert_eq!(
        t.record(Probe::Ok, 1, 1),
        None,
        "an unused target is not moved"
    );
    t.set_used();
    assert_eq!(t.record(Probe::Ok, 1, 1), Some(HealthState::Healthy));
    assert_eq!(t.record(Probe::Ok, 1, 1), None);
    assert_eq!(t.mark_connect_failed(), Some(HealthState::Unhealthy));
    let seen: Vec<_> = t
        .history
        .transitions()
        .iter()
        .map(|tr| (tr.from.as_str(), tr.to.as_str(), tr.reason))
        .collect();
    assert_eq!(
        seen,
        [
            ("initial", "unused", "Target.NotInUse"),
            ("unused", "initial", "Elb.InitialHealthChecking"),
            ("initial", "healthy", "Target.HealthChecksPassed"),
            ("healthy", "unhealthy", "Target.ConnectionFailed"),
        ]
    );
}

/// The overlays multiply, never cut to zero, and leaving healthy ends a ramp.
#[test]
fn overlays_shape_the_effective_weight() {
    let t = Target::new(
        "g",
        "127.0.0.1:1".parse().expect("addr"),
        4,
        Duration::from_secs(1),
    );
    assert_eq!(t.effective_weight(), 4 * u64::from(Target::FULL));
    t.set_mitigation_factor(250);
    t.set_slow_start_factor(500);
    assert_eq!(t.factor(), 125);
    assert_eq!(t.effective_weight(), 4 * 125);
    t.set_mitigation_factor(1);
    t.set_slow_start_factor(1);
    assert_eq!(t.factor(), 1, "a trickle is kept");
    t.set_mitigation_factor(Target::FULL);

    assert_eq!(t.record(Probe::Ok, 1, 1), Some(HealthState::Healthy));
    t.start_ramp();
    assert!(t.ramp_elapsed().is_some());
    assert_eq!(t.slow_start_factor(), Target::RAMP_FLOOR);
    assert_eq!(t.mark_connect_failed(), Some(HealthState::Unhealthy));
    assert!(
        t.ramp_elapsed().is_none(),
        "leaving healthy leaves slow start"
    );
    assert_eq!(t.factor(), Target::FULL);
}

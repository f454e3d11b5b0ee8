//! Slow start (ALB's): a target that becomes healthy while its group already has
//! healthy targets gets its effective weight ramped up linearly over `slow_start`,
//! instead of its full share at once, so that a cold cache or JIT is warmed by a
//! trickle.
//!
//! Control path. Signal: the health checker starting a ramp when it moves a target
//! to healthy beside healthy peers (`upstream/health.rs`; the first healthy target
//! of a group takes its full share at once). Step: every `TICK`, the factor is the
//! share of the ramp elapsed, at least `FLOOR` (5%), so halfway through the target
//! gets half its fair share. A target that leaves healthy leaves the ramp
//! (`Target::transition`). With `slow_start = "0s"` nothing ramps.

use std::time::Duration;

use crate::upstream::target::Target;
use crate::upstream::target_group::TargetGroup;

/// Where a ramp starts, in thousandths of the configured weight.
pub const FLOOR: u32 = Target::RAMP_FLOOR;

/// Move every ramping target of the group along its ramp.
pub fn step(group: &TargetGroup) {
    let ramp = group.config.slow_start;
    for target in &group.targets {
        let Some(elapsed) = target.ramp_elapsed() else {
            continue;
        };
        match factor(elapsed, ramp) {
            None => {
                target.end_ramp();
                tracing::info!(
                    target_group = %group.name(), target = %target.addr,
                    "slow start done: full weight"
                );
            }
            Some(f) => target.set_slow_start_factor(f),
        }
    }
}

/// The slow-start factor `elapsed` into a ramp of length `ramp`, in thousandths;
/// `None` once the ramp is over (or slow start is off).
pub fn factor(elapsed: Duration, ramp: Duration) -> Option<u32> {
    if ramp.is_zero() || elapsed >= ramp {
        return None;
    }
    let share = elapsed.as_millis() * u128::from(Target::FULL) / ramp.as_millis();
    Some((share as u32).max(FLOOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_is_linear_from_the_floor() {
        let ramp = Duration::from_secs(30);
        assert_eq!(factor(Duration::ZERO, ramp), Some(FLOOR));
        assert_eq!(factor(Duration::from_secs(15), ramp), Some(500));
        assert_eq!(factor(Duration::from_secs(27), ramp), Some(900));
        assert_eq!(factor(Duration::from_secs(30), ramp), None);
        assert_eq!(factor(Duration::from_secs(5), Duration::ZERO), None);
    }
}

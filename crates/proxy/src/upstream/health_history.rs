//! What the admin API shows of a target's health beyond its state: the last
//! health check (when, the status seen, how long it took, pass or fail, what
//! broke) and the last `MAX_TRANSITIONS` state changes, newest last.
//!
//! Control path. The health checker writes the last check once per probe and a
//! state change writes a transition; the admin API reads both. Neither is on a
//! request's way: the one data-path writer is a connect failure that marks a
//! target down (`mark_connect_failed`), which is rare and already logs. So one
//! small `Mutex` per target is enough; it is never shared by all workers on the
//! common path. The ring is bounded, so a flapping target costs a fixed amount.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::upstream::target::HealthState;

/// How many state changes a target keeps.
pub const MAX_TRANSITIONS: usize = 16;

/// One health check as it went.
#[derive(Clone, Debug, PartialEq)]
pub struct LastCheck {
    pub at: SystemTime,
    /// The HTTP status the target answered; `None` for a connection failure, a
    /// timeout or a gRPC check.
    pub status: Option<u16>,
    pub duration: Duration,
    pub pass: bool,
    /// What failed, in a few words; `None` when the check passed.
    pub error: Option<String>,
}

/// One change of health state.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub at: SystemTime,
    pub from: HealthState,
    pub to: HealthState,
    /// The new state's reason code, or what made a target healthy.
    pub reason: &'static str,
}

#[derive(Default)]
struct Inner {
    last: Option<LastCheck>,
    transitions: VecDeque<Transition>,
}

/// A target's last check and recent transitions.
#[derive(Default)]
pub struct HealthHistory(Mutex<Inner>);

impl HealthHistory {
    pub fn checked(&self, check: LastCheck) {
        if let Ok(mut inner) = self.0.lock() {
            inner.last = Some(check);
        }
    }

    pub fn changed(&self, from: HealthState, to: HealthState, reason: &'static str) {
        if let Ok(mut inner) = self.0.lock() {
            if inner.transitions.len() == MAX_TRANSITIONS {
                inner.transitions.pop_front();
            }
            inner.transitions.push_back(Transition {
                at: SystemTime::now(),
                from,
                to,
                reason,
            });
        }
    }

    pub fn last_check(&self) -> Option<LastCheck> {
        self.0.lock().ok().and_then(|inner| inner.last.clone())
    }

    /// Oldest first.
    pub fn transitions(&self) -> Vec<Transition> {
        self.0
            .lock()
            .map(|inner| inner.transitions.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_transitions_last() {
        let h = HealthHistory::default();
        for i in 0..MAX_TRANSITIONS + 4 {
            let (from, to) = if i % 2 == 0 {
                (HealthState::Healthy, HealthState::Unhealthy)
            } else {
                (HealthState::Unhealthy, HealthState::Healthy)
            };
            h.changed(from, to, if i % 2 == 0 { "down" } else { "up" });
        }
        let t = h.transitions();
        assert_eq!(t.len(), MAX_TRANSITIONS);
        // 20 changes: the last (index 19) was odd, "up".
        assert_eq!(t.last().map(|t| t.reason), Some("up"));
        assert!(t.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn the_last_check_replaces_the_one_before() {
        let h = HealthHistory::default();
        assert_eq!(h.last_check(), None);
        let check = |status, pass| LastCheck {
            at: SystemTime::now(),
            status,
            duration: Duration::from_millis(3),
            pass,
            error: None,
        };
        h.checked(check(Some(503), false));
        h.checked(check(Some(200), true));
        let last = h.last_check().expect("a check");
        assert_eq!((last.status, last.pass), (Some(200), true));
    }
}

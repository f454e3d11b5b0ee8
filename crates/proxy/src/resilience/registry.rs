//! What a group's anomaly controller remembers across ticks and reloads: the
//! sliding windows of its targets' counters, the would-be factors of `monitor`,
//! and the bounded history of its decisions (`GET .../anomalies`).
//!
//! Control path only. The `Server` owns one `Registry` for its lifetime and hands
//! each group's state to the group's control task at every snapshot
//! (`resilience::spawn`), so a reload — which aborts the tasks and starts new
//! ones — keeps the windows and the history. Each group's state is behind its own
//! `std::sync::Mutex`, held for one tick's arithmetic (no await inside) or one API
//! read; the data path never takes it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

use crate::resilience::anomaly::Window;

/// Decisions kept per group (the oldest go first).
pub const HISTORY: usize = 256;

/// Why a factor changed (or, in `monitor`, would have).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// Anomalous: the weight was cut by one step.
    StepDown,
    /// Anomalous: the cut reached the floor, where it stays while anomalous.
    Floor,
    /// Anomalous, but half the group is already mitigated: held back, unchanged.
    Cap,
    /// No longer anomalous: one step of the weight given back.
    StepUp,
    /// No longer anomalous: full weight again.
    Recovered,
    /// Mitigation was turned `off` or to `monitor`: full weight at once.
    Disabled,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::StepDown => "step_down",
            Why::Floor => "floor",
            Why::Cap => "cap",
            Why::StepUp => "step_up",
            Why::Recovered => "recovered",
            Why::Disabled => "disabled",
        }
    }
}

/// One decision, as the log line and the API show it.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    pub target: String,
    /// `anomaly_mitigation` when decided: `on` (applied) or `monitor` (not).
    pub mode: &'static str,
    pub applied: bool,
    /// The verdict behind it: `anomalous` or `normal`.
    pub verdict: &'static str,
    /// The signal: the target's error share and requests over the window.
    pub error_rate: f64,
    pub requests: u64,
    pub window_seconds: u64,
    /// The peers' median error share, and the share the target had to exceed.
    pub baseline: f64,
    pub threshold: f64,
    /// Effective weights (configured × slow start × mitigation).
    pub weight_before: f64,
    pub weight_after: f64,
    pub why: Why,
    /// The same in one sentence.
    pub explanation: String,
}

/// One group's controller state.
#[derive(Default)]
pub struct GroupState {
    pub windows: HashMap<SocketAddr, Window>,
    /// `monitor`'s would-be mitigation factors (absent: full).
    pub monitor: HashMap<SocketAddr, u32>,
    /// Targets the cap holds back now (explained once, when it starts).
    pub held: HashSet<SocketAddr>,
    /// When the last mitigation step changed something.
    pub last_step: Option<Instant>,
    history: VecDeque<Decision>,
}

impl GroupState {
    pub fn record(&mut self, d: Decision) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(d);
    }

    /// The decisions kept, oldest first.
    pub fn history(&self) -> Vec<Decision> {
        self.history.iter().cloned().collect()
    }
}

pub type SharedState = Arc<Mutex<GroupState>>;

/// Lock a group's state; a panicked tick leaves state that is still consistent
/// enough to report, so poisoning is ignored.
pub fn lock(state: &Mutex<GroupState>) -> MutexGuard<'_, GroupState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every group's state, by group name.
#[derive(Default)]
pub struct Registry {
    groups: Mutex<HashMap<String, SharedState>>,
}

impl Registry {
    fn groups(&self) -> MutexGuard<'_, HashMap<String, SharedState>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state of group `name`, created empty on first use.
    pub fn group(&self, name: &str) -> SharedState {
        self.groups().entry(name.to_string()).or_default().clone()
    }

    /// The decision history of group `name` (empty if it has none).
    pub fn history(&self, name: &str) -> Vec<Decision> {
        let state = self.groups().get(name).cloned();
        state.map_or_else(Vec::new, |s| lock(&s).history())
    }

    /// Forget the groups that are gone from the config.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.groups().retain(|name, _| keep(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(n: usize) -> Decision {
        Decision {
            time: String::new(),
            target: n.to_string(),
            mode: "on",
            applied: true,
            verdict: "anomalous",
            error_rate: 0.3,
            requests: 100,
            window_seconds: 10,
            baseline: 0.0,
            threshold: 0.05,
            weight_before: 1.0,
            weight_after: 0.5,
            why: Why::StepDown,
            explanation: String::new(),
        }
    }

    #[test]
    fn the_history_is_bounded_and_newest_last() {
        let registry = Registry::default();
        let state = registry.group("web");
        for n in 0..HISTORY + 10 {
            lock(&state).record(decision(n));
        }
        let h = registry.history("web");
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h[0].target, "10");
        assert_eq!(h[HISTORY - 1].target, (HISTORY + 9).to_string());
        // The same state is handed out again (a reload keeps it).
        assert!(Arc::ptr_eq(&state, &registry.group("web")));
        registry.retain(|name| name != "web");
        assert!(registry.history("web").is_empty());
    }
}

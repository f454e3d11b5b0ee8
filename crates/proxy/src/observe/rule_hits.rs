//! How many requests each rule of a listener chose, and its default action:
//! `ballast_rule_hits_total{listener,rule}` and the listeners API's `hits`.
//!
//! Data path for counting, control path for reading. Every request of every
//! listener counts one hit, so the cell must not be one atomic that all workers
//! write (its cache line would bounce between cores on each request). Each
//! worker has its own cache-line-aligned row of cells, one per rule plus one for
//! the default action, and a hit is one relaxed add on the worker's own row; a
//! scrape sums the rows. A listener's cells are rebuilt with its routes on each
//! reload, and take over the totals of the rules (by priority) and default
//! action of the cells they replace, so a counter never goes back.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::observe::exposition::{family, sample};

/// Cells per cache line.
const PER_LINE: usize = 8;

#[repr(align(64))]
#[derive(Default)]
struct Line([AtomicU64; PER_LINE]);

pub struct RuleHits {
    /// The rules' priorities in the router's order; the default action's slot
    /// follows them.
    priorities: Box<[u32]>,
    /// Lines per worker row.
    row: usize,
    workers: usize,
    lines: Box<[Line]>,
}

impl RuleHits {
    /// Cells for rules with these priorities (in the router's order) and a
    /// default action, one row per worker; carrying `previous`'s totals over.
    pub fn new(priorities: Vec<u32>, previous: Option<&RuleHits>) -> Self {
        let workers = crate::runtime::count();
        let row = (priorities.len() + 1).div_ceil(PER_LINE);
        let hits = RuleHits {
            priorities: priorities.into(),
            row,
            workers,
            lines: (0..row * workers).map(|_| Line::default()).collect(),
        };
        if let Some(previous) = previous {
            for (slot, &priority) in hits.priorities.iter().enumerate() {
                hits.add(0, slot, previous.rule(priority));
            }
            hits.add(0, hits.priorities.len(), previous.default_hits());
        }
        hits
    }

    fn add(&self, worker: usize, slot: usize, n: u64) {
        let line = worker * self.row + slot / PER_LINE;
        if let Some(line) = self.lines.get(line) {
            line.0[slot % PER_LINE].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Count a request that rule `index` (in the router's order) chose.
    #[inline]
    pub fn rule_hit(&self, index: usize) {
        self.add(crate::runtime::current() % self.workers, index, 1);
    }

    /// Count a request the default action took.
    #[inline]
    pub fn default_hit(&self) {
        self.rule_hit(self.priorities.len());
    }

    fn total(&self, slot: usize) -> u64 {
        (0..self.workers)
            .filter_map(|w| self.lines.get(w * self.row + slot / PER_LINE))
            .map(|line| line.0[slot % PER_LINE].load(Ordering::Relaxed))
            .sum()
    }

    /// Hits of the rule with this priority (0 when there is none).
    pub fn rule(&self, priority: u32) -> u64 {
        self.priorities
            .iter()
            .position(|&p| p == priority)
            .map_or(0, |slot| self.total(slot))
    }

    pub fn default_hits(&self) -> u64 {
        self.total(self.priorities.len())
    }

    /// `(priority, hits)` of every rule, in priority order.
    pub fn rules(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.priorities
            .iter()
            .enumerate()
            .map(|(slot, &p)| (p, self.total(slot)))
    }
}

/// `ballast_rule_hits_total{listener,rule}`; `rule` is the priority or `default`.
pub fn render(out: &mut String, listeners: &[(&str, &RuleHits)]) {
    family(
        out,
        "ballast_rule_hits_total",
        "counter",
        "Requests each listener rule (by priority) or the default action chose.",
    );
    for (listener, hits) in listeners {
        for (priority, n) in hits.rules() {
            let rule = priority.to_string();
            sample(
                out,
                "ballast_rule_hits_total",
                &[("listener", listener), ("rule", &rule)],
                n,
            );
        }
        sample(
            out,
            "ballast_rule_hits_total",
            &[("listener", listener), ("rule", "default")],
            hits.default_hits(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_count_per_rule_and_carry_over_by_priority() {
        let hits = RuleHits::new((1..=10).collect(), None);
        hits.rule_hit(0);
        hits.rule_hit(9);
        hits.rule_hit(9);
        hits.default_hit();
        assert_eq!(hits.rule(1), 1);
        assert_eq!(hits.rule(10), 2);
        assert_eq!(hits.rule(11), 0);
        assert_eq!(hits.default_hits(), 1);

        // Rule 1 is gone, rule 10 stays, 20 is new.
        let next = RuleHits::new(vec![10, 20], Some(&hits));
        next.rule_hit(1);
        assert_eq!(next.rules().collect::<Vec<_>>(), vec![(10, 2), (20, 1)]);
        assert_eq!(next.default_hits(), 1);

        let mut out = String::new();
        render(&mut out, &[("public", &next)]);
        assert!(out.contains("ballast_rule_hits_total{listener=\"public\",rule=\"10\"} 2\n"));
        assert!(out.contains("ballast_rule_hits_total{listener=\"public\",rule=\"default\"} 1\n"));
    }
}

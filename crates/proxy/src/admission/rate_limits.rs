//! The rate limits of a snapshot: each named limit built once (its key, its
//! counter, its seed), the lists attached to listeners and rules, the check a
//! request goes through, and the answer over a limit (429 with `Retry-After`,
//! `RateLimit-Policy` and `RateLimit`).
//!
//! Data path for [`check`]; the control path builds a [`RateLimits`] with each
//! snapshot. A limit whose definition did not change is the same `Arc` in the new
//! snapshot, table and counters included: a reload (SIGHUP, the admin API) does
//! not hand every client a full bucket again. A changed definition starts afresh.
//!
//! A request goes through the listener's limits, then the matched rule's, each in
//! the order listed, and stops at the first that refuses it; the limits before it
//! have counted the request. Over a limit, the response names that limit in the
//! headers of draft-ietf-httpapi-ratelimit-headers-12 (Structured Fields):
//! `RateLimit-Policy: "per-ip";q=100;w=1` (the configured rate: `q` requests per
//! `w` seconds) and `RateLimit: "per-ip";r=0;t=3` (none left, `t` seconds until
//! one is), with `Retry-After: 3` (RFC 9110) for clients that read only that.
//! Seconds are whole and rounded up, so a client that waits them is admitted.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_config::limits::RateLimitConfig;
use ballast_config::Config;
use http::{HeaderMap, HeaderValue};

use crate::admission::rate_key::{Facts, KeySpec};
use crate::admission::rate_limit::{self, Counter, Gcra, Table, Take};
use crate::observe::exposition::{family, sample};

/// One named limit.
pub struct RateLimiter {
    pub config: RateLimitConfig,
    key: KeySpec,
    seed: RandomState,
    counter: Box<dyn Counter>,
    limited: AtomicU64,
}

impl RateLimiter {
    pub fn new(config: &RateLimitConfig) -> RateLimiter {
        let gcra = Gcra::new(config.rate.interval(), config.burst);
        RateLimiter {
            key: KeySpec::new(&config.key),
            seed: RandomState::new(),
            counter: Box::new(Table::new(gcra, config.max_keys)),
            limited: AtomicU64::new(0),
            config: config.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Count a request; `Err` with how long until one would be admitted.
    fn take(&self, facts: &Facts<'_>, now: u64) -> Result<(), Duration> {
        let Some(key) = self.key.hash(&self.seed, facts) else {
            return Ok(());
        };
        match self.counter.take(key, now) {
            Take::Admitted { .. } => Ok(()),
            Take::Limited { wait } => {
                self.limited.fetch_add(1, Ordering::Relaxed);
                Err(wait)
            }
        }
    }
}

/// The limits of one snapshot, by name.
#[derive(Default)]
pub struct RateLimits(HashMap<String, Arc<RateLimiter>>);

impl RateLimits {
    /// Build the config's limits, keeping each of `previous` whose definition is
    /// unchanged.
    pub fn build(config: &Config, previous: Option<&RateLimits>) -> RateLimits {
        let limits = config
            .rate_limits
            .iter()
            .map(|c| {
                let kept = previous
                    .and_then(|p| p.0.get(&c.name))
                    .filter(|old| old.config == *c)
                    .cloned();
                (
                    c.name.clone(),
                    kept.unwrap_or_else(|| Arc::new(RateLimiter::new(c))),
                )
            })
            .collect();
        RateLimits(limits)
    }

    /// The limits `names` attach, in their order (validation guarantees each
    /// exists).
    pub fn attach(&self, names: &[String]) -> Box<[Arc<RateLimiter>]> {
        names
            .iter()
            .filter_map(|n| self.0.get(n).cloned())
            .collect()
    }

    /// `ballast_rate_limit_*` (control path).
    pub fn render(&self, out: &mut String) {
        let mut limits: Vec<_> = self.0.values().collect();
        limits.sort_by(|a, b| a.name().cmp(b.name()));
        let families: [Family; 4] = [
            (
                "ballast_rate_limited_requests_total",
                "counter",
                "Requests refused (429) by this rate limit.",
                |l| l.limited.load(Ordering::Relaxed),
            ),
            (
                "ballast_rate_limit_keys",
                "gauge",
                "Keys (clients, header values, rules) this rate limit's table holds now.",
                |l| l.counter.keys() as u64,
            ),
            (
                "ballast_rate_limit_max_keys",
                "gauge",
                "Keys this rate limit's table can hold (max_keys, rounded up to whole buckets).",
                |l| l.counter.capacity() as u64,
            ),
            (
                "ballast_rate_limit_evictions_total",
                "counter",
                "Keys that lost their state to make room before their bucket had refilled (max_keys too small).",
                |l| l.counter.evictions(),
            ),
        ];
        for (name, kind, help, read) in families {
            family(out, name, kind, help);
            for l in &limits {
                sample(out, name, &[("rate_limit", l.name())], read(l));
            }
        }
    }
}

/// A request over a limit: which one, and how long until it would be admitted.
#[derive(Clone)]
pub struct Limited {
    pub limit: Arc<RateLimiter>,
    pub wait: Duration,
}

impl std::fmt::Debug for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} for {:?}", self.limit.name(), self.wait)
    }
}

impl Limited {
    /// Whole seconds until a request would be admitted, rounded up (at least 1).
    pub fn retry_after(&self) -> u64 {
        self.wait.as_nanos().div_ceil(1_000_000_000).max(1) as u64
    }

    /// `Retry-After`, `RateLimit-Policy` and `RateLimit` for the 429.
    pub fn headers(&self, headers: &mut HeaderMap) {
        let c = &self.limit.config;
        let t = self.retry_after();
        let name = c.name.as_str();
        let policy = format!("\"{name}\";q={};w={}", c.rate.count, c.rate.per.as_secs());
        let state = format!("\"{name}\";r=0;t={t}");
        // Names are letters, digits, `-`, `_` and `.` (validated): always a
        // valid header value and Structured Fields string.
        for (field, value) in [
            ("retry-after", t.to_string()),
            ("ratelimit-policy", policy),
            ("ratelimit", state),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(field, v);
            }
        }
    }
}

/// Count a request against the limits of each list (the listener's, then the
/// rule's) in order; the first that refuses it ends the check.
pub fn check(
    lists: [&[Arc<RateLimiter>]; 2],
    facts: &Facts<'_>,
    at: Instant,
) -> Result<(), Limited> {
    let now = rate_limit::ticks(at);
    for limit in lists.into_iter().flatten() {
        if let Err(wait) = limit.take(facts, now) {
            return Err(Limited {
                limit: limit.clone(),
                wait,
            });
        }
    }
    Ok(())
}

/// A metric family of the rate limits: name, type, help, and how to read one
/// limit's value.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&RateLimiter) -> u64,
);

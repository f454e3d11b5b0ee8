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
//!
//! A limit with `scope = "global"` counts with the fleet's counter
//! (`global_limit.rs`) through this node's link to Redis (`redis_link.rs`),
//! which the limits keep across reloads while `[cluster] redis`,
//! `on_redis_error` and `prefix` stay the same; its answer takes the same way
//! out as a local limit's (one 429, reason `rate_limited`).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_config::limits::{RateLimitConfig, Scope};
use ballast_config::Config;
use http::{HeaderMap, HeaderValue};

use crate::admission::global_limit::{FleetSeed, GlobalCounter};
use crate::admission::rate_key::{Facts, KeySpec};
use crate::admission::rate_limit::{self, Counter, Gcra, Table, Take};
use crate::admission::redis_link::RedisLink;
use crate::observe::exposition::{family, sample};

/// How a limit hashes its keys: a seed of this node's (a local limit), or one
/// the fleet shares (a global limit: every node must name a client's Redis key
/// alike).
enum Seed {
    Node(RandomState),
    Fleet(FleetSeed),
}

/// One named limit.
pub struct RateLimiter {
    pub config: RateLimitConfig,
    key: KeySpec,
    seed: Seed,
    counter: Box<dyn Counter>,
    limited: AtomicU64,
    /// The Redis link a global limit counts through.
    link: Option<Arc<RedisLink>>,
}

impl RateLimiter {
    /// A limit of this node only (whatever its `scope` says).
    pub fn new(config: &RateLimitConfig) -> RateLimiter {
        let gcra = Gcra::new(config.rate.interval(), config.burst);
        RateLimiter {
            key: KeySpec::new(&config.key),
            seed: Seed::Node(RandomState::new()),
            counter: Box::new(Table::new(gcra, config.max_keys)),
            limited: AtomicU64::new(0),
            link: None,
            config: config.clone(),
        }
    }

    /// A limit that counts across the fleet through `link`.
    pub fn global(config: &RateLimitConfig, link: &Arc<RedisLink>) -> RateLimiter {
        RateLimiter {
            key: KeySpec::new(&config.key),
            seed: Seed::Fleet(FleetSeed::new(link, &config.name)),
            counter: Box::new(GlobalCounter::new(config, link.clone())),
            limited: AtomicU64::new(0),
            link: Some(link.clone()),
            config: config.clone(),
        }
    }

    /// The limit `config` asks for, given this node's Redis link.
    fn build(config: &RateLimitConfig, link: Option<&Arc<RedisLink>>) -> RateLimiter {
        match (config.scope, link) {
            (Scope::Global, Some(link)) => RateLimiter::global(config, link),
            // Validation allows `global` only with `[cluster] redis`.
            _ => RateLimiter::new(config),
        }
    }

    /// Whether `self` is what `config` asks for with `link`.
    fn is(&self, config: &RateLimitConfig, link: Option<&Arc<RedisLink>>) -> bool {
        self.config == *config
            && match (&self.link, link, config.scope) {
                (Some(mine), Some(link), Scope::Global) => Arc::ptr_eq(mine, link),
                (None, _, Scope::Local) => true,
                _ => false,
            }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Count a request; `Err` with how long until one would be admitted.
    fn take(&self, facts: &Facts<'_>, now: u64) -> Result<(), Duration> {
        let key = match &self.seed {
            Seed::Node(seed) => self.key.hash(seed, facts),
            Seed::Fleet(seed) => self.key.hash(seed, facts),
        };
        let Some(key) = key else {
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

/// The limits of one snapshot, by name, and the node's link to Redis.
#[derive(Default)]
pub struct RateLimits {
    limits: HashMap<String, Arc<RateLimiter>>,
    link: Option<Arc<RedisLink>>,
}

impl RateLimits {
    /// Build the config's limits, keeping each of `previous` whose definition is
    /// unchanged (and the Redis link, while `[cluster]` names the same).
    pub fn build(config: &Config, previous: Option<&RateLimits>) -> RateLimits {
        let wanted = config.cluster.as_ref().and_then(|c| {
            let url = c.redis.as_deref()?;
            Some((url, c.on_redis_error, c.prefix.as_str()))
        });
        let link = wanted.map(|(url, on_error, prefix)| {
            previous
                .and_then(|p| p.link.clone())
                .filter(|l| l.is(url, on_error, prefix))
                .unwrap_or_else(|| RedisLink::start(url, on_error, prefix))
        });
        let limits = config
            .rate_limits
            .iter()
            .map(|c| {
                let kept = previous
                    .and_then(|p| p.limits.get(&c.name))
                    .filter(|old| old.is(c, link.as_ref()))
                    .cloned();
                (
                    c.name.clone(),
                    kept.unwrap_or_else(|| Arc::new(RateLimiter::build(c, link.as_ref()))),
                )
            })
            .collect();
        RateLimits { limits, link }
    }

    /// Whether there is anything to render (limits, or a Redis link).
    pub fn shows(&self) -> bool {
        !self.limits.is_empty() || self.link.is_some()
    }

    /// The limits `names` attach, in their order (validation guarantees each
    /// exists).
    pub fn attach(&self, names: &[String]) -> Box<[Arc<RateLimiter>]> {
        names
            .iter()
            .filter_map(|n| self.limits.get(n).cloned())
            .collect()
    }

    /// `ballast_rate_limit_*`, `ballast_redis_*` (control path).
    pub fn render(&self, out: &mut String) {
        if let Some(link) = &self.link {
            link.render(out);
        }
        let mut limits: Vec<_> = self.limits.values().collect();
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
            if limits.is_empty() {
                break;
            }
            family(out, name, kind, help);
            for l in &limits {
                sample(out, name, &[("rate_limit", l.name())], read(l));
            }
        }
        let fallbacks = "ballast_rate_limit_redis_fallbacks_total";
        let global: Vec<_> = limits
            .iter()
            .filter_map(|l| Some((l.name(), l.counter.fallbacks()?)))
            .collect();
        if !global.is_empty() {
            family(
                out,
                fallbacks,
                "counter",
                "Requests of this global rate limit decided without Redis (it could not be asked), by on_redis_error.",
            );
            for (name, n) in global {
                sample(out, fallbacks, &[("rate_limit", name)], n);
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

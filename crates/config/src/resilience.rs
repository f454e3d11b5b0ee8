//! A target group's resilience settings (SPEC §13): anomaly mitigation, slow
//! start, sticky sessions to a target, retries within a budget, circuit breakers.
//! Their model and their decoding, which reports every error with its path and
//! position like the rest of the config.
//!
//! Control path only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::decode::{self as d, Errors, Fields};
use crate::duration;
use crate::source::{Node, Value};

/// What anomaly detection may do to a target's weight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyMitigation {
    /// Detect and report only; weights never change.
    #[default]
    Off,
    /// Lower an anomalous target's weight step by step, give it back once it
    /// recovers.
    On,
    /// Detect, explain every decision mitigation would take, change nothing.
    Monitor,
}

/// Sticky sessions to one target of the group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stickiness {
    #[serde(flatten)]
    pub kind: StickinessKind,
    #[serde(serialize_with = "duration::serialize")]
    pub duration: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StickinessKind {
    /// ballast's own cookie names the target.
    LbCookie,
    /// The application's cookie starts a session; ballast's own cookie beside it
    /// names the target.
    AppCookie { cookie_name: String },
}

impl Stickiness {
    pub const MIN_DURATION: Duration = Duration::from_secs(1);
    /// ALB's bound: 7 days.
    pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
}

/// What makes a failed attempt worth another target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum RetryOn {
    /// The target could not be reached (refused, unreachable, connect timeout,
    /// TLS handshake).
    ConnectFailure,
    /// The target closed or reset the connection before a response head.
    Reset,
    /// No response head within the response timeout (off unless named: the
    /// target may still be working on it).
    Timeout,
    /// The target answered this 5xx status.
    Status(u16),
}

impl From<RetryOn> for String {
    fn from(r: RetryOn) -> String {
        match r {
            RetryOn::ConnectFailure => "connect_failure".into(),
            RetryOn::Reset => "reset".into(),
            RetryOn::Timeout => "timeout".into(),
            RetryOn::Status(code) => code.to_string(),
        }
    }
}

/// Retries of failed idempotent requests, as far as the budget allows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub attempts: u32,
    pub on: Vec<RetryOn>,
    pub budget: RetryBudget,
}

/// Retries in a sliding window may be at most `ratio` × requests +
/// `min_per_second` × window seconds (Linkerd's and Envoy's budget).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RetryBudget {
    pub ratio: f64,
    pub min_per_second: u32,
}

impl RetryPolicy {
    pub const MAX_ATTEMPTS: u32 = 5;
    pub const DEFAULT_ATTEMPTS: u32 = 2;
    pub const DEFAULT_BUDGET: RetryBudget = RetryBudget {
        ratio: 0.2,
        min_per_second: 10,
    };

    /// Whether this failure may be retried.
    pub fn retries(&self, on: RetryOn) -> bool {
        self.on.contains(&on)
    }
}

/// Envoy's circuit-breaker thresholds; an omitted one is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CircuitBreaker {
    /// Connections open to the group's targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Requests waiting for a connection to a target (being connected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Requests in flight to the group's targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Retries in flight at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

impl CircuitBreaker {
    pub fn is_off(&self) -> bool {
        *self == CircuitBreaker::default()
    }
}

/// The resilience keys of one target group, decoded.
pub struct Decoded {
    pub anomaly_mitigation: Option<AnomalyMitigation>,
    pub slow_start: Option<Duration>,
    pub stickiness: Option<Option<Stickiness>>,
    pub retry: Option<Option<RetryPolicy>>,
    pub circuit_breaker: Option<CircuitBreaker>,
}

/// Slow start's bounds (ALB's): 30 s to 15 min, or 0 for off.
pub const SLOW_START_MIN: Duration = Duration::from_secs(30);
pub const SLOW_START_MAX: Duration = Duration::from_secs(15 * 60);

pub fn decode(f: &mut Fields<'_>, errs: &mut Errors) -> Decoded {
    let anomaly_mitigation = match f.optional("anomaly_mitigation") {
        None => Some(AnomalyMitigation::Off),
        Some(n) => d::one_of(
            n,
            &f.path("anomaly_mitigation"),
            &[
                ("off", AnomalyMitigation::Off),
                ("on", AnomalyMitigation::On),
                ("monitor", AnomalyMitigation::Monitor),
            ],
            errs,
        ),
    };
    let slow_start = match f.optional("slow_start") {
        None => Some(Duration::ZERO),
        Some(n) => {
            let p = f.path("slow_start");
            d::duration(n, &p, errs).and_then(|d| {
                if d.is_zero() || (SLOW_START_MIN..=SLOW_START_MAX).contains(&d) {
                    Some(d)
                } else {
                    errs.at(
                        &p,
                        n.pos,
                        format!(
                            "slow start {} is out of range; allowed: \"0s\" (off), or 30s to 15m",
                            duration::format(d)
                        ),
                    );
                    None
                }
            })
        }
    };
    let stickiness = match f.optional("stickiness") {
        None => Some(None),
        Some(n) => decode_stickiness(n, &f.path("stickiness"), errs).map(Some),
    };
    let retry = match f.optional("retry") {
        None => Some(None),
        Some(n) => decode_retry(n, &f.path("retry"), errs).map(Some),
    };
    let circuit_breaker = match f.optional("circuit_breaker") {
        None => Some(CircuitBreaker::default()),
        Some(n) => decode_breaker(n, &f.path("circuit_breaker"), errs),
    };
    Decoded {
        anomaly_mitigation,
        slow_start,
        stickiness,
        retry,
        circuit_breaker,
    }
}

fn decode_stickiness(node: &Node, path: &str, errs: &mut Errors) -> Option<Stickiness> {
    let mut f = Fields::new(node, path, errs)?;
    let kind = f.required("type", errs).and_then(|n| {
        d::one_of(
            n,
            &f.path("type"),
            &[("lb_cookie", false), ("app_cookie", true)],
            errs,
        )
    });
    let cookie_name = f
        .optional("cookie_name")
        .map(|n| (n, f.path("cookie_name")));
    let duration = match f.required("duration", errs) {
        Some(n) => d::duration_in(
            n,
            &f.path("duration"),
            Stickiness::MIN_DURATION,
            Stickiness::MAX_DURATION,
            errs,
        ),
        None => None,
    };
    let kind = match (kind?, cookie_name) {
        (false, None) => Some(StickinessKind::LbCookie),
        (false, Some((n, p))) => {
            errs.at(&p, n.pos, "cookie_name is only for type = \"app_cookie\"");
            None
        }
        (true, None) => {
            errs.at(
                path,
                node.pos,
                "type = \"app_cookie\" needs cookie_name, the application's session cookie",
            );
            None
        }
        (true, Some((n, p))) => d::string(n, &p, errs).and_then(|name| {
            let token = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                errs.at(
                    &p,
                    n.pos,
                    format!("invalid cookie name {name:?}; allowed: 1 to 64 token characters (letters, digits, !#$%&'*+-.^_`|~)"),
                );
                return None;
            }
            if name.to_ascii_lowercase().starts_with("ballast") {
                errs.at(&p, n.pos, "cookie names starting with ballast (any case) are ballast's own");
                return None;
            }
            Some(StickinessKind::AppCookie { cookie_name: name })
        }),
    };
    f.finish(errs);
    Some(Stickiness {
        kind: kind?,
        duration: duration?,
    })
}

/// `server.stickiness_key_file`: a file, relative to `base` unless absolute, that
/// holds at least `ServerConfig::MIN_STICKINESS_KEY` bytes besides surrounding
/// whitespace (so `openssl rand -hex 32 > key` qualifies). Read here to report a
/// bad file with its position; the proxy reads it again when it applies the config.
pub(crate) fn key_file(node: &Node, path: &str, base: &Path, errs: &mut Errors) -> Option<PathBuf> {
    let s = d::string(node, path, errs)?;
    if s.is_empty() {
        errs.at(path, node.pos, "empty file path");
        return None;
    }
    let file = base.join(&s);
    let min = crate::ServerConfig::MIN_STICKINESS_KEY;
    let problem = match std::fs::read(&file) {
        Ok(bytes) if bytes.trim_ascii().len() >= min => return Some(file),
        Ok(bytes) => format!(
            "{} holds {} bytes; a stickiness key needs at least {min} (e.g. `openssl rand -hex 32`)",
            file.display(),
            bytes.trim_ascii().len()
        ),
        Err(e) => format!("cannot read {}: {e}", file.display()),
    };
    errs.at(path, node.pos, problem);
    None
}

fn decode_retry(node: &Node, path: &str, errs: &mut Errors) -> Option<RetryPolicy> {
    let mut f = Fields::new(node, path, errs)?;
    let attempts = match f.optional("attempts") {
        None => Some(RetryPolicy::DEFAULT_ATTEMPTS),
        Some(n) => d::u32_in(n, &f.path("attempts"), 1, RetryPolicy::MAX_ATTEMPTS, errs),
    };
    let on = match f.optional("on") {
        None => Some(vec![RetryOn::ConnectFailure, RetryOn::Reset]),
        Some(n) => {
            let mut all = Some(Vec::new());
            for (p, item) in d::array(n, &f.path("on"), errs) {
                let one = match d::string(item, &p, errs).as_deref() {
                    Some("connect_failure") => Some(RetryOn::ConnectFailure),
                    Some("reset") => Some(RetryOn::Reset),
                    Some("timeout") => Some(RetryOn::Timeout),
                    Some(code) => match code.parse::<u16>() {
                        Ok(c) if (500..=599).contains(&c) => Some(RetryOn::Status(c)),
                        _ => {
                            errs.at(
                                &p,
                                item.pos,
                                format!("unknown retry condition {code:?}; allowed: \"connect_failure\", \"reset\", \"timeout\", or a status from \"500\" to \"599\""),
                            );
                            None
                        }
                    },
                    None => None,
                };
                match (one, all.as_mut()) {
                    (Some(o), Some(v)) if !v.contains(&o) => v.push(o),
                    (Some(_), Some(_)) => {
                        errs.at(&p, item.pos, "listed twice");
                        all = None;
                    }
                    _ => all = None,
                }
            }
            all
        }
    };
    let budget = match f.optional("budget") {
        None => Some(RetryPolicy::DEFAULT_BUDGET),
        Some(n) => decode_budget(n, &f.path("budget"), errs),
    };
    f.finish(errs);
    Some(RetryPolicy {
        attempts: attempts?,
        on: on?,
        budget: budget?,
    })
}

fn decode_budget(node: &Node, path: &str, errs: &mut Errors) -> Option<RetryBudget> {
    let mut f = Fields::new(node, path, errs)?;
    let ratio = match f.optional("ratio") {
        None => Some(RetryPolicy::DEFAULT_BUDGET.ratio),
        Some(n) => {
            let p = f.path("ratio");
            let r = match n.value {
                Value::Float(r) => Some(r),
                Value::Integer(i) => Some(i as f64),
                _ => {
                    errs.at(
                        &p,
                        n.pos,
                        format!("expected a number from 0 to 1, found {}", n.value.kind()),
                    );
                    None
                }
            };
            r.and_then(|r| {
                if (0.0..=1.0).contains(&r) {
                    Some(r)
                } else {
                    errs.at(&p, n.pos, format!("{r} is out of range; allowed: 0 to 1"));
                    None
                }
            })
        }
    };
    let min_per_second = match f.optional("min_per_second") {
        None => Some(RetryPolicy::DEFAULT_BUDGET.min_per_second),
        Some(n) => d::u32_in(n, &f.path("min_per_second"), 0, 100_000, errs),
    };
    f.finish(errs);
    Some(RetryBudget {
        ratio: ratio?,
        min_per_second: min_per_second?,
    })
}

fn decode_breaker(node: &Node, path: &str, errs: &mut Errors) -> Option<CircuitBreaker> {
    let mut f = Fields::new(node, path, errs)?;
    let mut limit = |key: &'static str, f: &mut Fields<'_>| match f.optional(key) {
        None => Some(None),
        Some(n) => d::u32_in(n, &f.path(key), 1, 10_000_000, errs).map(Some),
    };
    let max_connections = limit("max_connections", &mut f);
    let max_pending_requests = limit("max_pending_requests", &mut f);
    let max_requests = limit("max_requests", &mut f);
    let max_retries = limit("max_retries", &mut f);
    f.finish(errs);
    Some(CircuitBreaker {
        max_connections: max_connections?,
        max_pending_requests: max_pending_requests?,
        max_requests: max_requests?,
        max_retries: max_retries?,
    })
}

//! Retrying a request on another target: always when it is safe, and within the
//! group's retry policy and budget when it reached a target.
//!
//! Data path. The rules live here once, for the HTTP path (`handler.rs`), HTTP/2
//! (`http2.rs`) and the upgrade path (`upgrade.rs`). Each caller asks `first` for
//! a target and, after each attempt, `failed`/`failed_in_place`/`after_status`
//! for the next one (`None`: done), so no closure or boxed future sits on the
//! request path.
//!
//! Always, whatever the config: a connect failure, or an attempt that handed the
//! request back unsent, moves on to another target (it never reached one, so it
//! adds no load to any); this costs no budget. Without a `retry` policy, an
//! idempotent request without a body that failed before any response is also
//! sent to another target, as ballast always did. With one (`retry = { attempts,
//! on, budget }`), a replayable request (RFC 9110 §9.2.2's idempotent methods, no
//! body; bodies are not buffered for retries) whose failure is listed in `on` —
//! `reset` (closed or reset before a response head), `timeout`, or a 5xx status,
//! whose response is then discarded — is retried up to `attempts` times, on a
//! target not tried yet where there is one, as long as the circuit breaker's
//! `max_retries` and the group's budget (`resilience/budget.rs`) allow. Otherwise
//! the failure stands: the client gets the last attempt's response or error.
//!
//! With a shuffle shard (`upstream/shard.rs`), every attempt keeps to the
//! request's shard: a retry goes to a member not tried yet, else (with a policy)
//! to any member again, never outside it.
//!
//! Across tiers: in a group with a policy, every attempt carries
//! `X-Ballast-Attempt: N` (1 for the first; a client's own is replaced), and a
//! request that arrives with one is a ballast's attempt already: it gets no
//! retries here beyond the always-safe ones, so stacked proxies cannot multiply
//! one failure into attempts × attempts requests.

use std::sync::Arc;

use ballast_config::resilience::RetryOn;
use http::header::{HeaderName, HeaderValue};
use http::Request;

use crate::forward::error::ProxyError;
use crate::observe::group::Held;
use crate::resilience::{breaker, budget};
use crate::upstream::body::UpstreamBody;
use crate::upstream::shard::Shard;
use crate::upstream::target::Target;
use crate::upstream::target_group::{TargetGroup, Tried};

/// The attempt counter carried to targets of groups with a retry policy.
pub const X_BALLAST_ATTEMPT: HeaderName = HeaderName::from_static("x-ballast-attempt");

/// Its values, made once: no allocation per attempt.
const ATTEMPT: [HeaderValue; Tried::MAX] = [
    HeaderValue::from_static("1"),
    HeaderValue::from_static("2"),
    HeaderValue::from_static("3"),
    HeaderValue::from_static("4"),
    HeaderValue::from_static("5"),
    HeaderValue::from_static("6"),
];

/// Attempts on distinct targets for one request without a retry policy (and at
/// least this many with one).
pub const MAX_ATTEMPTS: usize = 3;

/// Connections tried on one target when pooled ones turn out to be closed.
pub const MAX_STALE: usize = 3;

/// Which target a request tries next, and whether it may try again at all.
///
/// The request stays here between attempts. An attempt on ballast's own HTTP/1.1
/// client borrows it (`request_mut`) and says afterwards whether any of it reached
/// the target (`failed_in_place`); one through hyper, which consumes it, takes it
/// (`take`) and hands it back if it can (`failed`). Keeping it in one place keeps
/// every request's future small: a request passed by value from one async
/// function to the next is stored once more at every level.
pub struct Retry {
    pending: Option<Request<UpstreamBody>>,
    /// Copy a replayable request's head before an attempt that consumes it:
    /// hyper's client cannot hand it back once sent.
    copy_first: bool,
    copy: Option<Box<Request<UpstreamBody>>>,
    tried: Tried,
    /// Attempts begun.
    attempts: u8,
    last_error: Option<ProxyError>,
    /// Idempotent and without a body: may be sent again after it reached a target.
    replayable: bool,
    /// It arrived with `X-Ballast-Attempt`: the ballast before this one retries it.
    marked: bool,
    /// Retries the group's policy still allows this request.
    left: u8,
    /// The latest retry's place among the group's retries in flight.
    _retry_place: Option<Held>,
    /// A sticky client's target, for the first attempt when it may take it.
    prefer: Option<usize>,
    /// The request's shuffle shard: every attempt, retries included, keeps to it.
    shard: Option<Shard>,
}

impl Retry {
    /// `consumed`: the attempts take the request (hyper); those that borrow it
    /// (ballast's own HTTP/1.1 client) need no copy to replay it.
    pub fn new(
        request: Request<UpstreamBody>,
        replayable: bool,
        consumed: bool,
        group: &TargetGroup,
    ) -> Self {
        let marked = request.headers().contains_key(X_BALLAST_ATTEMPT);
        let left = match &group.config.retry {
            Some(p) if replayable && !marked => p.attempts.min(Tried::MAX as u32 - 1) as u8,
            _ => 0,
        };
        Retry {
            pending: Some(request),
            copy_first: replayable && consumed,
            copy: None,
            tried: Tried::default(),
            attempts: 0,
            last_error: None,
            replayable,
            marked,
            left,
            _retry_place: None,
            prefer: None,
            shard: None,
        }
    }

    /// Try target `i` first, if it may take the request (sticky sessions); a
    /// retry goes wherever the balancer says.
    pub fn prefer(&mut self, i: usize) {
        self.prefer = Some(i);
    }

    /// Keep every attempt to this shard (`TargetGroup::shard_for`). Retries
    /// stay in it too: a request that broke one target (a poison pill) must not
    /// be carried to targets outside its shard; the next request of the key
    /// fails open once the shard has no target that can take it.
    pub fn shard(&mut self, shard: Option<Shard>) {
        self.shard = shard;
    }

    /// The target of the last attempt: the one that served, after a success.
    pub fn served(&self) -> Option<usize> {
        self.tried.last()
    }

    /// The first target, `None` when the group has none to offer.
    pub fn first<'g>(&mut self, group: &'g TargetGroup) -> Option<&'g Arc<Target>> {
        self.pick(group, false)
    }

    /// The next target: one not tried yet, or with `again` any when all were.
    /// Marks the request with its attempt number in a group with a policy.
    fn pick<'g>(&mut self, group: &'g TargetGroup, again: bool) -> Option<&'g Arc<Target>> {
        let cap = group
            .config
            .retry
            .as_ref()
            .map_or(MAX_ATTEMPTS, |p| MAX_ATTEMPTS.max(1 + p.attempts as usize));
        if usize::from(self.attempts) >= cap.min(Tried::MAX) {
            return None;
        }
        let shard = self.shard.as_ref();
        let preferred = self
            .prefer
            .take()
            .filter(|&i| group.takes(i, &self.tried, shard));
        let i = match preferred.or_else(|| group.pick(&self.tried, shard)) {
            Some(i) => i,
            None if again => group.pick(&Tried::default(), shard)?,
            None => return None,
        };
        if !self.tried.contains(i) {
            self.tried.add(i);
        }
        self.attempts += 1;
        if group.config.retry.is_some() {
            if let Some(req) = self.pending.as_mut() {
                let n = ATTEMPT[usize::from(self.attempts) - 1].clone();
                req.headers_mut().insert(X_BALLAST_ATTEMPT, n);
            }
        }
        Some(&group.targets[i])
    }

    /// The request, for an attempt that borrows it. `None` only after `take`.
    pub fn request_mut(&mut self) -> Option<&mut Request<UpstreamBody>> {
        self.pending.as_mut()
    }

    /// The request, for an attempt that consumes it (a replayable one is copied
    /// first, for a retry after a failure).
    pub fn take(&mut self) -> Option<Request<UpstreamBody>> {
        let req = self.pending.take()?;
        self.copy = self.copy_first.then(|| Box::new(clone_head(&req)));
        Some(req)
    }

    /// An attempt that took the request failed: the next target, if any.
    pub fn failed<'g>(
        &mut self,
        group: &'g TargetGroup,
        Failure { error, unsent }: Failure,
    ) -> Option<&'g Arc<Target>> {
        let reached = unsent.is_none();
        self.pending = unsent.or_else(|| self.copy.take().map(|copy| *copy));
        self.after_failure(group, error, reached)
    }

    /// An attempt that borrowed the request failed; `reached`: some of it was
    /// written to the target. The next target, if any.
    pub fn failed_in_place<'g>(
        &mut self,
        group: &'g TargetGroup,
        error: ProxyError,
        reached: bool,
    ) -> Option<&'g Arc<Target>> {
        self.after_failure(group, error, reached)
    }

    fn after_failure<'g>(
        &mut self,
        group: &'g TargetGroup,
        error: ProxyError,
        reached: bool,
    ) -> Option<&'g Arc<Target>> {
        let why = match &error {
            ProxyError::Connect { .. } => Some(RetryOn::ConnectFailure),
            ProxyError::ResponseTimeout(_) => Some(RetryOn::Timeout),
            ProxyError::Target { .. } | ProxyError::TargetHttp1 { .. } => Some(RetryOn::Reset),
            _ => None,
        };
        if matches!(error, ProxyError::CircuitOpen(_)) && self.last_error.is_some() {
            // A retry the breaker did not let open a connection: the failure
            // before it stands.
            return None;
        }
        self.last_error = Some(error);
        let why = why?;
        self.pending.as_ref()?;
        let target = if why == RetryOn::ConnectFailure || !reached {
            self.pick(group, false)?
        } else {
            self.budgeted(group, why)?
        };
        group.metrics.retried(why);
        Some(target)
    }

    /// A target answered `status`: the next target if the policy retries it (the
    /// caller then drops the response), `None` to pass the response on.
    pub fn after_status<'g>(
        &mut self,
        group: &'g TargetGroup,
        status: u16,
    ) -> Option<&'g Arc<Target>> {
        let why = RetryOn::Status(status);
        if !(500..=599).contains(&status) || !group.config.retry.as_ref()?.retries(why) {
            return None;
        }
        if self.pending.is_none() {
            self.pending = self.copy.take().map(|copy| *copy);
        }
        self.pending.as_ref()?;
        let target = self.budgeted(group, why)?;
        group.metrics.retried(why);
        Some(target)
    }

    /// A retry of a request that reached a target, if the policy, the breaker's
    /// `max_retries` and the budget allow it.
    fn budgeted<'g>(&mut self, group: &'g TargetGroup, why: RetryOn) -> Option<&'g Arc<Target>> {
        if !self.replayable || self.marked {
            return None;
        }
        let Some(policy) = &group.config.retry else {
            // No policy: what ballast always did, a replayable request that failed
            // before any response goes to another target.
            return match why {
                RetryOn::Reset => self.pick(group, false),
                _ => None,
            };
        };
        if self.left == 0 || !policy.retries(why) {
            return None;
        }
        // The last retry's response head is in: it is in flight no longer.
        self._retry_place = None;
        let place = breaker::retry(group).ok()?;
        let target = self.pick(group, true)?;
        let now = crate::runtime::now_ms();
        if !budget::withdraw(&group.metrics.window, &policy.budget, now) {
            group.metrics.budget_exhausted();
            return None;
        }
        self.left -= 1;
        self._retry_place = place;
        Some(target)
    }

    /// Why the request could not be served.
    pub fn into_error(mut self, group: &TargetGroup) -> ProxyError {
        self.last_error(group)
    }

    /// Why the request could not be served (once; for a `Retry` that is borrowed).
    pub fn last_error(&mut self, group: &TargetGroup) -> ProxyError {
        self.last_error
            .take()
            .unwrap_or_else(|| ProxyError::NoTarget(group.name().to_string()))
    }
}

/// A failed attempt, with the request when it can be sent again: it was never
/// sent, or it is replayable and the attempt still has it.
pub struct Failure {
    pub error: ProxyError,
    pub unsent: Option<Request<UpstreamBody>>,
}

/// A copy of a body-less request, for sending it again.
pub fn clone_head(req: &Request<UpstreamBody>) -> Request<UpstreamBody> {
    let mut copy = Request::new(UpstreamBody::Empty);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

//! Retrying a request on another target, only when it is safe.
//!
//! Data path. The rules live here once, for the HTTP path (`forward.rs`) and the
//! upgrade path (`upgrade.rs`): a connect failure or a pooled connection found
//! closed hands the request back unsent, so it can always go elsewhere; a request
//! without a body and with an idempotent method is replayable, so it is sent again
//! after a failure; anything else fails with the attempt, and so does a request
//! whose own body broke off (the client's failure, `error.rs`). Each caller loops
//! `while let Some(target) = retry.next(group)` around its own attempt, so no
//! closure or boxed future sits on the request path.

use std::sync::Arc;

use http::Request;

use crate::forward::error::ProxyError;
use crate::upstream::body::UpstreamBody;
use crate::upstream::target::Target;
use crate::upstream::target_group::{TargetGroup, Tried};

/// Attempts on distinct targets for one request.
pub const MAX_ATTEMPTS: usize = 3;

/// Connections tried on one target when pooled ones turn out to be closed.
pub const MAX_STALE: usize = 3;

/// Which target a request tries next, and whether it may try again at all: up to
/// `MAX_ATTEMPTS` distinct targets, moving on only when that is safe — the attempt
/// handed the request back (it was never sent), or the request is replayable (no
/// body, idempotent). The HTTP path and the upgrade path both loop over this, so
/// they follow the same rules.
///
/// The request stays here between attempts. An attempt on ballast's own HTTP/1.1
/// client borrows it (`request_mut`) and says afterwards whether it can still be
/// sent (`failed_in_place`); one through hyper, which consumes it, takes it
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
    last_error: Option<ProxyError>,
    /// A sticky client's target, for the first attempt when it may take it.
    prefer: Option<usize>,
}

impl Retry {
    /// `consumed`: the attempts take the request (hyper); those that borrow it
    /// (ballast's own HTTP/1.1 client) need no copy to replay it.
    pub fn new(request: Request<UpstreamBody>, replayable: bool, consumed: bool) -> Self {
        Retry {
            pending: Some(request),
            copy_first: replayable && consumed,
            copy: None,
            tried: Tried::default(),
            last_error: None,
            prefer: None,
        }
    }

    /// Try target `i` first, if it may take the request (sticky sessions); a
    /// retry goes wherever the balancer says.
    pub fn prefer(&mut self, i: usize) {
        self.prefer = Some(i);
    }

    /// The target of the last attempt: the one that served, after a success.
    pub fn served(&self) -> Option<usize> {
        self.tried.last()
    }

    /// The next target to try, or `None` when done.
    pub fn next<'g>(&mut self, group: &'g TargetGroup) -> Option<&'g Arc<Target>> {
        if self.tried.len() >= MAX_ATTEMPTS || self.pending.is_none() {
            return None;
        }
        let i = match self.prefer.take().filter(|&i| group.takes(i, &self.tried)) {
            Some(i) => i,
            None => group.pick(&self.tried)?,
        };
        self.tried.add(i);
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

    /// An attempt that took the request failed: keep it if it may be sent again.
    pub fn failed(&mut self, Failure { error, unsent }: Failure) {
        self.pending = unsent.or(self.copy.take().map(|copy| *copy));
        self.last_error = Some(error);
    }

    /// An attempt that borrowed the request failed; `sendable`: the request may
    /// still be sent (nothing of it was written, or it is replayable).
    pub fn failed_in_place(&mut self, error: ProxyError, sendable: bool) {
        if !sendable {
            self.pending = None;
        }
        self.last_error = Some(error);
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

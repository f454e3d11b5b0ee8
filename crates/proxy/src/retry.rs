//! Retrying a request on another target, only when it is safe.
//!
//! Data path. The rules live here once, for the HTTP path (`forward.rs`) and the
//! upgrade path (`upgrade.rs`): a connect failure or a pooled connection found
//! closed hands the request back unsent, so it can always go elsewhere; a request
//! without a body and with an idempotent method is replayable, so its head is copied
//! before each attempt and sent again after a failure; anything else fails with the
//! attempt. Each caller loops `while let Some((target, req)) = retry.next(group)`
//! around its own attempt, so no closure or boxed future sits on the request path.

use std::sync::Arc;

use http::Request;

use crate::body::UpstreamBody;
use crate::error::ProxyError;
use crate::target::Target;
use crate::target_group::{TargetGroup, Tried};

/// Attempts on distinct targets for one request.
pub const MAX_ATTEMPTS: usize = 3;

/// Which target a request tries next, and whether it may try again at all: up to
/// `MAX_ATTEMPTS` distinct targets, moving on only when that is safe — the attempt
/// handed the request back (it was never sent), or the request is replayable (no
/// body, idempotent; its head is copied before each attempt). The HTTP path and the
/// upgrade path both loop over this, so they follow the same rules.
pub struct Retry {
    pending: Option<Request<UpstreamBody>>,
    /// Copy a replayable request's head before each attempt: the attempt consumes
    /// the request (hyper's client) and cannot hand it back once sent.
    copy_first: bool,
    copy: Option<Request<UpstreamBody>>,
    tried: Tried,
    last_error: Option<ProxyError>,
}

impl Retry {
    /// `consumed`: the attempts send through hyper, which keeps the request once
    /// it is written; ballast's own HTTP/1.1 client hands a replayable request back
    /// instead (`Failure::unsent`), so it needs no copy.
    pub fn new(request: Request<UpstreamBody>, replayable: bool, consumed: bool) -> Self {
        Retry {
            pending: Some(request),
            copy_first: replayable && consumed,
            copy: None,
            tried: Tried::default(),
            last_error: None,
        }
    }

    /// The next target and the request to send it, or `None` when done.
    pub fn next<'g>(
        &mut self,
        group: &'g TargetGroup,
    ) -> Option<(&'g Arc<Target>, Request<UpstreamBody>)> {
        if self.tried.len() >= MAX_ATTEMPTS {
            return None;
        }
        let i = group.pick(&self.tried)?;
        self.tried.add(i);
        let req = self.pending.take()?;
        // Keep a copy of a replayable request's head for a retry after a failure.
        self.copy = self.copy_first.then(|| clone_head(&req));
        Some((&group.targets[i], req))
    }

    /// The attempt failed: keep its request if it may be sent again.
    pub fn failed(&mut self, Failure { error, unsent }: Failure) {
        self.pending = unsent.or(self.copy.take());
        self.last_error = Some(error);
    }

    /// Why the request could not be served.
    pub fn into_error(self, group: &TargetGroup) -> ProxyError {
        self.last_error
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

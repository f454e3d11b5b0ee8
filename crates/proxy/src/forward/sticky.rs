//! Sticky sessions on the request path: the target a request's cookie names goes
//! first, and the response says where the client was served.
//!
//! Data path, for groups with `stickiness` only (any other group costs the one
//! branch on `group.sticky`). Per request: the `Cookie` fields searched once for
//! ballast's cookie (`ballast-target-<group>`) without allocating, one MAC to check
//! it (`upstream/sticky.rs`), one clock read; no lock. A cookie is issued (one MAC,
//! one string) only when it must change:
//! - `lb_cookie`: the request had no valid cookie, was served elsewhere than its
//!   cookie said (its target unhealthy, draining, gone, set to weight 0, or a
//!   retry moved it), or its cookie has less than half its duration left (so an
//!   active client keeps its target; an idle one starts over after a duration);
//! - `app_cookie`: the application's response sets its session cookie
//!   (`cookie_name`), so ballast's starts beside it, naming the target that set
//!   it; or the request brought ballast's cookie and was served elsewhere (the
//!   session is moving: the cookie follows). Without either, no cookie: there is
//!   no session to keep.
//!
//! The cookie always names the target that actually served the response.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, SET_COOKIE};

use crate::routing::action::cookie;
use crate::upstream::sticky::Named;
use crate::upstream::target_group::TargetGroup;

/// What a sticky group's request brought.
#[derive(Clone, Copy, Debug)]
pub struct Visit {
    /// The target its valid cookie names.
    named: Option<Named>,
    /// It had ballast's cookie, valid or not.
    presented: bool,
    /// Seconds since the Unix epoch, when the request was read.
    now: u64,
}

impl Visit {
    /// The target to try first.
    pub fn target(&self) -> Option<usize> {
        self.named.map(|n| n.index)
    }
}

/// Read a request's cookie, for a sticky group; `None` for any other.
pub fn read(group: &TargetGroup, headers: &HeaderMap) -> Option<Visit> {
    let sticky = group.sticky.as_ref()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let value = cookie(headers, sticky.cookie_name());
    Some(Visit {
        named: value.and_then(|v| sticky.named(v, &group.targets, now)),
        presented: value.is_some(),
        now,
    })
}

/// Add ballast's cookie to a response served by target `served`, when it must
/// change; `secure` on https listeners.
pub fn answer(
    group: &TargetGroup,
    visit: Visit,
    served: Option<usize>,
    response: &mut HeaderMap,
    secure: bool,
) {
    let (Some(sticky), Some(served)) = (group.sticky.as_ref(), served) else {
        return;
    };
    let Some(target) = group.targets.get(served) else {
        return;
    };
    let kept = visit.named.filter(|n| n.index == served);
    let issue = match sticky.app_cookie() {
        None => kept.is_none_or(|n| sticky.stale(n, visit.now)),
        Some(app) => sets_cookie(response, app) || (visit.presented && kept.is_none()),
    };
    if issue {
        if let Some(line) = sticky.set_cookie(served, target.addr, visit.now, secure) {
            response.append(SET_COOKIE, line);
        }
    }
}

/// Whether a response sets the cookie `name`.
fn sets_cookie(headers: &HeaderMap, name: &str) -> bool {
    headers.get_all(SET_COOKIE).iter().any(|v| {
        v.as_bytes()
            .trim_ascii_start()
            .strip_prefix(name.as_bytes())
            .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"="))
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_set_cookie_is_recognised_by_its_name_only() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, HeaderValue::from_static("SESSIONIDX=1"));
        h.append(SET_COOKIE, HeaderValue::from_static("other=SESSIONID=2"));
        assert!(!sets_cookie(&h, "SESSIONID"));
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("SESSIONID=abc; Path=/"),
        );
        assert!(sets_cookie(&h, "SESSIONID"));
    }
}

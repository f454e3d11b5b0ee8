//! What a listener does with a request once its rules have spoken: the actions of
//! its rules and its default action, compiled per snapshot.
//!
//! Built on the control path with the snapshot (target groups resolved to their
//! `Arc`s, cookies and bodies preformatted); read on the data path. Group choice
//! for a weighted forward is one random draw over the cumulative weights (weights
//! are at most 999 × 5 groups, so a `u32` draw is exact). With group stickiness a
//! response carries `Set-Cookie: ballast-tg=<group>; Max-Age=<duration>`, and a
//! request that brings that cookie for a group of this action with a weight above
//! zero goes to that group again (a group set to weight 0 is being drained of new
//! and sticky clients alike).

use std::collections::HashMap;
use std::sync::Arc;

use ballast_config::{Action, RedirectTemplate};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, COOKIE};
use http::StatusCode;

use crate::upstream::target_group::TargetGroup;

/// The cookie that keeps a client on one target group of a weighted forward.
pub const STICKY_COOKIE: &str = "ballast-tg";

pub enum RouteAction {
    Forward(Forward),
    Redirect {
        status: StatusCode,
        template: RedirectTemplate,
    },
    Fixed {
        status: StatusCode,
        content_type: HeaderValue,
        body: Bytes,
    },
}

pub struct Forward {
    choices: Vec<Choice>,
    total: u32,
}

struct Choice {
    group: Arc<TargetGroup>,
    weight: u32,
    /// `Set-Cookie` value, when the action is sticky.
    cookie: Option<HeaderValue>,
}

impl RouteAction {
    /// Compile a validated action; `None` only if a group is missing, which
    /// validation rules out.
    pub fn build(action: &Action, groups: &HashMap<String, Arc<TargetGroup>>) -> Option<Self> {
        Some(match action {
            Action::Forward(f) => {
                let choices = f
                    .target_groups
                    .iter()
                    .map(|w| {
                        let cookie = f.stickiness.and_then(|d| {
                            let v = format!(
                                "{STICKY_COOKIE}={}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax",
                                w.name,
                                d.as_secs()
                            );
                            HeaderValue::from_str(&v).ok()
                        });
                        Some(Choice {
                            group: groups.get(&w.name)?.clone(),
                            weight: w.weight,
                            cookie,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                let total = choices.iter().map(|c| c.weight).sum();
                RouteAction::Forward(Forward { choices, total })
            }
            Action::Redirect { status, location } => RouteAction::Redirect {
                status: StatusCode::from_u16(*status).ok()?,
                template: location.clone(),
            },
            Action::FixedResponse {
                status,
                content_type,
                body,
            } => RouteAction::Fixed {
                status: StatusCode::from_u16(*status).ok()?,
                content_type: HeaderValue::from_str(content_type).ok()?,
                body: Bytes::from(body.clone()),
            },
        })
    }
}

impl Forward {
    /// The group for a request, and the `Set-Cookie` to send back when sticky.
    pub fn pick(&self, headers: &HeaderMap) -> Option<(&Arc<TargetGroup>, Option<&HeaderValue>)> {
        let chosen = self.sticky(headers).or_else(|| self.by_weight())?;
        Some((&chosen.group, chosen.cookie.as_ref()))
    }

    fn sticky(&self, headers: &HeaderMap) -> Option<&Choice> {
        self.choices.first()?.cookie.as_ref()?;
        let name = cookie(headers, STICKY_COOKIE)?;
        self.choices
            .iter()
            .find(|c| c.weight > 0 && c.group.name().as_bytes() == name)
    }

    fn by_weight(&self) -> Option<&Choice> {
        if self.choices.len() == 1 {
            return self.choices.first();
        }
        let mut draw = fastrand::u32(0..self.total.max(1));
        for c in &self.choices {
            if draw < c.weight {
                return Some(c);
            }
            draw -= c.weight;
        }
        self.choices.first()
    }
}

/// The value of a cookie in the request's `Cookie` headers, without allocating.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get_all(COOKIE).iter().find_map(|v| {
        v.as_bytes().split(|&b| b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let rest = pair.strip_prefix(name.as_bytes())?;
            rest.strip_prefix(b"=")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; ballast-tgx=no"));
        h.append(
            COOKIE,
            HeaderValue::from_static("b=2;ballast-tg=canary ; c=3"),
        );
        assert_eq!(cookie(&h, STICKY_COOKIE), Some(&b"canary"[..]));
        assert_eq!(cookie(&h, "d"), None);
    }
}

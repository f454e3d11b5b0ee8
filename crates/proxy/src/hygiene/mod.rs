//! HTTP hygiene: the checks every request passes before the rules see it, so that
//! a request two parsers could read two ways is never forwarded as one of them.
//!
//! Data path, no I/O, no allocation on the common request. Uses only `http` and
//! the config's listener settings; `forward/` calls it (`handler::plan`) and turns
//! a refusal into ballast's error (`forward/error.rs`, the one place of statuses
//! and reasons). In order:
//! 1. `drop_invalid_header_fields`: fields whose names hold anything but
//!    `A-Z a-z 0-9 -` are dropped (an `_` is how `Transfer_Encoding` smuggles);
//! 2. desync classification of every HTTP/1 request (`desync.rs`), counted in
//!    `ballast_desync_requests_total{listener,classification}` and logged;
//! 3. the host (`host.rs`): one, valid, and the same in `:authority` and `host`;
//! 4. the path: a percent-encoded NUL or other control character is refused
//!    (the rules match a normalised path, `routing/path.rs`; a target that stops
//!    at a NUL would serve another one);
//! 5. the listener's `desync_mitigation_mode` applied to the class:
//!
//! | class      | monitor | defensive                            | strictest |
//! |------------|---------|--------------------------------------|-----------|
//! | compliant  | forward | forward                              | forward   |
//! | acceptable | forward | forward                              | 400       |
//! | ambiguous  | forward | forward, then close both connections | 400       |
//! | severe     | forward | 400                                  | 400       |
//!
//! Every refusal closes the client's connection after the 400: what follows a
//! head that was refused cannot be trusted to start a request.

pub mod desync;
pub mod host;

use ballast_config::DesyncMitigationMode;
use http::{HeaderMap, Request, Version};

use desync::{Class, Verdict};
use host::HostError;

/// How the request's head was seen, for its classification.
#[derive(Clone, Copy, Debug)]
pub enum Seen {
    /// Classified by ballast's own HTTP/1.1 parser, fields as sent.
    Raw(Verdict),
    /// Read by hyper: classified here from what hyper kept (HTTP/2 is not
    /// classified).
    Parsed,
}

/// A listener's hygiene settings.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub mode: DesyncMitigationMode,
    pub drop_invalid_header_fields: bool,
}

/// Why a request was refused (400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Host(HostError),
    /// A percent-encoded NUL or control character in the path.
    Path,
    /// The desync mitigation mode does not forward this class.
    Desync(Verdict),
}

/// What the checks decided.
#[derive(Debug)]
pub struct Checked {
    /// The desync classification (HTTP/1 only).
    pub verdict: Option<Verdict>,
    pub outcome: Result<Pass, Refusal>,
}

/// A request that may go on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Close the client's and the target's connection after this request
    /// (an ambiguous request in defensive mode).
    pub close: bool,
}

/// Run the checks on a request (see the module docs).
pub fn check<B>(req: &mut Request<B>, policy: Policy, seen: Seen) -> Checked {
    let mut seen = seen;
    if policy.drop_invalid_header_fields && drop_invalid_fields(req.headers_mut()) {
        // What the parser saw is no longer what goes on.
        seen = Seen::Parsed;
    }
    let verdict = (req.version() != Version::HTTP_2).then(|| match seen {
        Seen::Raw(v) => v,
        Seen::Parsed => {
            let target = req
                .uri()
                .path_and_query()
                .map_or(&b"/"[..], |p| p.as_str().as_bytes());
            desync::classify_parsed(req.method(), req.version(), target, req.headers())
        }
    });
    let outcome = (|| {
        host::check(req.version(), req.uri(), req.headers()).map_err(Refusal::Host)?;
        if encoded_control(req.uri().path().as_bytes()) {
            return Err(Refusal::Path);
        }
        let Some(v) = verdict else {
            return Ok(Pass::default());
        };
        match (policy.mode, v.class) {
            (DesyncMitigationMode::Monitor, _) | (_, Class::Compliant) => Ok(Pass::default()),
            (DesyncMitigationMode::Defensive, Class::Acceptable) => Ok(Pass::default()),
            (DesyncMitigationMode::Defensive, Class::Ambiguous) => Ok(Pass { close: true }),
            _ => Err(Refusal::Desync(v)),
        }
    })();
    Checked { verdict, outcome }
}

/// Remove the fields whose names are not `[-A-Za-z0-9]+` (names are lower case
/// here); whether any was removed. Most heads have none: one scan, no allocation.
fn drop_invalid_fields(headers: &mut HeaderMap) -> bool {
    let invalid = |name: &str| {
        !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !headers.keys().any(|n| invalid(n.as_str())) {
        return false;
    }
    let names: Vec<_> = headers
        .keys()
        .filter(|n| invalid(n.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
    true
}

/// A `%XX` in the path that decodes to a control character (NUL to 0x1F, DEL).
fn encoded_control(path: &[u8]) -> bool {
    let hex = |b: u8| (b as char).to_digit(16);
    path.windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (hex(w[1]), hex(w[2])),
                (Some(0 | 1), Some(_)) | (Some(7), Some(15))
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw_fields: &[(&str, &str)], path: &str) -> Request<()> {
        let mut req = Request::get(path).body(()).expect("request");
        for (n, v) in raw_fields {
            req.headers_mut().append(
                http::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        req
    }

    fn policy(mode: DesyncMitigationMode) -> Policy {
        Policy {
            mode,
            drop_invalid_header_fields: false,
        }
    }

    #[test]
    fn modes_decide_by_class() {
        use DesyncMitigationMode::*;
        let ambiguous = [("host", "a"), ("content-length", "5")];
        let acceptable = [("host", "a"), ("content-length", "0")];
        let expect = [
            (Monitor, &ambiguous[..], Ok(Pass { close: false })),
            (Defensive, &ambiguous[..], Ok(Pass { close: true })),
            (Defensive, &acceptable[..], Ok(Pass { close: false })),
        ];
        for (mode, fields, outcome) in expect {
            let mut req = request(fields, "/");
            assert_eq!(check(&mut req, policy(mode), Seen::Parsed).outcome, outcome);
        }
        for (mode, fields) in [(Strictest, &ambiguous[..]), (Strictest, &acceptable[..])] {
            let mut req = request(fields, "/");
            assert!(matches!(
                check(&mut req, policy(mode), Seen::Parsed).outcome,
                Err(Refusal::Desync(_))
            ));
        }
    }

    #[test]
    fn a_raw_verdict_is_used_unless_fields_were_dropped() {
        let severe = Verdict {
            class: Class::Severe,
            reason: "bad_header",
        };
        let mut req = request(&[("host", "a")], "/");
        let checked = check(
            &mut req,
            policy(DesyncMitigationMode::Defensive),
            Seen::Raw(severe),
        );
        assert_eq!(checked.outcome, Err(Refusal::Desync(severe)));

        let mut req = request(&[("host", "a"), ("transfer_encoding", "chunked")], "/");
        let dropping = Policy {
            mode: DesyncMitigationMode::Strictest,
            drop_invalid_header_fields: true,
        };
        let checked = check(&mut req, dropping, Seen::Raw(severe));
        assert_eq!(checked.verdict, Some(Verdict::COMPLIANT));
        assert!(checked.outcome.is_ok());
        assert!(!req.headers().contains_key("transfer_encoding"));
    }

    #[test]
    fn encoded_control_characters_in_the_path_are_refused() {
        for bad in ["/admin%00", "/a%0a", "/a%1F", "/a%7f/b"] {
            let mut req = request(&[("host", "a")], bad);
            let checked = check(
                &mut req,
                policy(DesyncMitigationMode::Monitor),
                Seen::Parsed,
            );
            assert_eq!(checked.outcome, Err(Refusal::Path), "{bad}");
        }
        for good in ["/a%20b", "/%2e%2e/", "/a%7E", "/100%"] {
            let mut req = request(&[("host", "a")], good);
            let checked = check(
                &mut req,
                policy(DesyncMitigationMode::Monitor),
                Seen::Parsed,
            );
            assert!(checked.outcome.is_ok(), "{good}");
        }
    }

    #[test]
    fn http2_is_not_classified_but_its_host_is_checked() {
        let mut req = request(&[("host", "a"), ("host", "b")], "/");
        *req.version_mut() = Version::HTTP_2;
        let checked = check(
            &mut req,
            policy(DesyncMitigationMode::Monitor),
            Seen::Parsed,
        );
        assert_eq!(checked.verdict, None);
        assert_eq!(checked.outcome, Err(Refusal::Host(HostError::Duplicate)));
    }
}

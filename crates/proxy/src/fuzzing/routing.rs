//! What rules see of a request and what a redirect makes of it: path
//! normalisation (`routing/path.rs`), glob matching (`routing/glob.rs`), and
//! redirect templates (`ballast_config::RedirectTemplate`) expanded for a request
//! (`routing/redirect.rs`).

use std::net::{IpAddr, Ipv4Addr};

use ballast_config::{RedirectTemplate, TemplatePart};
use http::{HeaderMap, Method};

use crate::routing::glob::Glob;
use crate::routing::path::normalise;
use crate::routing::redirect::{location, Origin};
use crate::routing::{host_name, RequestView};

/// A normalised path starts with `/` and has no empty, `.` or `..` segment, no
/// path parameter and no `\`; normalising it again changes nothing, unless it
/// still holds a percent escape: a path is decoded once only, as a target decodes
/// it, so `/%252e` is `/%2e`, which a second pass would make `/` (deliberate, and
/// so not checked).
pub fn path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let once = normalise(raw);
    assert_eq!(once.first(), Some(&b'/'));
    let body = &once[1..];
    if !body.is_empty() {
        let segments = body.strip_suffix(b"/").unwrap_or(body);
        for seg in segments.split(|&b| b == b'/') {
            assert!(!matches!(seg, b"" | b"." | b".."), "segment {seg:?}");
        }
    }
    assert!(!once.contains(&b';') && !once.contains(&b'\\'));
    let escaped = once
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit());
    if let (Ok(text), false) = (std::str::from_utf8(&once), escaped) {
        assert_eq!(&*normalise(text), &*once, "idempotence");
    }
}

/// A glob against a plain dynamic-programming matcher, case-sensitive and
/// folded. The first byte splits pattern from input.
pub fn glob(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    // Patterns are at most 128 bytes (config validation).
    let at = (usize::from(first) % 129).min(rest.len());
    let (pattern, input) = rest.split_at(at);
    let Ok(pattern) = std::str::from_utf8(pattern) else {
        return;
    };
    let folded_pattern = pattern.to_ascii_lowercase();
    let folded_input = input.to_ascii_lowercase();
    assert_eq!(
        Glob::new(pattern).matches(input),
        reference(pattern.as_bytes(), input),
        "{pattern:?} against {input:?}"
    );
    assert_eq!(
        Glob::folded(pattern).matches(input),
        reference(folded_pattern.as_bytes(), &folded_input),
        "folded {pattern:?} against {input:?}"
    );
}

/// `*` any run of bytes, `?` one byte: `m[i][j]` is whether the first `i` bytes of
/// the pattern match the first `j` of the input.
fn reference(p: &[u8], s: &[u8]) -> bool {
    let mut row = vec![false; s.len() + 1];
    row[0] = true;
    for &c in p {
        let mut next = vec![false; s.len() + 1];
        for j in 0..=s.len() {
            next[j] = match c {
                b'*' => row[j] || (j > 0 && next[j - 1]),
                b'?' => j > 0 && row[j - 1],
                _ => j > 0 && row[j - 1] && s[j - 1] == c,
            };
        }
        row = next;
    }
    row[s.len()]
}

/// A template the config accepts, expanded for a request: the location is visible
/// ASCII; a relative one starts with one `/` not followed by `/` or `\`; an
/// absolute one starts with exactly the scheme and authority the template's own
/// parts give, then `/`, `?`, `#` or nothing. Lines of the input: template, host,
/// path, query; the first byte picks protocol and port.
pub fn redirect(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut lines = text.split('\n');
    let Ok(template) = RedirectTemplate::parse(lines.next().unwrap_or("")) else {
        return;
    };
    let host = lines.next();
    let path = lines.next().unwrap_or("/");
    let query = lines.next();
    let origin = Origin {
        protocol: if first & 1 == 1 { "https" } else { "http" },
        port: u16::from(first) * 251,
    };
    let headers = HeaderMap::new();
    let req = RequestView {
        method: &Method::GET,
        host,
        path,
        query,
        headers: &headers,
        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let Ok(value) = location(&template, &req, &origin) else {
        return;
    };
    let out = value.to_str().expect("a location is visible ASCII");
    assert!(out.bytes().all(|b| b.is_ascii_graphic()), "{out:?}");
    assert!(!out.contains('\\'), "{out:?}");
    if template.authority_parts == 0 {
        assert!(
            out.starts_with('/') && !out[1..].starts_with(['/', '\\']),
            "{out:?}"
        );
        return;
    }
    let mut authority = String::new();
    for part in &template.parts[..template.authority_parts] {
        match part {
            TemplatePart::Literal(l) => authority.push_str(l),
            TemplatePart::Protocol => authority.push_str(origin.protocol),
            TemplatePart::Port => authority.push_str(&origin.port.to_string()),
            TemplatePart::Host => {
                authority.push_str(&host.map(host_name).unwrap_or("").to_ascii_lowercase())
            }
            TemplatePart::Path | TemplatePart::Query => panic!("{part:?} in the authority"),
        }
    }
    let after = out
        .strip_prefix(authority.as_str())
        .expect("the template's authority");
    assert!(
        matches!(after.bytes().next(), None | Some(b'/' | b'?' | b'#')),
        "{out:?}"
    );
    assert!(!authority.contains('@'), "{out:?}");
}

//! What a connection or a client brings before any rule runs: the PROXY protocol
//! header (`frontend/proxy_protocol.rs`) and the stickiness cookie
//! (`upstream/sticky.rs`, found by `routing::action::cookie`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballast_config::resilience::{Stickiness, StickinessKind};
use http::header::{HeaderMap, HeaderValue, COOKIE};

use crate::frontend::proxy_protocol::{opens_with_header, parse, Parsed, PEEK, V2_MAX_PAYLOAD};
use crate::routing::action::cookie;
use crate::upstream::sticky::{Key, Sticky};
use crate::upstream::target::Target;

/// The header is read from peeks that grow: every prefix of the bytes gives
/// "more" or the whole input's answer, and once it answers it keeps that answer
/// as bytes arrive; what the first `PEEK` bytes do not decide is never waited
/// for; a header is at most 16 + `V2_MAX_PAYLOAD` bytes; and a connection said
/// not to open with a header does not parse as one.
pub fn proxy_header(data: &[u8]) {
    let b = &data[..data.len().min(2 * PEEK)];
    let whole = parse(b);
    let mut decided = None;
    for k in 0..=b.len() {
        let r = parse(&b[..k]);
        match (&decided, r) {
            (None, Parsed::More) => assert!(k < PEEK, "still more after {k} bytes"),
            (None, r) => {
                assert_eq!(r, whole, "after {k} bytes");
                decided = Some(r);
            }
            (Some(d), r) => assert_eq!(&r, d, "changed after {k} bytes"),
        }
    }
    if let Parsed::Header { len, .. } = whole {
        assert!(len <= 16 + V2_MAX_PAYLOAD);
    }
    if opens_with_header(b) == Some(false) {
        assert!(matches!(whole, Parsed::Invalid(_)));
    }
}

/// The cookie's value is authenticated: bytes a client makes up never name a
/// target (a forgery would need the key); a value ballast issued names its
/// target until it expires, also after the group's targets moved. The input is
/// also read as a `Cookie` header, where ballast's cookie is found as a plain
/// split would find it.
pub fn sticky_cookie(data: &[u8]) {
    const NOW: u64 = 1_700_000_000;
    let config = Stickiness {
        kind: StickinessKind::LbCookie,
        duration: Duration::from_secs(3600),
    };
    let sticky = Sticky::new(&config, "web", Arc::new(Key::new(&[7; 32])));
    let targets: Vec<Arc<Target>> = (0..3u16)
        .map(|i| {
            let addr = SocketAddr::from(([10, 0, 0, 1], 8000 + i));
            Arc::new(Target::new("web", addr, 1, Duration::from_secs(1)))
        })
        .collect();
    assert_eq!(
        sticky.named(data, &targets, NOW),
        None,
        "forged value accepted"
    );

    if data.len() >= 10 {
        let index = usize::from(data[0] % 3);
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&data[1..9]);
        let expiry = u64::from_be_bytes(expiry);
        let value = sticky.value(index, targets[index].addr, expiry);
        let moved = usize::from(data[9] % 2) * 2;
        let named = sticky.named(value.as_bytes(), &targets, NOW);
        let found = named.map(|n| (n.index, n.expiry));
        assert_eq!(found, (expiry > NOW).then_some((index, expiry)));
        // The same target at another index (the group was changed).
        let mut shuffled = targets.clone();
        shuffled.rotate_left(moved);
        let at = shuffled.iter().position(|t| t.addr == targets[index].addr);
        let named = sticky.named(value.as_bytes(), &shuffled, NOW);
        assert_eq!(named.map(|n| n.index), at.filter(|_| expiry > NOW));
    }

    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.append(COOKIE, value);
    let name = sticky.cookie_name();
    let expected = data.split(|&b| b == b';').find_map(|pair| {
        let (n, v) = split_once(pair.trim_ascii(), b'=')?;
        (n == name.as_bytes()).then_some(v)
    });
    assert_eq!(cookie(&headers, name), expected);
}

fn split_once(s: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == at)?;
    Some((&s[..i], &s[i + 1..]))
}

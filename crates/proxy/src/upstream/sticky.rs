//! Sticky sessions to a target (`stickiness` on a target group): the cookie that
//! names a client's target, and what makes it trustworthy.
//!
//! Data path (reading a cookie, issuing one) on state built by the control path
//! with the snapshot (`Sticky`, one per sticky group, holding the key).
//!
//! The cookie is `ballast-target-<group>` (beside the weighted forward's group
//! cookie `ballast-tg`; one per group, so a client routed to several sticky
//! groups keeps each of its targets). Its value is opaque and authenticated:
//!
//! ```text
//! base64url( version:1 | index:2 | expiry:8 | tag:16 )
//! tag = HMAC-SHA256(key, version | group | target address | expiry), first 16 bytes
//! ```
//!
//! The target's address appears only inside the MAC, so a client can neither read
//! it nor make up a cookie for a target of its choosing, nor carry one from another
//! group, another key, or past its expiry (seconds since the Unix epoch; an expired
//! value is ignored). `index` is the target's position in its group, a hint that
//! makes checking one MAC (a 128-bit tag, as NIST SP 800-107 allows for HMAC,
//! compared in constant time); when the group changed since the cookie was issued
//! and the hint misses, every target of the group is tried (groups are small, and
//! that happens once per client before its cookie is reissued). A changed index
//! cannot redirect a client: the tag binds the address, not the position.
//!
//! HMAC-SHA256 comes from `aws-lc-rs`, the crypto rustls already uses here (no
//! second implementation built or audited), with its constant-time comparison and
//! the OS random generator for a key kept in `state.dir` (`sticky_key.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use aws_lc_rs::{constant_time, hmac};
use ballast_config::resilience::{Stickiness, StickinessKind};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;

use crate::upstream::target::Target;

/// ballast's cookie naming the target, followed by the group's name.
pub const COOKIE_PREFIX: &str = "ballast-target-";

/// The layout's version, first byte of the value and of the MAC's input.
const VERSION: u8 = 1;
/// The tag's length: HMAC-SHA256 truncated to 128 bits.
const TAG_LEN: usize = 16;
const RAW_LEN: usize = 1 + 2 + 8 + TAG_LEN;
/// base64url without padding of `RAW_LEN` (27) bytes.
const ENCODED_LEN: usize = RAW_LEN / 3 * 4;

/// The secret that authenticates the cookies.
pub struct Key(hmac::Key);

impl Key {
    pub fn new(secret: &[u8]) -> Key {
        Key(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

/// One sticky group's cookie: its name, its attributes, its key.
pub struct Sticky {
    key: Arc<Key>,
    group: String,
    cookie_name: String,
    /// `app_cookie`: the application's session cookie.
    app_cookie: Option<String>,
    /// The stickiness duration, in seconds.
    duration: u64,
    /// `; Max-Age=N; Path=/; HttpOnly; SameSite=Lax`.
    attributes: String,
    /// The last cookie line issued per slot (target index modulo the slots),
    /// reused while the second, the target and the scheme are the same. Issuing
    /// is a MAC, a base64 and a string (about 600 ns, 6% of a small request),
    /// and a client that sends no cookie back gets one with every response; a
    /// hit is one load and a reference count.
    issued: Box<[ArcSwapOption<Issued>]>,
}

/// A cookie line as issued, and what it was issued for.
struct Issued {
    now: u64,
    index: usize,
    addr: SocketAddr,
    secure: bool,
    line: HeaderValue,
}

/// Slots of the issued-cookie cache per sticky group.
const ISSUED_SLOTS: usize = 64;

/// What a request's cookie names: a target of the group, and when that ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Named {
    pub index: usize,
    pub expiry: u64,
}

impl Sticky {
    pub fn new(config: &Stickiness, group: &str, key: Arc<Key>) -> Sticky {
        let duration = config.duration.as_secs();
        Sticky {
            key,
            group: group.to_string(),
            cookie_name: format!("{COOKIE_PREFIX}{group}"),
            app_cookie: match &config.kind {
                StickinessKind::LbCookie => None,
                StickinessKind::AppCookie { cookie_name } => Some(cookie_name.clone()),
            },
            duration,
            attributes: format!("; Max-Age={duration}; Path=/; HttpOnly; SameSite=Lax"),
            issued: (0..ISSUED_SLOTS).map(|_| ArcSwapOption::empty()).collect(),
        }
    }

    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// The application's cookie, for `app_cookie`; `None` for `lb_cookie`.
    pub fn app_cookie(&self) -> Option<&str> {
        self.app_cookie.as_deref()
    }

    /// The target a cookie value names, when it is authentic, for this group, and
    /// not expired at `now` (seconds since the Unix epoch).
    pub fn named(&self, value: &[u8], targets: &[Arc<Target>], now: u64) -> Option<Named> {
        let (index, expiry, tag) = decode(value)?;
        if expiry <= now {
            return None;
        }
        let authentic = |t: &Target| {
            let mac = self.tag(t.addr, expiry);
            constant_time::verify_slices_are_equal(&mac.as_ref()[..TAG_LEN], &tag).is_ok()
        };
        let index = match targets.get(index) {
            Some(t) if authentic(t) => index,
            _ => targets.iter().position(|t| authentic(t))?,
        };
        Some(Named { index, expiry })
    }

    /// Whether a cookie is worth issuing again although it names the target that
    /// served: less than half its duration is left. An active client so keeps its
    /// target; one idle for a whole duration starts over.
    pub fn stale(&self, named: Named, now: u64) -> bool {
        named.expiry.saturating_sub(now) < self.duration / 2
    }

    /// The `Set-Cookie` naming the target at `index` (address `addr`) for the
    /// stickiness duration from `now`; `Secure` on an https listener.
    pub fn set_cookie(
        &self,
        index: usize,
        addr: SocketAddr,
        now: u64,
        secure: bool,
    ) -> Option<HeaderValue> {
        let slot = &self.issued[index % ISSUED_SLOTS];
        if let Some(hit) = slot.load().as_ref() {
            if (hit.now, hit.index, hit.addr, hit.secure) == (now, index, addr, secure) {
                return Some(hit.line.clone());
            }
        }
        let value = self.value(index, addr, now.saturating_add(self.duration));
        let attribute = if secure { "; Secure" } else { "" };
        let line = format!("{}={value}{}{attribute}", self.cookie_name, self.attributes);
        let line = HeaderValue::try_from(line).ok()?;
        slot.store(Some(Arc::new(Issued {
            now,
            index,
            addr,
            secure,
            line: line.clone(),
        })));
        Some(line)
    }

    /// The cookie's value naming target `index` at `addr` until `expiry`.
    pub fn value(&self, index: usize, addr: SocketAddr, expiry: u64) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[0] = VERSION;
        raw[1..3].copy_from_slice(&u16::try_from(index).unwrap_or(u16::MAX).to_be_bytes());
        raw[3..11].copy_from_slice(&expiry.to_be_bytes());
        raw[11..].copy_from_slice(&self.tag(addr, expiry).as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// HMAC(key, version | group name (length first) | address | expiry).
    fn tag(&self, addr: SocketAddr, expiry: u64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key.0);
        // Group names are at most 64 bytes (config validation).
        ctx.update(&[VERSION, self.group.len() as u8]);
        ctx.update(self.group.as_bytes());
        match addr {
            SocketAddr::V4(a) => {
                ctx.update(&[4]);
                ctx.update(&a.ip().octets());
            }
            SocketAddr::V6(a) => {
                ctx.update(&[6]);
                ctx.update(&a.ip().octets());
            }
        }
        ctx.update(&addr.port().to_be_bytes());
        ctx.update(&expiry.to_be_bytes());
        ctx.sign()
    }
}

/// Index, expiry and tag of a well-formed value of this version.
fn decode(value: &[u8]) -> Option<(usize, u64, [u8; TAG_LEN])> {
    if value.len() != ENCODED_LEN {
        return None;
    }
    let mut raw = [0u8; RAW_LEN];
    let n = URL_SAFE_NO_PAD.decode_slice(value, &mut raw).ok()?;
    if n != RAW_LEN || raw[0] != VERSION {
        return None;
    }
    let index = usize::from(u16::from_be_bytes([raw[1], raw[2]]));
    let mut expiry = [0u8; 8];
    expiry.copy_from_slice(&raw[3..11]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&raw[11..]);
    Some((index, u64::from_be_bytes(expiry), tag))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn sticky(group: &str, secret: &[u8]) -> Sticky {
        let config = Stickiness {
            kind: StickinessKind::LbCookie,
            duration: Duration::from_secs(3600),
        };
        Sticky::new(&config, group, Arc::new(Key::new(secret)))
    }

    fn targets(n: u16) -> Vec<Arc<Target>> {
        (0..n)
            .map(|i| {
                let addr = SocketAddr::from(([127, 0, 0, 1], 9000 + i));
                Arc::new(Target::new("web", addr, 1, Duration::from_secs(1)))
            })
            .collect()
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_value_names_its_target_until_it_expires() {
        let s = sticky("web", SECRET);
        let ts = targets(3);
        let v = s.value(1, ts[1].addr, NOW + 100);
        assert_eq!(v.len(), ENCODED_LEN);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let named = s.named(v.as_bytes(), &ts, NOW);
        assert_eq!(
            named,
            Some(Named {
                index: 1,
                expiry: NOW + 100
            })
        );
        assert_eq!(s.named(v.as_bytes(), &ts, NOW + 100), None, "expired");
        assert_eq!(s.named(v.as_bytes(), &ts, NOW + 101), None, "expired");
    }

    #[test]
    fn the_address_cannot_be_read_from_the_value() {
        let s = sticky("web", SECRET);
        let addr = SocketAddr::from(([10, 1, 2, 3], 8080));
        let raw = URL_SAFE_NO_PAD
            .decode(s.value(0, addr, NOW + 100))
            .expect("base64");
        let octets = [10u8, 1, 2, 3];
        assert!(!raw.windows(4).any(|w| w == octets));
        assert!(!raw.windows(2).any(|w| w == 8080u16.to_be_bytes()));
    }

    #[test]
    fn a_moved_target_is_found_by_its_address() {
        let s = sticky("web", SECRET);
        let ts = targets(4);
        let v = s.value(3, ts[3].addr, NOW + 100);
        // A reload removed the first target: the old index no longer matches.
        let after: Vec<_> = ts[1..].to_vec();
        assert_eq!(s.named(v.as_bytes(), &after, NOW).map(|n| n.index), Some(2));
        // The target is gone altogether.
        assert_eq!(s.named(v.as_bytes(), &ts[..3], NOW), None);
    }

    #[test]
    fn forged_tampered_or_foreign_values_name_nothing() {
        let s = sticky("web", SECRET);
        let ts = targets(3);
        let good = s.value(0, ts[0].addr, NOW + 100);
        // Every single flipped character of the tag.
        for i in 15..ENCODED_LEN {
            let mut b = good.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            assert_eq!(s.named(&b, &ts, NOW), None, "tag char {i} changed");
        }
        // A later expiry with the old tag.
        let mut raw = URL_SAFE_NO_PAD.decode(&good).expect("base64");
        raw[10] ^= 1;
        assert_eq!(
            s.named(URL_SAFE_NO_PAD.encode(&raw).as_bytes(), &ts, NOW),
            None
        );
        // Another index with its tag: still the target the tag names, never index 2.
        let mut raw = URL_SAFE_NO_PAD.decode(&good).expect("base64");
        raw[2] = 2;
        let moved = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(
            s.named(moved.as_bytes(), &ts, NOW).map(|n| n.index),
            Some(0)
        );
        // Another key, another group.
        let other_key = sticky("web", b"another secret of thirty-two bytes!");
        let v = other_key.value(1, ts[1].addr, NOW + 100);
        assert_eq!(s.named(v.as_bytes(), &ts, NOW), None);
        let other_group = sticky("api", SECRET);
        let v = other_group.value(1, ts[1].addr, NOW + 100);
        assert_eq!(s.named(v.as_bytes(), &ts, NOW), None);
        // Junk of every kind.
        for junk in [
            &b""[..],
            b"x",
            b"not base64 at all, but 36 chars long",
            &[0xff; 36],
        ] {
            assert_eq!(s.named(junk, &ts, NOW), None);
        }
        let mut raw = URL_SAFE_NO_PAD.decode(&good).expect("base64");
        raw[0] = 2;
        let v2 = URL_SAFE_NO_PAD.encode(&raw);
        assert_eq!(s.named(v2.as_bytes(), &ts, NOW), None, "unknown version");
    }

    #[test]
    fn the_cookie_line_has_its_attributes_and_secure_on_https() {
        let s = sticky("web", SECRET);
        let ts = targets(1);
        let line = s.set_cookie(0, ts[0].addr, NOW, false).expect("header");
        let line = line.to_str().expect("ascii");
        let value = line
            .strip_prefix("ballast-target-web=")
            .and_then(|l| l.split(';').next())
            .expect("name");
        assert_eq!(
            s.named(value.as_bytes(), &ts, NOW).map(|n| n.expiry),
            Some(NOW + 3600)
        );
        assert!(
            line.ends_with("; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax"),
            "{line}"
        );
        let https = s.set_cookie(0, ts[0].addr, NOW, true).expect("header");
        assert!(https
            .to_str()
            .expect("ascii")
            .ends_with("; SameSite=Lax; Secure"));
    }

    /// Within one second the same target gets the same line, from the cache; a
    /// new second, another target or scheme gets its own.
    #[test]
    fn issued_lines_are_reused_within_a_second() {
        let s = sticky("web", &[7; 32]);
        let ts = targets(2);
        let a = s.set_cookie(0, ts[0].addr, 1_000, false).expect("line");
        let again = s.set_cookie(0, ts[0].addr, 1_000, false).expect("line");
        assert_eq!(a, again);
        assert_eq!(
            a.as_bytes().as_ptr(),
            again.as_bytes().as_ptr(),
            "shared, not rebuilt"
        );
        let later = s.set_cookie(0, ts[0].addr, 1_001, false).expect("line");
        assert_ne!(a, later);
        let other = s.set_cookie(1, ts[1].addr, 1_000, false).expect("line");
        assert_ne!(a, other);
        let secure = s.set_cookie(0, ts[0].addr, 1_000, true).expect("line");
        assert!(secure.to_str().expect("ascii").ends_with("; Secure"));
        // What was cached still names its target.
        let value = a
            .to_str()
            .expect("ascii")
            .split(['=', ';'])
            .nth(1)
            .expect("value");
        let named = s.named(value.as_bytes(), &ts, 1_000).expect("authentic");
        assert_eq!(named.index, 0);
    }

    #[test]
    fn a_cookie_is_stale_past_half_its_duration() {
        let s = sticky("web", SECRET);
        let named = |left| Named {
            index: 0,
            expiry: NOW + left,
        };
        assert!(!s.stale(named(3600), NOW));
        assert!(!s.stale(named(1800), NOW));
        assert!(s.stale(named(1799), NOW));
    }
}

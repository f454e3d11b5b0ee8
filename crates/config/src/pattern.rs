//! The small languages inside rule conditions and actions: CIDR ranges, glob
//! patterns and redirect templates. Each is parsed here once, at config time, with
//! an error message that says what is allowed; the proxy compiles the result.
//!
//! Control path, except [`Cidr::contains`], which the data path calls. Written by
//! hand: each is a few dozen lines, and the accepted grammar is part of the contract.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// An IPv4 or IPv6 address range, `10.0.0.0/8` or `2001:db8::/32`. A bare address
/// is a range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub const ALLOWED: &'static str =
        "an IPv4 or IPv6 range such as \"10.0.0.0/8\" or \"2001:db8::/32\", or one address";

    /// Parse a range; host bits must be zero (`10.0.0.1/8` is a typo more often than
    /// not, so it is refused with the range it probably means).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("invalid CIDR {text:?}; expected {}", Self::ALLOWED))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "invalid prefix length in {text:?}; allowed: 0 to {max}"
                    ))
                }
            },
        };
        let cidr = Cidr { addr, prefix };
        let network = cidr.network();
        if network != addr {
            return Err(format!(
                "{text:?} has host bits set; did you mean \"{network}/{prefix}\"?"
            ));
        }
        Ok(cidr)
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => Ipv4Addr::from(u32::from(a) & mask32(self.prefix)).into(),
            IpAddr::V6(a) => Ipv6Addr::from(u128::from(a) & mask128(self.prefix)).into(),
        }
    }

    /// Whether `ip` is in the range. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
    /// what a dual-stack socket reports for an IPv4 client) counts as its IPv4 form.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where a glob is used; each place allows its own characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobKind {
    Host,
    Path,
    /// Header values and query keys and values.
    Value,
}

pub const MAX_GLOB: usize = 128;

/// Check a glob pattern (`*` any run of characters, `?` one); `Err` says why not.
pub fn check_glob(pattern: &str, kind: GlobKind) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid pattern {pattern:?}: {why}"));
    if pattern.is_empty() {
        return bad("empty");
    }
    if pattern.len() > MAX_GLOB {
        return bad(&format!("longer than {MAX_GLOB} bytes"));
    }
    if pattern.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    if pattern.contains("**") {
        return bad("`**` is not a pattern here; a single `*` already matches any run of characters, `/` included");
    }
    match kind {
        GlobKind::Path if !pattern.starts_with(['/', '*']) => {
            bad("a path pattern starts with `/` (or `*`)")
        }
        GlobKind::Path if pattern.contains(' ') => bad("spaces are not allowed"),
        GlobKind::Host if pattern.contains(':') => {
            bad("host patterns match the host without its port; remove `:PORT`")
        }
        GlobKind::Host
            if !pattern
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.*?".contains(&b)) =>
        {
            bad("allowed: letters, digits, `-`, `.`, and the wildcards `*` and `?`")
        }
        _ => Ok(()),
    }
}

/// A redirect's `location`: text with `#{protocol}`, `#{host}`, `#{port}`, `#{path}`
/// and `#{query}` in it.
///
/// Checked so that expansion can never change where the redirect points beyond what
/// the operator wrote: the template is absolute (`http://`, `https://` or
/// `#{protocol}://`, then an authority made only of literal host characters,
/// `#{host}` and `#{port}`) or a path starting with exactly one `/`. `#{path}` and
/// `#{query}` may only stand after the authority. The proxy escapes what it puts in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectTemplate {
    text: String,
    /// The template cut into literals and placeholders.
    pub parts: Vec<TemplatePart>,
    /// How many leading parts make `scheme://authority`; 0 for a relative template.
    pub authority_parts: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Protocol,
    Host,
    Port,
    Path,
    Query,
}

impl RedirectTemplate {
    pub const ALLOWED: &'static str = "an absolute URL (\"https://#{host}/new#{path}\") or a path starting with one `/` (\"/new#{path}?#{query}\"); placeholders #{protocol}, #{host}, #{port}, #{path}, #{query}";

    pub fn parse(text: &str) -> Result<RedirectTemplate, String> {
        let bad = |why: &str| {
            Err(format!(
                "invalid redirect location {text:?}: {why}; expected {}",
                Self::ALLOWED
            ))
        };
        if text.len() > 2048 {
            return bad("longer than 2048 bytes");
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) || text.contains('\\') {
            return bad(
                "only visible ASCII without `\\` is allowed (no spaces, no control characters)",
            );
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find("#{") {
                Some(0) => {
                    let Some(end) = rest.find('}') else {
                        return bad("`#{` without a closing `}`");
                    };
                    parts.push(match &rest[2..end] {
                        "protocol" => TemplatePart::Protocol,
                        "host" => TemplatePart::Host,
                        "port" => TemplatePart::Port,
                        "path" => TemplatePart::Path,
                        "query" => TemplatePart::Query,
                        other => return bad(&format!("unknown placeholder #{{{other}}}")),
                    });
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    parts.push(TemplatePart::Literal(rest[..end].to_string()));
                    rest = &rest[end..];
                }
            }
        }
        let authority_parts = match authority_end(&parts) {
            Err(why) => return bad(&why),
            Ok(None) => 0,
            Ok(Some((i, 0))) => i,
            Ok(Some((i, at))) => {
                // Split the literal that holds the end of the authority there.
                if let Some(TemplatePart::Literal(l)) = parts.get_mut(i) {
                    let tail = l.split_off(at);
                    parts.insert(i + 1, TemplatePart::Literal(tail));
                }
                i + 1
            }
        };
        Ok(RedirectTemplate {
            text: text.to_string(),
            parts,
            authority_parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Where the authority of an absolute template ends, as (part, byte offset in that
/// part); `None` for a template that is a path.
fn authority_end(parts: &[TemplatePart]) -> Result<Option<(usize, usize)>, String> {
    let (mut i, mut off) = match parts.first() {
        Some(TemplatePart::Literal(l)) if l.starts_with("http://") || l.starts_with("https://") => {
            (0, l.find("://").map_or(0, |k| k + 3))
        }
        Some(TemplatePart::Protocol) => match parts.get(1) {
            Some(TemplatePart::Literal(l)) if l.starts_with("://") => (1, 3),
            _ => return Err("#{protocol} must be followed by `://`".into()),
        },
        Some(TemplatePart::Literal(l)) if l.starts_with("//") => {
            return Err("a location starting with `//` leaves the scheme to the client".into())
        }
        Some(TemplatePart::Literal(l)) if l.starts_with('/') => return Ok(None),
        _ => return Err("it is neither absolute nor a path".into()),
    };
    let empty_authority = || Err("the authority (host) after `://` is empty".to_string());
    let mut empty = true;
    while let Some(part) = parts.get(i) {
        match part {
            TemplatePart::Literal(l) => {
                for (k, b) in l.bytes().enumerate().skip(off) {
                    if b"/?#".contains(&b) {
                        return if empty {
                            empty_authority()
                        } else {
                            Ok(Some((i, k)))
                        };
                    }
                    if !(b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) {
                        return Err(format!(
                            "{:?} is not allowed in the authority (no user info, only host and port)",
                            b as char
                        ));
                    }
                    empty = false;
                }
            }
            TemplatePart::Host | TemplatePart::Port => empty = false,
            // The path always expands to something that starts with `/`.
            TemplatePart::Path if !empty => return Ok(Some((i, 0))),
            TemplatePart::Path | TemplatePart::Query | TemplatePart::Protocol => {
                return Err(
                    "only #{host}, #{port} and literal host characters may form the authority"
                        .into(),
                )
            }
        }
        i += 1;
        off = 0;
    }
    if empty {
        return empty_authority();
    }
    Ok(Some((parts.len(), 0)))
}

impl Serialize for RedirectTemplate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_v4_and_v6() {
        let net = Cidr::parse("10.0.0.0/8").expect("valid");
        assert!(net.contains("10.1.2.3".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
        assert!(
            net.contains("::ffff:10.9.9.9".parse().expect("ip")),
            "v4-mapped"
        );
        let v6 = Cidr::parse("2001:db8::/32").expect("valid");
        assert!(v6.contains("2001:db8:1::1".parse().expect("ip")));
        assert!(!v6.contains("2001:db9::1".parse().expect("ip")));
        assert!(!v6.contains("10.1.2.3".parse().expect("ip")));
        let all = Cidr::parse("0.0.0.0/0").expect("valid");
        assert!(all.contains("255.255.255.255".parse().expect("ip")));
        let one = Cidr::parse("192.168.1.7").expect("valid");
        assert!(one.contains("192.168.1.7".parse().expect("ip")));
        assert!(!one.contains("192.168.1.8".parse().expect("ip")));
        assert!(Cidr::parse("::/0")
            .expect("valid")
            .contains("::1".parse().expect("ip")));
        assert_eq!(
            Cidr::parse("2001:db8::/32").expect("v").to_string(),
            "2001:db8::/32"
        );
    }

    #[test]
    fn cidr_errors() {
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "a/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
        let e = Cidr::parse("10.0.0.1/8").expect_err("host bits");
        assert!(e.contains("did you mean \"10.0.0.0/8\""), "{e}");
    }

    #[test]
    fn globs() {
        assert!(check_glob("/api/*", GlobKind::Path).is_ok());
        assert!(check_glob("*.example.com", GlobKind::Host).is_ok());
        assert!(check_glob("a?c", GlobKind::Value).is_ok());
        for (bad, kind) in [
            ("", GlobKind::Path),
            ("api/*", GlobKind::Path),
            ("/a/**", GlobKind::Path),
            ("/a b", GlobKind::Path),
            ("example.com:8080", GlobKind::Host),
            ("ex_ample.com", GlobKind::Host),
            ("a\u{7}", GlobKind::Value),
        ] {
            assert!(check_glob(bad, kind).is_err(), "{bad:?}");
        }
        assert!(check_glob(&"a".repeat(129), GlobKind::Value).is_err());
    }

    #[test]
    fn templates() {
        let t = RedirectTemplate::parse("https://#{host}/new#{path}").expect("valid");
        assert_eq!(t.authority_parts, 2);
        let t = RedirectTemplate::parse("https://example.com/x?#{query}").expect("valid");
        assert_eq!(t.authority_parts, 1);
        assert_eq!(
            t.parts[..2],
            [
                TemplatePart::Literal("https://example.com".into()),
                TemplatePart::Literal("/x?".into())
            ]
        );
        let t = RedirectTemplate::parse("#{protocol}://#{host}:#{port}#{path}").expect("valid");
        assert_eq!(t.authority_parts, 5);
        let t = RedirectTemplate::parse("/new#{path}?#{query}").expect("valid");
        assert_eq!(t.authority_parts, 0);
        assert!(RedirectTemplate::parse("https://a.example#{path}").is_ok());
        for bad in [
            "",
            "//evil.com/",
            "new/path",
            "#{path}",
            "ftp://x/",
            "https://",
            "https:///x",
            "https://#{path}",
            "https://#{host}#{query}",
            "https://user@#{host}/",
            "https://#{host}/#{nope}",
            "https://#{host}/#{path",
            "/a b",
            "/a\\b",
            "#{protocol}#{host}/",
            "#{host}/x",
        ] {
            assert!(
                RedirectTemplate::parse(bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }
}

//! The small languages inside rule conditions: CIDR ranges and glob patterns (the
//! redirect template is in `template.rs`). Each is checked here once, at config
//! time, with an error message that says what is allowed; the proxy compiles them.
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

    /// The range's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length (32 or 128 for one address).
    pub fn prefix(&self) -> u8 {
        self.prefix
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
}

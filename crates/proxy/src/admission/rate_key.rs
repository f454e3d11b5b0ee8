//! What a request counts against in a rate limit: the parts of the limit's key
//! (client address or network, a header's value, the rule that matched) hashed
//! into one 64-bit number.
//!
//! Data path. Compiled once per limit from its config (header names parsed), and
//! hashed per request with the limit's own seeded SipHash (`rate_limit.rs` says
//! why). Each part is written with a distinct leading byte, so that no value of
//! one part can stand for another's. A request without a header the key names
//! is not counted by the limit at all (Envoy's descriptors do the same): the key
//! is `None`. An IPv4-mapped IPv6 address counts as its IPv4 form, as rule
//! conditions read it.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

use ballast_config::limits::KeyPart;
use http::{HeaderMap, HeaderName};

/// One part of a key, compiled.
enum Part {
    ClientIp,
    Prefix { v4: u32, v6: u128 },
    Header(HeaderName),
    Rule,
}

/// A limit's key, compiled.
pub struct KeySpec(Box<[Part]>);

/// What a request offers a key.
pub struct Facts<'a> {
    pub client: IpAddr,
    pub headers: &'a HeaderMap,
    /// The priority of the rule that matched; 0 for the listener's default action.
    pub rule: u32,
}

impl KeySpec {
    pub fn new(parts: &[KeyPart]) -> KeySpec {
        let parts = parts
            .iter()
            .filter_map(|p| match p {
                KeyPart::ClientIp => Some(Part::ClientIp),
                KeyPart::ClientIpPrefix { v4, v6 } => Some(Part::Prefix {
                    v4: u32::MAX.checked_shl(32 - u32::from(*v4)).unwrap_or(0),
                    v6: u128::MAX.checked_shl(128 - u32::from(*v6)).unwrap_or(0),
                }),
                // Validated as a token by the config; lowercase already.
                KeyPart::Header(name) => HeaderName::from_bytes(name.as_bytes())
                    .ok()
                    .map(Part::Header),
                KeyPart::Rule => Some(Part::Rule),
            })
            .collect();
        KeySpec(parts)
    }

    /// The request's key under `seed`, or `None` when a header of the key is
    /// missing (the limit does not apply).
    pub fn hash(&self, seed: &impl BuildHasher, facts: &Facts<'_>) -> Option<u64> {
        let mut h = seed.build_hasher();
        for part in self.0.iter() {
            match part {
                Part::ClientIp => match facts.client.to_canonical() {
                    IpAddr::V4(a) => (1u8, a.octets()).hash(&mut h),
                    IpAddr::V6(a) => (2u8, a.octets()).hash(&mut h),
                },
                Part::Prefix { v4, v6 } => match facts.client.to_canonical() {
                    IpAddr::V4(a) => (3u8, u32::from(a) & v4).hash(&mut h),
                    IpAddr::V6(a) => (4u8, u128::from(a) & v6).hash(&mut h),
                },
                Part::Header(name) => {
                    let value = facts.headers.get(name)?;
                    (5u8, value.as_bytes()).hash(&mut h);
                }
                Part::Rule => (6u8, facts.rule).hash(&mut h),
            }
        }
        Some(h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;

    fn facts<'a>(ip: &str, headers: &'a HeaderMap, rule: u32) -> Facts<'a> {
        Facts {
            client: ip.parse().expect("ip"),
            headers,
            rule,
        }
    }

    #[test]
    fn parts_select_what_they_name() {
        let seed = RandomState::new();
        let none = HeaderMap::new();
        let mut keyed = HeaderMap::new();
        keyed.insert("x-api-key", "k1".parse().expect("value"));
        let ip = KeySpec::new(&[KeyPart::ClientIp]);
        let h = |spec: &KeySpec, f: &Facts<'_>| spec.hash(&seed, f);
        assert_eq!(
            h(&ip, &facts("10.0.0.1", &none, 0)),
            h(&ip, &facts("::ffff:10.0.0.1", &keyed, 7))
        );
        assert_ne!(
            h(&ip, &facts("10.0.0.1", &none, 0)),
            h(&ip, &facts("10.0.0.2", &none, 0))
        );
        let net = KeySpec::new(&[KeyPart::ClientIpPrefix { v4: 24, v6: 64 }]);
        assert_eq!(
            h(&net, &facts("10.0.0.1", &none, 0)),
            h(&net, &facts("10.0.0.200", &none, 0))
        );
        assert_ne!(
            h(&net, &facts("10.0.0.1", &none, 0)),
            h(&net, &facts("10.0.1.1", &none, 0))
        );
        assert_eq!(
            h(&net, &facts("2001:db8::1", &none, 0)),
            h(&net, &facts("2001:db8::ffff:1", &none, 0))
        );
        assert_ne!(
            h(&net, &facts("2001:db8::1", &none, 0)),
            h(&net, &facts("2001:db8:0:1::1", &none, 0))
        );
        let both = KeySpec::new(&[KeyPart::ClientIp, KeyPart::Header("x-api-key".into())]);
        assert_eq!(h(&both, &facts("10.0.0.1", &none, 0)), None);
        let mut other = HeaderMap::new();
        other.insert("x-api-key", "k2".parse().expect("value"));
        assert_ne!(
            h(&both, &facts("10.0.0.1", &keyed, 0)),
            h(&both, &facts("10.0.0.1", &other, 0))
        );
        let rule = KeySpec::new(&[KeyPart::Rule]);
        assert_ne!(
            h(&rule, &facts("10.0.0.1", &none, 0)),
            h(&rule, &facts("10.0.0.1", &none, 3))
        );
        // Another seed, another hash: a client cannot compute where it lands.
        assert_ne!(
            ip.hash(&RandomState::new(), &facts("10.0.0.1", &none, 0)),
            h(&ip, &facts("10.0.0.1", &none, 0))
        );
    }
}

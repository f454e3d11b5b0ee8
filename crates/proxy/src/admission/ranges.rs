//! A set of address ranges (CIDRs) compiled for lookup: the listener's allow and
//! deny lists and the PROXY protocol's trusted sources.
//!
//! Built on the control path when a config is applied, then immutable. Each
//! range becomes an interval of integers (IPv4 as `u32`, IPv6 as `u128`);
//! overlapping and adjacent intervals are merged and sorted, so a lookup is one
//! binary search: O(log n) comparisons over n merged intervals (a list of 1,000
//! ranges is 10 steps), no allocation, no hashing, no lock. An IPv4-mapped IPv6
//! address (`::ffff:a.b.c.d`, what a dual-stack socket reports for an IPv4
//! client) is looked up as its IPv4 form, as `Cidr::contains` does for rules.

use std::net::IpAddr;

use ballast_config::Cidr;

/// Merged, sorted, disjoint inclusive intervals of each family.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ranges {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Ranges {
    pub fn new(cidrs: &[Cidr]) -> Ranges {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for c in cidrs {
            match c.addr() {
                IpAddr::V4(a) => {
                    let start = u32::from(a);
                    let host = u32::MAX.checked_shr(u32::from(c.prefix())).unwrap_or(0);
                    v4.push((start, start | host));
                }
                IpAddr::V6(a) => {
                    let start = u128::from(a);
                    let host = u128::MAX.checked_shr(u32::from(c.prefix())).unwrap_or(0);
                    v6.push((start, start | host));
                }
            }
        }
        Ranges {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => within(&self.v4, u32::from(a)),
            IpAddr::V6(a) => within(&self.v6, u128::from(a)),
        }
    }
}

/// Sort and merge overlapping or adjacent intervals.
fn merge<T: Copy + Ord + num_like::Succ>(mut v: Vec<(T, T)>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for (start, end) in v {
        match out.last_mut() {
            Some(last) if last.1.succ().is_none_or(|next| start <= next) => {
                last.1 = last.1.max(end);
            }
            _ => out.push((start, end)),
        }
    }
    out.shrink_to_fit();
    out
}

/// Whether `x` lies in one of the sorted disjoint intervals.
fn within<T: Copy + Ord>(v: &[(T, T)], x: T) -> bool {
    // The first interval starting after `x`; the one before it is the only one
    // that may hold it.
    let after = v.partition_point(|&(start, _)| start <= x);
    after > 0 && v[after - 1].1 >= x
}

mod num_like {
    /// The next integer, if there is one.
    pub trait Succ: Sized {
        fn succ(self) -> Option<Self>;
    }

    impl Succ for u32 {
        fn succ(self) -> Option<u32> {
            self.checked_add(1)
        }
    }

    impl Succ for u128 {
        fn succ(self) -> Option<u128> {
            self.checked_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[&str]) -> Ranges {
        let cidrs: Vec<Cidr> = list.iter().map(|s| Cidr::parse(s).expect("cidr")).collect();
        Ranges::new(&cidrs)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn membership_at_the_edges_of_each_range() {
        let r = ranges(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]);
        for inside in [
            "10.0.0.0",
            "10.255.255.255",
            "192.168.1.7",
            "2001:db8::",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:10.1.2.3",
        ] {
            assert!(r.contains(ip(inside)), "{inside}");
        }
        for outside in [
            "9.255.255.255",
            "11.0.0.0",
            "192.168.1.6",
            "192.168.1.8",
            "2001:db9::",
            "::a00:1", // the IPv4-compatible form is not the mapped one
        ] {
            assert!(!r.contains(ip(outside)), "{outside}");
        }
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let r = ranges(&["10.1.0.0/16", "10.0.0.0/8", "11.0.0.0/8", "12.0.0.1"]);
        assert_eq!(
            r.v4,
            vec![(0x0a00_0000, 0x0bff_ffff), (0x0c00_0001, 0x0c00_0001)]
        );
        let all = ranges(&["0.0.0.0/0", "255.255.255.255", "::/0"]);
        assert_eq!(all.v4, vec![(0, u32::MAX)]);
        assert!(all.contains(ip("255.255.255.255")));
        assert!(all.contains(ip("::1")));
        assert!(ranges(&[]).is_empty());
        assert!(!ranges(&[]).contains(ip("127.0.0.1")));
    }

    /// The table agrees with the plain list scan on many addresses.
    #[test]
    fn agrees_with_a_linear_scan() {
        let list = [
            "10.0.0.0/8",
            "10.2.0.0/16",
            "172.16.0.0/12",
            "192.0.2.0/24",
            "198.51.100.128/25",
            "203.0.113.7",
            "fd00::/8",
            "2001:db8:1::/48",
        ];
        let cidrs: Vec<Cidr> = list.iter().map(|s| Cidr::parse(s).expect("c")).collect();
        let table = Ranges::new(&cidrs);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bias towards the interesting prefixes.
            let hi = [10u32, 172, 192, 198, 203][(x % 5) as usize] << 24;
            let v4 = IpAddr::from(std::net::Ipv4Addr::from(hi | (x >> 40) as u32));
            let v6 = IpAddr::from(std::net::Ipv6Addr::from(
                (((u128::from(x) << 64) | u128::from(x.rotate_left(7))) & !(0xffu128 << 120))
                    | (((x as u128 & 1) * 0xfd) << 120),
            ));
            for a in [v4, v6] {
                let scan = cidrs.iter().any(|c| c.contains(a));
                assert_eq!(table.contains(a), scan, "{a}");
            }
        }
    }
}

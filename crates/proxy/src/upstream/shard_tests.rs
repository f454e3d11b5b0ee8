//! Shard selection: stable per key, even over the targets, and minimal movement
//! when a target comes or goes (the rendezvous property).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use ballast_config::shuffle_shard::{ShardKey, ShuffleShard};
use http::HeaderValue;

use super::*;

fn targets(n: u16) -> Vec<Arc<Target>> {
    (0..n)
        .map(|i| {
            let addr: SocketAddr = format!("10.0.0.{}:8080", i + 1).parse().expect("addr");
            Arc::new(Target::new("g", addr, 1, Duration::from_secs(1)))
        })
        .collect()
}

fn config(size: u32) -> ShuffleShard {
    ShuffleShard {
        key: ShardKey::Header("x-tenant".into()),
        size,
        fail_open: true,
    }
}

fn table(ts: &[Arc<Target>], size: u32) -> Sharding {
    Sharding::new(&config(size), ts, |_| true)
}

/// A key's shard as the set of its targets' addresses.
fn addrs(s: &Sharding, ts: &[Arc<Target>], key: &str) -> BTreeSet<SocketAddr> {
    let h = fmix64(fnv1a(key.as_bytes()));
    s.shard(h)
        .members()
        .iter()
        .map(|&i| ts[usize::from(i)].addr)
        .collect()
}

#[test]
fn a_key_always_gets_the_same_shard_of_distinct_targets() {
    let ts = targets(8);
    let s = table(&ts, 2);
    for k in 0..1000 {
        let key = format!("tenant-{k}");
        let a = addrs(&s, &ts, &key);
        assert_eq!(a.len(), 2, "two distinct targets");
        assert_eq!(a, addrs(&s, &ts, &key));
        // Another table over the same targets (another node, a reload) agrees.
        assert_eq!(a, addrs(&table(&ts, 2), &ts, &key));
    }
}

/// The hash is fixed: this shard must not change between builds or versions
/// (every node of a fleet has to agree with every other).
#[test]
fn the_hash_is_fixed() {
    let ts = targets(8);
    let got = addrs(&table(&ts, 2), &ts, "acme");
    let want: BTreeSet<SocketAddr> = GOLDEN.iter().map(|a| a.parse().expect("addr")).collect();
    assert_eq!(got, want);
}

/// Also what `bench/shuffle-shard.py`'s own implementation of the hash gives.
const GOLDEN: [&str; 2] = ["10.0.0.2:8080", "10.0.0.5:8080"];

/// Over many keys each target is in about size/N of the shards, and each of the
/// C(8,2) = 28 pairs is about 1/28 of them.
#[test]
fn shards_spread_evenly() {
    let ts = targets(8);
    let s = table(&ts, 2);
    let keys = 28_000;
    let mut per_target = [0u32; 8];
    let mut per_pair = std::collections::BTreeMap::new();
    for k in 0..keys {
        let h = fmix64(fnv1a(format!("t{k}").as_bytes()));
        let shard = s.shard(h);
        for &m in shard.members() {
            per_target[usize::from(m)] += 1;
        }
        let mut pair = [shard.members()[0], shard.members()[1]];
        pair.sort();
        *per_pair.entry(pair).or_insert(0u32) += 1;
    }
    for c in per_target {
        let share = f64::from(c) / f64::from(keys);
        assert!((share - 0.25).abs() < 0.015, "{per_target:?}");
    }
    assert_eq!(per_pair.len(), 28);
    for c in per_pair.values() {
        // 1000 expected; 5 standard deviations is about 160.
        assert!((800..=1200).contains(c), "{per_pair:?}");
    }
}

/// Removing one of 8 targets changes exactly the shards that contained it, each
/// of which keeps its other member; adding a ninth changes only the shards it
/// joins.
#[test]
fn a_target_coming_or_going_moves_only_its_own_shards() {
    let eight = targets(8);
    let s8 = table(&eight, 2);
    // Removed: a new table over the other seven, at other indices, as a reload builds.
    let gone = eight[3].addr;
    let seven: Vec<_> = eight.iter().filter(|t| t.addr != gone).cloned().collect();
    let s7 = table(&seven, 2);
    // Draining: still listed, no longer registered.
    let s7d = Sharding::new(&config(2), &eight, |t| t.addr != gone);
    let mut nine = eight.clone();
    nine.extend(targets(9).into_iter().skip(8));
    let added = nine[8].addr;
    let s9 = table(&nine, 2);
    let (mut moved, mut joined) = (0, 0);
    for k in 0..5000 {
        let key = format!("tenant-{k}");
        let before = addrs(&s8, &eight, &key);
        let after = addrs(&s7, &seven, &key);
        assert_eq!(after, addrs(&s7d, &eight, &key));
        if before.contains(&gone) {
            moved += 1;
            assert_eq!(before.intersection(&after).count(), 1, "{key}");
            assert!(!after.contains(&gone));
        } else {
            assert_eq!(before, after, "{key} moved without cause");
        }
        let grown = addrs(&s9, &nine, &key);
        if grown.contains(&added) {
            joined += 1;
            assert_eq!(before.intersection(&grown).count(), 1, "{key}");
        } else {
            assert_eq!(before, grown, "{key} moved without cause");
        }
    }
    // About 2/8 of the keys had the removed target; about 2/9 take the new one.
    assert!((1050..=1450).contains(&moved), "{moved}");
    assert!((900..=1330).contains(&joined), "{joined}");
}

#[test]
fn every_size_up_to_the_group_is_served() {
    let ts = targets(16);
    for size in 1..=16 {
        let s = table(&ts, size);
        let shard = s.shard(fmix64(fnv1a(b"k")));
        let set: BTreeSet<_> = shard.members().iter().collect();
        assert_eq!(set.len(), size as usize);
        // The shard of size n is the first n of the key's ranking.
        if size > 1 {
            let smaller = table(&ts, size - 1).shard(fmix64(fnv1a(b"k")));
            assert!(smaller
                .members()
                .iter()
                .all(|m| shard.contains(usize::from(*m))));
        }
    }
    let s = table(&ts[..3], 4);
    assert_eq!(s.shard(1).members().len(), 3, "never more than the targets");
}

#[test]
fn the_key_comes_from_the_header_or_the_client_address() {
    let ts = targets(8);
    let s = table(&ts, 2);
    let mut h = HeaderMap::new();
    assert_eq!(s.key_hash(&h, b"10.1.1.1"), None, "no header: whole group");
    h.insert("x-tenant", HeaderValue::from_static(""));
    assert_eq!(s.key_hash(&h, b"10.1.1.1"), None, "empty: whole group");
    h.insert("x-tenant", HeaderValue::from_static("acme"));
    assert_eq!(s.key_hash(&h, b""), Some(fmix64(fnv1a(b"acme"))));
    let by_ip = ShuffleShard {
        key: ShardKey::ClientIp,
        ..config(2)
    };
    let s = Sharding::new(&by_ip, &ts, |_| true);
    assert_eq!(
        s.key_hash(&h, b"10.1.1.1"),
        Some(fmix64(fnv1a(b"10.1.1.1")))
    );
}

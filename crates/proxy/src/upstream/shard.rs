//! Shuffle sharding (`shuffle_shard` on a target group, issue 21 §4): each value
//! of a request's key — a tenant header, or the client address — is served by
//! its own stable subset of `size` of the group's targets, so a tenant whose
//! requests break targets breaks only the tenants whose shard is the same.
//!
//! Data path, on a table built with the snapshot. A shard is chosen by
//! rendezvous (highest-random-weight) hashing, Thaler and Ravishankar's scheme
//! ("Using name-based mappings to increase hit rates", 1998): every registered target gets a score `mix(key ⊕ seed(target))`, and the shard is the
//! `size` targets with the highest scores. A score depends only on the key and
//! that one target, so removing a target changes only the shards that contained
//! it (each loses it and gains the next-ranked target) and adding one changes
//! only the shards it now tops; no other key moves.
//!
//! The hash is fixed, not the process's random `SipHash` keys: FNV-1a 64 over the
//! key's bytes and over the target's address as text (`10.0.0.7:8080`), each
//! finished with MurmurHash3's 64-bit finalizer (`fmix64`). Every ballast of a
//! fleet with the same targets therefore gives a tenant the same shard, and so
//! does a restart. Draining targets (deregistered, not in the config any more)
//! have no seed and belong to no shard.
//!
//! Cost: a group without `shuffle_shard` has no table (one branch per request).
//! With one, a request hashes its key once (FNV over a header value), scores each
//! registered target with one `fmix64`, and keeps the best `size` in a fixed
//! array (`Shard`, at most `MAX_SIZE` indices): no allocation. The balancer then
//! picks among the shard's members (`target_group.rs`).

use std::sync::Arc;

use ballast_config::shuffle_shard::{ShardKey, ShuffleShard};
use http::{HeaderMap, HeaderName};

use crate::upstream::target::Target;

/// The largest shard (the config's bound).
pub const MAX_SIZE: usize = ShuffleShard::MAX_SIZE as usize;

/// A group's shuffle-sharding table: the key to read and each target's seed.
pub struct Sharding {
    key: Key,
    size: usize,
    pub fail_open: bool,
    /// By target index: the seed of a registered target; `None` for a draining one.
    seeds: Box<[Option<u64>]>,
}

enum Key {
    Header(HeaderName),
    ClientIp,
    /// A header name the config accepted but `http` does not (never, as the
    /// config checks the same token grammar): no request has the key.
    Unreadable,
}

/// One key's shard: indices into the group's targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    members: [u16; MAX_SIZE],
    len: u8,
    /// None of the members could take a request and the shard keeps to them
    /// anyway (`fail_open = false`): route to them whatever their health.
    pub any_health: bool,
}

impl Shard {
    pub fn contains(&self, i: usize) -> bool {
        self.members().iter().any(|&m| usize::from(m) == i)
    }

    pub fn members(&self) -> &[u16] {
        &self.members[..usize::from(self.len)]
    }
}

impl Sharding {
    /// `registered`: whether a target is in the group's config (not draining).
    pub fn new(
        config: &ShuffleShard,
        targets: &[Arc<Target>],
        registered: impl Fn(&Target) -> bool,
    ) -> Self {
        let key = match &config.key {
            ShardKey::ClientIp => Key::ClientIp,
            ShardKey::Header(name) => HeaderName::from_bytes(name.as_bytes())
                .map(Key::Header)
                .unwrap_or(Key::Unreadable),
        };
        let seeds = targets
            .iter()
            .map(|t| registered(t).then(|| seed(&t.addr.to_string())))
            .collect();
        Sharding {
            key,
            size: (config.size as usize).clamp(1, MAX_SIZE),
            fail_open: config.fail_open,
            seeds,
        }
    }

    /// The hash of a request's key; `None` without one (no header, an empty
    /// value): the request uses the whole group.
    pub fn key_hash(&self, headers: &HeaderMap, client_ip: &[u8]) -> Option<u64> {
        let bytes = match &self.key {
            Key::Header(name) => headers.get(name)?.as_bytes(),
            Key::ClientIp => client_ip,
            Key::Unreadable => return None,
        };
        (!bytes.is_empty()).then(|| fmix64(fnv1a(bytes)))
    }

    /// The shard of a key: the `size` registered targets with the highest scores.
    pub fn shard(&self, key_hash: u64) -> Shard {
        let mut best = [(0u64, 0u16); MAX_SIZE];
        let mut len = 0;
        for (i, seed) in self.seeds.iter().enumerate() {
            let (Some(seed), Ok(index)) = (seed, u16::try_from(i)) else {
                continue;
            };
            // Ties (two targets with one seed) go to the lower index.
            let score = fmix64(key_hash ^ seed);
            if len < self.size {
                best[len] = (score, index);
                len += 1;
            } else if score > best[len - 1].0 {
                best[len - 1] = (score, index);
            } else {
                continue;
            }
            // Keep `best` in descending order of score.
            let mut at = len - 1;
            while at > 0 && best[at - 1].0 < best[at].0 {
                best.swap(at - 1, at);
                at -= 1;
            }
        }
        let mut members = [0u16; MAX_SIZE];
        for (m, (_, i)) in members.iter_mut().zip(&best[..len]) {
            *m = *i;
        }
        Shard {
            members,
            len: len as u8,
            any_health: false,
        }
    }
}

/// A target's seed, from its address as text.
fn seed(address: &str) -> u64 {
    fmix64(fnv1a(address.as_bytes()))
}

/// FNV-1a, 64 bits: fixed constants, so every node hashes alike.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// MurmurHash3's 64-bit finalizer: every input bit moves every output bit.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;

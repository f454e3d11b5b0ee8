//! One rate limit's counter on this node: GCRA (the generic cell rate algorithm
//! of ATM networks, the form of a token bucket that needs one number per key) in
//! a fixed-size table of hashed keys.
//!
//! Data path. **GCRA.** A limit of `rate` with `burst` gives each request an
//! interval `T = 1 / rate` and the bucket a tolerance `τ = burst × T`. Per key
//! the table keeps one number, the theoretical arrival time (TAT): when the key's
//! bucket would be full again. A request at `now` is admitted when
//! `max(TAT, now) + T - now ≤ τ`, and then TAT becomes `max(TAT, now) + T`; a
//! refused request changes nothing. From a full bucket that admits `burst`
//! requests at once, then one per `T`: over a time `t`, exactly `burst + t × rate`
//! (the token bucket's figure), with no timer and no refill task. A key whose
//! TAT is in the past has a full bucket: it is exactly the state of a key never
//! seen, so forgetting it loses nothing.
//!
//! **Exact whatever the number of workers.** The TAT is one `AtomicU64`, updated
//! with compare-and-swap from the value it was computed from: two workers that
//! race for the last place of a bucket cannot both take it (one CAS fails and
//! recomputes). No lock; a worker only ever waits for another that made progress.
//! Workers share a cache line only when they serve the same key (or, rarely,
//! keys of one bucket of the table).
//!
//! **Bounded memory.** The table is set-associative, like a CPU cache: a key's
//! hash picks one bucket of [`WAYS`] slots (one 64-byte cache line) out of a
//! power of two, sized from `max_keys` when the limit is built and never grown.
//! A key not in its bucket takes an empty slot, or else the slot whose TAT is
//! the earliest. When that TAT is in the past (an idle key, a full bucket) the
//! takeover loses nothing. When every slot of the bucket is busy, the key
//! closest to a full bucket loses its state: its next request starts from a full
//! bucket again, so at the bound a limit errs on the side of admitting, by at
//! most that key's remaining debt (less than `burst`), and the keys that are
//! furthest over their rate (latest TAT) are the last to be forgotten. Such
//! takeovers are counted (`ballast_rate_limit_evictions_total`): a steady count
//! means `max_keys` is too small for the traffic.
//!
//! **Claiming a slot without a lock.** A slot is two words: `tag` (the key's
//! 64-bit hash; 0 = empty) and `state` (8 check bits from the tag, then the TAT
//! in 56 bits of 4 ns ticks: nine years of uptime). A newcomer swaps the tag in
//! with a CAS, then resets the state to a full bucket with a CAS from the value
//! it read before. A request of the evicted key that computed from the old state
//! either wins its CAS first (it was admitted while its key held the slot; the
//! reset then fails) or fails and looks its key up again. When the reset fails,
//! the check bits still tell the newcomer's requests that the state is not
//! theirs, and they start from a full bucket by CAS from it. Only when that race
//! meets check bits equal to the evicted key's (one time in 256) does a newcomer
//! inherit the old debt (at most `burst`).
//!
//! Keys are hashed with SipHash-1-3 under a random key drawn when the limit is
//! built (`std`'s `RandomState`), so a client choosing header values cannot aim
//! at one bucket to evict others' state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Slots per bucket: 4 × 16 bytes, one cache line.
pub const WAYS: usize = 4;
/// Nanoseconds per tick of the limiter's clock.
const TICK_NS: u64 = 4;
const TAT_BITS: u32 = 56;
const TAT_MASK: u64 = (1 << TAT_BITS) - 1;
/// Tries before a request gives up on a slot that others keep changing (each
/// failed CAS is another request's success, so this is never reached in
/// practice); it is then admitted.
const MAX_TRIES: usize = 64;

/// Ticks of the limiter's clock at `at`: 4 ns since the first limit was built.
pub fn ticks(at: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    (at.saturating_duration_since(epoch).as_nanos() as u64 / TICK_NS) & TAT_MASK
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Start the clock (at the first limit's build, before any request asks).
pub fn start_clock() {
    EPOCH.get_or_init(Instant::now);
}

pub fn to_ticks(d: Duration) -> u64 {
    u64::try_from(d.as_nanos() / u128::from(TICK_NS)).unwrap_or(TAT_MASK)
}

fn to_duration(ticks: u64) -> Duration {
    Duration::from_nanos(ticks.saturating_mul(TICK_NS))
}

/// What a counter answered for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// Admitted; this many more would be admitted at once.
    Admitted { remaining: u64 },
    /// Over the limit; one request would be admitted after `wait`.
    Limited { wait: Duration },
}

/// What a rate limit counts with: this node's table ([`Table`]), or for
/// `scope = "global"` the fleet's counter (`global_limit.rs`), which answers
/// just as synchronously from a local view and settles it with Redis from a
/// background task (control never blocks data), so callers on the data path do
/// not change.
pub trait Counter: Send + Sync {
    /// Count one request of the key whose hash is `key`, at `now` (`ticks`).
    fn take(&self, key: u64, now: u64) -> Take;
    /// Keys held now (control path: a scan).
    fn keys(&self) -> usize;
    /// Keys it can hold at most.
    fn capacity(&self) -> usize;
    /// Keys whose state was lost to make room (their bucket was not yet full).
    fn evictions(&self) -> u64;
    /// Requests decided without the shared store (a global limit while Redis
    /// cannot be asked, by `on_redis_error`); `None` for a local counter.
    fn fallbacks(&self) -> Option<u64> {
        None
    }
}

/// GCRA's two figures, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gcra {
    interval: u64,
    tolerance: u64,
}

impl Gcra {
    /// `interval` is one request's share of the rate; `burst` at least 1.
    pub fn new(interval: Duration, burst: u32) -> Gcra {
        let interval = to_ticks(interval).max(1);
        Gcra {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1))),
        }
    }

    /// The state after a request at `now` from `tat` (0: a full bucket), or how
    /// long until one would be admitted.
    fn step(&self, tat: u64, now: u64) -> Result<(u64, u64), u64> {
        let next = tat.max(now) + self.interval;
        let debt = next - now;
        if debt > self.tolerance {
            return Err(debt - self.tolerance);
        }
        Ok((next, (self.tolerance - debt) / self.interval))
    }
}

#[derive(Default)]
struct Slot {
    tag: AtomicU64,
    state: AtomicU64,
}

#[repr(align(64))]
#[derive(Default)]
struct Bucket([Slot; WAYS]);

/// The table of one limit on this node.
pub struct Table {
    gcra: Gcra,
    buckets: Box<[Bucket]>,
    mask: usize,
    evicted: AtomicU64,
}

fn check_of(tag: u64) -> u64 {
    tag >> TAT_BITS
}

fn tat_of(state: u64, check: u64) -> u64 {
    if state >> TAT_BITS == check {
        state & TAT_MASK
    } else {
        0
    }
}

impl Table {
    /// A table for at least `max_keys` keys (whole buckets, a power of two).
    pub fn new(gcra: Gcra, max_keys: u32) -> Table {
        start_clock();
        let buckets = (max_keys as usize).div_ceil(WAYS).next_power_of_two();
        Table {
            gcra,
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            mask: buckets - 1,
            evicted: AtomicU64::new(0),
        }
    }

    /// The request's new state in `slot`, if the slot still holds `tag`.
    fn update(&self, slot: &Slot, tag: u64, now: u64) -> Option<Take> {
        let check = check_of(tag);
        for _ in 0..MAX_TRIES {
            let state = slot.state.load(Ordering::Acquire);
            if slot.tag.load(Ordering::Acquire) != tag {
                return None;
            }
            match self.gcra.step(tat_of(state, check), now) {
                Err(wait) => {
                    return Some(Take::Limited {
                        wait: to_duration(wait),
                    })
                }
                Ok((tat, remaining)) => {
                    let new = check << TAT_BITS | (tat & TAT_MASK);
                    if slot
                        .state
                        .compare_exchange_weak(state, new, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return Some(Take::Admitted { remaining });
                    }
                }
            }
        }
        Some(Take::Admitted { remaining: 0 })
    }

    /// Take a slot of `bucket` for `tag`: an empty one, or the earliest TAT's.
    fn claim(&self, bucket: &Bucket, tag: u64, now: u64) {
        // (slot, its TAT, its state word, its tag) of the slot to take over.
        let mut victim = None;
        for slot in &bucket.0 {
            let old = slot.tag.load(Ordering::Acquire);
            let state = slot.state.load(Ordering::Acquire);
            if old == 0 {
                victim = Some((slot, 0, state, old));
                break;
            }
            let tat = tat_of(state, check_of(old));
            if victim.is_none_or(|(_, earliest, _, _)| tat < earliest) {
                victim = Some((slot, tat, state, old));
            }
        }
        let Some((slot, earliest, state, old)) = victim else {
            return;
        };
        let taken = slot
            .tag
            .compare_exchange(old, tag, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if !taken {
            return;
        }
        if old != 0 && earliest > now {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        // A full bucket for the newcomer, unless the state moved since it was
        // read (then the check bits tell the newcomer's requests apart).
        let fresh = check_of(tag) << TAT_BITS;
        let _ = slot
            .state
            .compare_exchange(state, fresh, Ordering::AcqRel, Ordering::Relaxed);
    }
}

impl Table {
    /// Count one request of `key` at `now`, and the index of the slot that
    /// holds the key's state (`None` when the request was admitted without one,
    /// after [`MAX_TRIES`]). A global limit (`global_limit.rs`) keeps a count
    /// beside each slot by this index.
    pub fn take_slot(&self, key: u64, now: u64) -> (Take, Option<usize>) {
        let tag = key.max(1);
        let first = tag as usize & self.mask;
        let Some(bucket) = self.buckets.get(first) else {
            return (Take::Admitted { remaining: 0 }, None);
        };
        for _ in 0..MAX_TRIES {
            let found = bucket
                .0
                .iter()
                .position(|s| s.tag.load(Ordering::Acquire) == tag);
            match found {
                Some(way) => {
                    if let Some(take) = self.update(&bucket.0[way], tag, now) {
                        return (take, Some(first * WAYS + way));
                    }
                }
                None => self.claim(bucket, tag, now),
            }
        }
        (Take::Admitted { remaining: 0 }, None)
    }

    /// The slot at `index`, if it holds `key` now.
    fn slot_of(&self, index: usize, key: u64) -> Option<&Slot> {
        let tag = key.max(1);
        let slot = self.buckets.get(index / WAYS)?.0.get(index % WAYS)?;
        (slot.tag.load(Ordering::Acquire) == tag).then_some(slot)
    }

    /// Whether the slot at `index` still holds `key` (control path).
    pub fn holds(&self, index: usize, key: u64) -> bool {
        self.slot_of(index, key).is_some()
    }

    /// Move the TAT of `key` (in the slot at `index`) to at least `tat`: what
    /// the rest of the fleet admitted, charged to this node's view. Nothing
    /// when the key lost its slot meanwhile (its next request starts afresh and
    /// the next settlement charges it again).
    pub fn raise(&self, index: usize, key: u64, tat: u64) {
        let Some(slot) = self.slot_of(index, key) else {
            return;
        };
        let check = check_of(key.max(1));
        let tat = tat.min(TAT_MASK);
        for _ in 0..MAX_TRIES {
            let state = slot.state.load(Ordering::Acquire);
            if tat_of(state, check) >= tat || self.slot_of(index, key).is_none() {
                return;
            }
            let new = check << TAT_BITS | tat;
            if slot
                .state
                .compare_exchange_weak(state, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// One request's interval, in ticks.
    pub fn interval(&self) -> u64 {
        self.gcra.interval
    }
}

impl Counter for Table {
    fn take(&self, key: u64, now: u64) -> Take {
        self.take_slot(key, now).0
    }

    fn keys(&self) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| &b.0)
            .filter(|s| s.tag.load(Ordering::Relaxed) != 0)
            .count()
    }

    fn evictions(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Slots in all (`max_keys` rounded up to a power of two of buckets).
    fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }
}

#[cfg(test)]
#[path = "rate_limit_tests.rs"]
mod tests;

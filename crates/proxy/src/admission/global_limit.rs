//! A global rate limit's counter (`scope = "global"`): the fleet's GCRA bucket
//! of each key lives in Redis; every node admits from its own copy of it and
//! settles with Redis in the background.
//!
//! Data path for [`GlobalCounter::take`], control path for the settling task.
//! **Why this design.** One Redis round trip per request is exact but puts
//! Redis's latency and capacity on every request. Token leases (each node buys
//! tokens in batches) cost less, but a node whose lease ran dry must either
//! refuse or wait, and sizing leases needs the number of nodes and their share
//! of the traffic. Here each node keeps the same GCRA table as a local limit
//! (`rate_limit.rs`, one TAT per key) and charges it at once with its own
//! admissions, and with the rest of the fleet's a little later:
//!
//! - **Signal**: per key, the requests this node admitted since it last settled
//!   (a count beside the key's slot; the first admission of a period also hands
//!   the key to the task with one bounded `try_send`).
//! - **Window and step**: every [`PERIOD`] (50 ms) the task sends the counts of
//!   the keys that had admissions, all in one `EVALSHA` (at most [`BATCH`] keys a
//!   call) of [`SCRIPT`]: Redis adds each count to the key's fleet TAT (GCRA's
//!   `TAT = max(TAT, now) + count × T` on Redis's clock, `TIME`) and answers the
//!   fleet's debt `TAT - now`. The node then moves its own TAT to at least
//!   `now + debt + (admitted since the send) × T`: its view becomes the fleet's.
//!   Refused requests and keys without admissions cost Redis nothing.
//! - **Bounds**: Redis sees every admitted request exactly once, so the fleet's
//!   bucket is exact; what a node does not see yet is the other nodes'
//!   admissions of the last period and round trip. Over any interval the fleet
//!   admits at most `burst + rate × t` plus what the other `N - 1` nodes admit
//!   inside one such window each: at most `(N - 1) × rate × (PERIOD + RTT)`
//!   when the bucket is empty (a node's own copy refills at `rate`), and up to
//!   `(N - 1) × burst` once if every node meets a full bucket in the same 50 ms.
//!   The error does not grow with time: what was admitted past the limit is a
//!   debt that all nodes pay off at the next settlement. A key whose slot was
//!   lost to a newcomer (`max_keys` too small: see the evictions metric) loses
//!   its unsent count with it. Redis keys expire when their bucket is full
//!   again (`PX` = the debt), so Redis holds only keys in debt.
//!
//! Cost: one `EVALSHA` per period per node and global limit that saw admissions
//! (20 a second), whatever the request rate and the number of keys up to
//! [`BATCH`] × 20 a second; per request, one more atomic add on the key's own
//! count. While Redis fails (`redis_link.rs`) requests are not counted: the limit
//! admits or refuses them by `on_redis_error` and counts them as fallbacks.
//!
//! Measured (README, "Global rate limits"): three nodes at 300/s with 900/s
//! offered for 20 s admit within 0.4% of `burst + rate × t`, a node stopped
//! halfway included; against the same limit local, 2% fewer requests per core
//! and 20 `EVALSHA`/s per node.
//!
//! Keys are hashed with SipHash-2-4 under keys derived from the Redis URL, the
//! fleet's prefix and the limit's name ([`FleetSeed`]): every node hashes a
//! client to the same Redis key, and a client who cannot read the config
//! cannot aim at one bucket of a node's table. (A node's lost slot is restored
//! from Redis at its next admission anyway.)

#[allow(deprecated)]
use std::hash::SipHasher;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use ballast_config::cluster::OnRedisError;
use ballast_config::limits::RateLimitConfig;
use tokio::sync::mpsc;

use crate::admission::rate_limit::{self, Counter, Gcra, Table, Take};
use crate::admission::redis_link::{RedisLink, DEADLINE};

/// How often a node settles with Redis.
pub const PERIOD: Duration = Duration::from_millis(50);
/// Keys in one `EVALSHA` at most (a bound on the script's run time in Redis).
pub const BATCH: usize = 512;
/// Keys handed to the task in one period at most (the channel's size).
const QUEUE: usize = 16_384;
/// The bit of a count that says its key is in the task's queue.
const QUEUED: u32 = 1 << 31;
/// How long a refused request is told to wait while Redis fails (`deny`).
const DENIED_WAIT: Duration = Duration::from_secs(1);

/// `KEYS`: the keys; `ARGV[1]`: one request's interval (µs); `ARGV[1 + i]`: the
/// requests a node admitted for `KEYS[i]`. TATs are µs on Redis's clock, kept
/// to the ns; answers each key's debt (`TAT - now`) in ns.
pub const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local debts = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key)) or 0
  if tat < now then tat = now end
  tat = tat + tonumber(ARGV[i + 1]) * interval
  local debt = tat - now
  redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(debt / 1000) + 1)
  debts[i] = math.floor(debt * 1000)
end
return debts
";

static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SCRIPT));

/// SipHash-2-4 under keys the fleet shares: a fixed algorithm, unlike `std`'s
/// `RandomState`, whose hasher may change between Rust releases (a fleet's
/// nodes need not share a build).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetSeed(u64, u64);

impl FleetSeed {
    pub fn new(link: &RedisLink, limit: &str) -> FleetSeed {
        #[allow(deprecated)]
        let mut h = SipHasher::new_with_keys(0x6261_6c6c_6173_7421, 0x676c_6f62_616c_2121);
        (link.url(), link.prefix.as_str(), limit).hash(&mut h);
        let k0 = h.finish();
        1u8.hash(&mut h);
        FleetSeed(k0, h.finish())
    }
}

impl BuildHasher for FleetSeed {
    #[allow(deprecated)]
    type Hasher = SipHasher;

    #[allow(deprecated)]
    fn build_hasher(&self) -> SipHasher {
        SipHasher::new_with_keys(self.0, self.1)
    }
}

/// What the data path and the task share: the table and each slot's count.
struct Local {
    table: Table,
    /// Admissions since the last settlement, by slot; [`QUEUED`] when the key
    /// is in the queue.
    counts: Box<[AtomicU32]>,
}

/// A global limit's counter on this node.
pub struct GlobalCounter {
    local: Arc<Local>,
    link: Arc<RedisLink>,
    queue: mpsc::Sender<(u32, u64)>,
    fallbacks: AtomicU64,
}

impl GlobalCounter {
    /// The counter of `config`, its settling task started on the current Tokio
    /// runtime (without one, it decides as if Redis failed).
    pub fn new(config: &RateLimitConfig, link: Arc<RedisLink>) -> GlobalCounter {
        let table = Table::new(
            Gcra::new(config.rate.interval(), config.burst),
            config.max_keys,
        );
        let counts = (0..table.capacity()).map(|_| AtomicU32::new(0)).collect();
        let local = Arc::new(Local { table, counts });
        let (queue, queued) = mpsc::channel(QUEUE.min(local.counts.len()));
        let names = format!("{}rate_limits/{}/", link.prefix, config.name);
        let interval = config.rate.interval().as_secs_f64() * 1e6;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(settle(
                Arc::downgrade(&local),
                queued,
                link.clone(),
                names,
                interval,
            ));
        }
        GlobalCounter {
            local,
            link,
            queue,
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Hand `key` to the task unless it is queued already.
    fn note(&self, index: usize, key: u64) {
        let Some(count) = self.local.counts.get(index) else {
            return;
        };
        let before = count.fetch_add(1, Ordering::AcqRel);
        if before & QUEUED != 0 || count.fetch_or(QUEUED, Ordering::AcqRel) & QUEUED != 0 {
            return;
        }
        if self.queue.try_send((index as u32, key)).is_err() {
            // Full this period: a later request of the key tries again.
            count.fetch_and(!QUEUED, Ordering::AcqRel);
        }
    }
}

impl Counter for GlobalCounter {
    fn take(&self, key: u64, now: u64) -> Take {
        if self.link.failing() {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            return match self.link.on_error {
                OnRedisError::Allow => Take::Admitted { remaining: 0 },
                OnRedisError::Deny => Take::Limited { wait: DENIED_WAIT },
            };
        }
        let (take, slot) = self.local.table.take_slot(key, now);
        if let (Take::Admitted { .. }, Some(index)) = (take, slot) {
            self.note(index, key);
        }
        take
    }

    fn keys(&self) -> usize {
        self.local.table.keys()
    }

    fn capacity(&self) -> usize {
        self.local.table.capacity()
    }

    fn evictions(&self) -> u64 {
        self.local.table.evictions()
    }

    fn fallbacks(&self) -> Option<u64> {
        Some(self.fallbacks.load(Ordering::Relaxed))
    }
}

/// Settle with Redis every [`PERIOD`] until the counter is dropped.
async fn settle(
    local: Weak<Local>,
    mut queued: mpsc::Receiver<(u32, u64)>,
    link: Arc<RedisLink>,
    names: String,
    interval_us: f64,
) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<(usize, u64, u32)> = Vec::new();
    loop {
        tick.tick().await;
        let Some(local) = local.upgrade() else {
            return;
        };
        batch.clear();
        while let Ok((index, key)) = queued.try_recv() {
            let index = index as usize;
            let Some(count) = local.counts.get(index) else {
                continue;
            };
            let n = count.swap(0, Ordering::AcqRel) & !QUEUED;
            if n > 0 && local.table.holds(index, key) {
                batch.push((index, key, n));
            }
        }
        for chunk in batch.chunks(BATCH) {
            let sent = tokio::time::timeout(DEADLINE * 2, send(&link, &names, chunk, interval_us));
            let debts = match sent.await {
                Ok(Ok(debts)) => debts,
                Ok(Err(e)) => {
                    link.failed(&e);
                    break;
                }
                Err(_) => {
                    link.failed(&std::io::Error::from(std::io::ErrorKind::TimedOut).into());
                    break;
                }
            };
            link.succeeded();
            let now = rate_limit::ticks(Instant::now());
            let interval = local.table.interval();
            for (&(index, key, _), debt) in chunk.iter().zip(debts) {
                let since = local
                    .counts
                    .get(index)
                    .map_or(0, |c| u64::from(c.load(Ordering::Acquire) & !QUEUED));
                let debt = rate_limit::to_ticks(Duration::from_nanos(debt.max(0) as u64));
                local.table.raise(index, key, now + debt + since * interval);
            }
        }
    }
}

/// One `EVALSHA` (an `EVAL` the first time Redis lacks the script).
async fn send(
    link: &RedisLink,
    names: &str,
    chunk: &[(usize, u64, u32)],
    interval_us: f64,
) -> redis::RedisResult<Vec<i64>> {
    let mut connection = link.connection().await?;
    let mut call = SETTLE.prepare_invoke();
    call.arg(format!("{interval_us:.3}"));
    for &(_, key, count) in chunk {
        call.key(format!("{names}{key:016x}")).arg(count);
    }
    call.invoke_async(&mut connection).await
}

#[cfg(test)]
#[path = "global_limit_tests.rs"]
mod tests;

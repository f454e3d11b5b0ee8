//! A listener's connection limits: `max_connections` (a ceiling on all its open
//! connections) and `max_connections_per_client` (a ceiling per client address).
//!
//! Data path. One `Gate` per running listener, shared by its accept loops on
//! every worker and kept across reloads; the control path sets its limits
//! (`Gate::configure`) when a config is applied.
//!
//! `max_connections` works as HAProxy's `maxconn`: an accept loop takes a seat
//! (`Gate::seat`, a compare-and-swap on one counter) before it calls `accept`,
//! and while every seat is taken it does not accept at all, so new connections
//! wait in the kernel's backlog (and, past it, the client's SYN retries) instead
//! of being refused. A seat is given back when its connection closes, whatever
//! it was doing then (served, parked idle, or relaying an upgraded tunnel); the
//! last one to leave a full listener wakes the waiting accept loops through a
//! `Notify`, which is touched only then. The counter is exact whatever the
//! number of workers: a loop that holds a seat and finds nothing to accept
//! keeps it for the next connection.
//!
//! `max_connections_per_client` is decided once the client's address is known
//! (after a PROXY protocol header, if any): a count per address in one of 64
//! shards picked by a hash of the address, each a small mutex-guarded map, so
//! two workers contend only when their clients hash alike. An address leaves its
//! map when its last connection closes: the maps hold at most one entry per
//! open connection. Over the limit, the connection is closed at once and
//! counted (`connection_limit`).
//!
//! Off (the default), neither is touched: `seat` returns `None` after one
//! relaxed load, and the per-client check is one branch.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Shards of the per-client counts (a power of two).
const SHARDS: usize = 64;

/// The counters of one listener's connections.
pub struct Gate {
    /// `max_connections`; 0: off.
    max: AtomicUsize,
    /// `max_connections_per_client`; 0: off.
    per_client: AtomicU32,
    /// Seats taken (connections open or about to be accepted).
    open: AtomicUsize,
    /// Told when a seat is given back to a full listener, or the limit changes.
    room: Notify,
    clients: Box<[Shard]>,
}

/// One shard of the per-client counts, on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct Shard(Mutex<HashMap<IpAddr, u32>>);

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            max: AtomicUsize::new(0),
            per_client: AtomicU32::new(0),
            open: AtomicUsize::new(0),
            room: Notify::new(),
            clients: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }
}

impl Gate {
    /// Set the limits (`None`: off). Accept loops waiting for a seat look again.
    pub fn configure(&self, max_connections: Option<u32>, per_client: Option<u32>) {
        let max = max_connections.map_or(0, |n| n as usize);
        self.max.store(max, Ordering::Release);
        self.per_client
            .store(per_client.unwrap_or(0), Ordering::Release);
        self.room.notify_waiters();
    }

    /// Whether `max_connections_per_client` is set (then each new connection
    /// asks `admit_client`).
    pub fn limits_clients(&self) -> bool {
        self.per_client.load(Ordering::Relaxed) != 0
    }

    /// Seats taken now (connections open under `max_connections`).
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Wait for a seat under `max_connections`; `None` at once when it is off.
    pub async fn seat(self: &Arc<Self>) -> Option<Admitted> {
        loop {
            let max = self.max.load(Ordering::Acquire);
            if max == 0 {
                return None;
            }
            // Registered before looking, so that a seat given back between the
            // look and the wait still wakes this loop.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let taken = self
                .open
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                });
            if taken.is_ok() {
                return Some(Admitted {
                    gate: self.clone(),
                    seated: true,
                    client: None,
                });
            }
            room.await;
        }
    }

    /// Count a connection of `client` against `max_connections_per_client`:
    /// `Err` when the client holds its limit already. `seat` is the connection's
    /// seat under `max_connections`, if it has one; the result carries both.
    pub fn admit_client(
        self: &Arc<Self>,
        client: IpAddr,
        seat: Option<Admitted>,
    ) -> Result<Option<Admitted>, Refused> {
        let limit = self.per_client.load(Ordering::Acquire);
        if limit == 0 {
            return Ok(seat);
        }
        let client = client.to_canonical();
        {
            let Ok(mut counts) = self.shard(client).0.lock() else {
                // A worker panicked holding it: admit rather than count wrong.
                return Ok(seat);
            };
            let n = counts.entry(client).or_insert(0);
            if *n >= limit {
                return Err(Refused); // a seat it took is given back as it drops
            }
            *n += 1;
        }
        let mut admitted = seat.unwrap_or_else(|| Admitted {
            gate: self.clone(),
            seated: false,
            client: None,
        });
        admitted.client = Some(client);
        Ok(Some(admitted))
    }

    /// Connections `client` holds now under `max_connections_per_client`.
    #[cfg(test)]
    pub fn client_connections(&self, client: IpAddr) -> u32 {
        let client = client.to_canonical();
        self.shard(client)
            .0
            .lock()
            .map_or(0, |c| c.get(&client).copied().unwrap_or(0))
    }

    fn shard(&self, client: IpAddr) -> &Shard {
        // Fibonacci hashing of the address folded to 64 bits: neighbouring
        // addresses land in different shards.
        let folded = match client {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let x = u128::from(a);
                (x as u64) ^ ((x >> 64) as u64)
            }
        };
        let i = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58;
        &self.clients[i as usize % SHARDS]
    }

    fn leave(&self, seated: bool, client: Option<IpAddr>) {
        if let Some(client) = client {
            if let Ok(mut counts) = self.shard(client).0.lock() {
                if let Some(n) = counts.get_mut(&client) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        counts.remove(&client);
                    }
                }
            }
        }
        if seated {
            let before = self.open.fetch_sub(1, Ordering::AcqRel);
            // Only a full listener has accept loops waiting.
            if before >= self.max.load(Ordering::Acquire) {
                self.room.notify_waiters();
            }
        }
    }
}

/// A client's connection over one of the limits: closed at accept.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused;

/// A connection's place under its listener's limits, given back when dropped.
pub struct Admitted {
    gate: Arc<Gate>,
    seated: bool,
    client: Option<IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gate.leave(self.seated, self.client.take());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[tokio::test]
    async fn off_takes_no_seat_and_counts_nothing() {
        let gate = Arc::new(Gate::default());
        assert!(gate.seat().await.is_none());
        let a = gate.admit_client(ip("10.0.0.1"), None).expect("off");
        assert!(a.is_none());
        assert_eq!(gate.open(), 0);
    }

    #[tokio::test]
    async fn a_full_listener_waits_until_a_seat_is_given_back() {
        let gate = Arc::new(Gate::default());
        gate.configure(Some(2), None);
        let first = gate.seat().await.expect("seat");
        let _second = gate.seat().await.expect("seat");
        assert_eq!(gate.open(), 2);
        let third = tokio::spawn({
            let gate = gate.clone();
            async move { gate.seat().await }
        });
        // Still waiting after the spawned task has had every chance to run.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert!(!third.is_finished(), "took a third seat of two");
        drop(first);
        let got = tokio::time::timeout(Duration::from_secs(10), third).await;
        let _third = got.expect("woken").expect("task").expect("a seat");
        assert_eq!(gate.open(), 2);
    }

    #[tokio::test]
    async fn raising_the_limit_wakes_a_waiting_loop() {
        let gate = Arc::new(Gate::default());
        gate.configure(Some(1), None);
        let _held = gate.seat().await.expect("seat");
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.seat().await.is_some() }
        });
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        gate.configure(Some(2), None);
        let got = tokio::time::timeout(Duration::from_secs(10), waiting).await;
        assert!(got.expect("woken").expect("task"));
    }

    #[test]
    fn each_client_holds_at_most_its_limit_and_leaves_no_entry() {
        let gate = Arc::new(Gate::default());
        gate.configure(None, Some(2));
        let a = ip("203.0.113.7");
        let one = gate.admit_client(a, None).expect("1").expect("counted");
        let two = gate.admit_client(a, None).expect("2").expect("counted");
        assert_eq!(gate.admit_client(a, None).err(), Some(Refused));
        // Another client, and the IPv4-mapped form counting as the same one.
        let other = gate.admit_client(ip("203.0.113.8"), None).expect("other");
        assert_eq!(
            gate.admit_client(ip("::ffff:203.0.113.7"), None).err(),
            Some(Refused)
        );
        drop(one);
        assert_eq!(gate.client_connections(a), 1);
        let three = gate.admit_client(a, None).expect("room again");
        drop((two, three, other));
        assert_eq!(gate.client_connections(a), 0);
        let held: usize = gate
            .clients
            .iter()
            .map(|s| s.0.lock().expect("lock").len())
            .sum();
        assert_eq!(held, 0, "a closed client's entry stays");
    }

    #[tokio::test]
    async fn a_seat_and_a_client_count_are_given_back_together() {
        let gate = Arc::new(Gate::default());
        gate.configure(Some(10), Some(1));
        let seat = gate.seat().await;
        let admitted = gate.admit_client(ip("10.0.0.1"), seat).expect("first");
        assert_eq!(
            (gate.open(), gate.client_connections(ip("10.0.0.1"))),
            (1, 1)
        );
        drop(admitted);
        assert_eq!(
            (gate.open(), gate.client_connections(ip("10.0.0.1"))),
            (0, 0)
        );
        // Refused: the seat taken for it is given back too.
        let _held = gate.admit_client(ip("10.0.0.1"), gate.seat().await);
        let refused = gate.admit_client(ip("10.0.0.1"), gate.seat().await);
        assert!(refused.is_err());
        assert_eq!(gate.open(), 1);
    }
}

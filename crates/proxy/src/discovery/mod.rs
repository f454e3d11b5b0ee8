//! Targets by DNS name: `address = "HOST:PORT"` (A/AAAA) and `srv = "NAME"` (SRV)
//! entries of a target group, looked up again on their records' TTL.
//!
//! Control path only; the data path never resolves. One task per group with DNS
//! entries (`refresh.rs`) asks the resolver (`resolve.rs`, hickory, configured
//! from `/etc/resolv.conf` or `[server] dns_servers`) when an entry's answer
//! expires — its TTL held within the group's `dns = { min_ttl, max_ttl }` — and
//! records the result in [`Names`] (`names.rs`), the table of every name's last
//! good addresses, error, times and outcome counts. When a name's addresses
//! change, `Names` says so on a watch channel and the server rebuilds the snapshot
//! from the same config: the snapshot's targets are the literal entries plus each
//! name's addresses, so a new address becomes a target starting from `initial`
//! (health-checked like an API registration) and a vanished one drains for the
//! group's `deregistration_delay` like an API deregistration. A failed lookup
//! changes no address: the last good set stays, and the failure is logged (WARN
//! once per streak, INFO on recovery), counted, and shown by the health API.
//!
//! May use: `observe/` (exposition helpers, RFC 3339 times). Used by the snapshot
//! builder and `server.rs`.

mod names;
mod refresh;
mod resolve;

pub use names::{NameStatus, Names};
pub use refresh::spawn;
pub use resolve::Resolver;

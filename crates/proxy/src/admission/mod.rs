//! Admission: who may come in, and how fast. The listener's IP allow/deny lists
//! and connection limits, decided at accept before a byte is read; the rate
//! limits attached to listeners and rules, decided per request before routing
//! forwards it.
//!
//! Data path, with tables built on the control path. Every check is a lookup in
//! an immutable table from the snapshot or a few atomics: no lock is shared by
//! all workers on the common path. May use `observe/` only; `frontend/` and
//! `forward/` ask it.
//!
//! Rate limits: `rate_limits.rs` (the named limits of a snapshot, the check, the
//! 429's headers), `rate_key.rs` (what a request counts against),
//! `rate_limit.rs` (GCRA in a bounded table, behind the `Counter` trait),
//! `global_limit.rs` (a `scope = "global"` limit's counter, settled with Redis
//! in the background), `redis_link.rs` (the node's Redis connection and what
//! global limits do when it fails).
//! Connections: `ranges.rs` (CIDR tables), `policy.rs` (a listener's admission
//! policy), `connections.rs` (connection limits).

pub mod connections;
pub mod global_limit;
pub mod policy;
pub mod ranges;
pub mod rate_key;
pub mod rate_limit;
pub mod rate_limits;
pub mod redis_link;

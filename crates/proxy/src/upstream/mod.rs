//! The target side: target groups, targets and their state, balancing,
//! connections to targets (pooled HTTP/1.1, multiplexed HTTP/2, dialing), health
//! checks and the end of deregistration.
//!
//! Data path and control path meet here. The data path picks a target
//! (`target_group.rs`, `balance.rs`), takes a connection (`pool.rs` and `http1.rs`
//! for HTTP/1.1, `http2.rs` for HTTP/2, `dial.rs` for a new one) and counts its
//! requests in flight with single atomics on the `Target` (`target.rs`). The
//! control path moves each target's health (`health.rs`, `health_h2.rs`; the
//! last check and recent state changes the API shows: `health_history.rs`) and
//! removes deregistered targets once they are drained (`deregistration.rs`).
//! `verdict.rs` holds the anomaly detector's latest verdict on each target.
//! `body.rs` is the request body on its way to a target. Sticky sessions: the
//! cookie naming a client's target (`sticky.rs`) and its key (`sticky_key.rs`).
//! Shuffle sharding: each tenant key's stable subset of the targets (`shard.rs`).
//!
//! May use: `http1/`, `tls/`, `observe/`, `runtime/`. Nothing here knows about
//! requests' routing or client connections.

pub mod balance;
pub mod body;
pub mod deregistration;
pub mod dial;
pub mod health;
pub mod health_h2;
pub mod health_history;
pub mod http1;
pub mod http2;
pub mod pool;
pub mod shard;
pub mod sticky;
pub mod sticky_key;
pub mod target;
pub mod target_group;
pub mod verdict;

//! Cluster mode (SPEC §11, §13): a fleet of ballast nodes sharing one config
//! through etcd.
//!
//! Control path only. Layout: `etcd` (a client of etcd's v3 JSON gateway: range,
//! compare-and-swap, watch, leases), `node` (what this node knows, the admin
//! API's writes as compare-and-swap, and the loop that follows the fleet's config
//! into `Control`), `registration` (this node under `{prefix}nodes/`, on a lease),
//! `start` (which config a node starts on: etcd's, a seed from its file, or its
//! persisted state when etcd is unreachable), `sticky` (one stickiness key for
//! the fleet, kept in etcd). Global rate limits through Redis
//! live with the other limits, on the data path (`ballast-proxy`'s `admission`).
#![forbid(unsafe_code)]

pub mod etcd;
mod node;
mod registration;
mod start;
mod sticky;

pub use node::{Node, RETRY};
pub use registration::{leave, register};
pub use start::{begin, seed_value, Begin};

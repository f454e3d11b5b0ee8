//! ballast's data path: listeners, forwarding, target groups, balancing and health.
//!
//! The request path reads top to bottom in `forward.rs`; what it reads comes from
//! one immutable `Snapshot` per config (`snapshot.rs`), swapped atomically by the
//! control path in `server.rs`. Per-target state that must survive reloads (health,
//! requests in flight, pooled connections) lives in `target.rs` as atomics.
#![forbid(unsafe_code)]

mod balance;
mod body;
mod connection;
mod error;
mod forward;
mod headers;
mod health;
mod listener;
mod pool;
mod server;
mod snapshot;
mod target;
mod target_group;
mod tls;

pub use error::{ErrorSource, ProxyError};
pub use server::{ApplyError, Server};
pub use snapshot::Snapshot;
pub use target::{HealthReason, HealthState, Target};
pub use target_group::TargetGroup;

//! ballast's data path: listeners, forwarding, target groups, balancing and health.
//!
//! The request path reads top to bottom in `forward.rs`; what it reads comes from
//! one immutable `Snapshot` per config (`snapshot.rs`), swapped atomically by the
//! control path in `server.rs`. Per-target state that must survive reloads (health,
//! requests in flight, pooled connections, metric cells) lives in `target.rs` as
//! atomics. The access log (`access_log.rs`) and metrics (`metrics.rs`,
//! `exposition.rs`) are fed from the data path by atomics and `try_send` only.
//!
//! No unsafe code but one call, isolated and explained where it is: handing the
//! parking lot's epoll descriptor to tokio (`parking.rs`), which tokio's API
//! marks unsafe; it is what lets an idle connection cost no task (measured in
//! BENCHMARKS.md).
#![deny(unsafe_code)]

mod access_log;
mod action;
mod balance;
mod body;
mod connection;
mod dial;
mod drain;
mod error;
mod exposition;
mod forward;
mod grpc;
mod h1;
mod h2pool;
mod headers;
mod health;
mod health_h2;
mod listener;
mod metrics;
mod multiplex;
mod parking;
mod pool;
mod retry;
mod rfc3339;
pub mod rule;
mod server;
mod snapshot;
mod target;
mod target_group;
mod tls;
mod tunnel;
mod upgrade;
pub mod workers;

pub use access_log::AccessRecord;
pub use error::{ErrorSource, ProxyError};
pub use server::{ApplyError, Server};
pub use snapshot::Snapshot;
pub use target::{HealthReason, HealthState, Target};
pub use target_group::TargetGroup;

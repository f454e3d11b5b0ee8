//! ballast's data path: listeners, forwarding, target groups, balancing and health.
//!
//! The request path reads top to bottom in `forward.rs`; what it reads comes from
//! one immutable `Snapshot` per config (`snapshot.rs`), swapped atomically by the
//! control path in `server.rs`. Per-target state that must survive reloads (health,
//! requests in flight, pooled connections, metric cells) lives in `target.rs` as
//! atomics. The access log (`access_log.rs`) and metrics (`metrics.rs`,
//! `exposition.rs`) are fed from the data path by atomics and `try_send` only.
//!
//! No unsafe code but three calls, isolated and explained where they are:
//! handing the parking lot's epoll descriptor to tokio (`parking.rs`) and the
//! listening socket to tokio's readiness (`listener.rs`'s accept loop), both
//! marked unsafe by tokio's API, and setting `TCP_DEFER_ACCEPT`, which neither
//! std nor socket2 offers (`listener::defer_accept`). The first lets an idle
//! connection cost no task, the others let a connection for one request be
//! served without joining tokio's epoll set (measured in BENCHMARKS.md).
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
mod socket;
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

//! ballast's data path: listeners, forwarding, target groups, balancing and health.
//!
//! The folders are what a load balancer is made of, and their imports point one
//! way, from the client towards the targets and down to what everything uses:
//!
//! - `frontend/`: listening sockets, accept loops, client connections, parking,
//!   draining, ballast's own HTTP/1.1 server. Uses everything below.
//! - `forward/`: one request start to finish: the handler, bodies, retries,
//!   HTTP/2 to targets, upgrades and tunnels, forwarded headers, ballast's errors.
//! - `hygiene/`: the checks before the rules: desync classification and the
//!   mitigation modes, the host, the path, invalid header fields (public for its
//!   benchmark).
//! - `routing/`: rules, conditions, path normalisation, actions, redirects.
//! - `upstream/`: target groups, targets and their state, balancing, connection
//!   pools, dialing, health checks, deregistration.
//! - `http1/`: HTTP/1.1 syntax and framing, used by both sides.
//! - `tls/`: termination on `https` listeners and TLS towards targets.
//! - `observe/`: metric cells, Prometheus exposition, the access log.
//! - `runtime/`: the per-core worker threads, lent buffers, the clock.
//!
//! - `admission/`: who may come in and how fast: IP allow/deny lists and
//!   connection limits at accept, rate limits per client, header or rule;
//!   asked by `frontend/` and `forward/`.
//! - `discovery/`: targets by DNS name: lookups on the answers' TTL, on the
//!   control path; the snapshot's targets include what they resolve to.
//! - `resilience/`: control loops that shape targets' effective weights (slow
//!   start, anomaly mitigation) and the gates the handler asks (retry budgets,
//!   circuit breakers); between `forward/` and `upstream/`.
//!
//! At the root, what ties them together: the immutable `Snapshot` per config
//! (`snapshot.rs`), built by the control path and swapped atomically, which the
//! data path reads; and the running `Server` (`server.rs`), which applies configs
//! and starts and stops everything. Per-target state that must survive reloads
//! (health, requests in flight, pooled connections, metric cells) lives in
//! `upstream/target.rs` as atomics. The access log and metrics are fed from the
//! data path by atomics and `try_send` only.
//!
//! No unsafe code but three calls, isolated and explained where they are:
//! handing the parking lot's epoll descriptor to tokio (`frontend/parking.rs`) and
//! the listening socket to tokio's readiness (`frontend/listener.rs`'s accept
//! loop), both marked unsafe by tokio's API, and setting `TCP_DEFER_ACCEPT`,
//! which neither std nor socket2 offers (`frontend/listener.rs`, `defer_accept`).
//! The first lets an idle connection cost no task, the others let a connection for
//! one request be served without joining tokio's epoll set (measured in
//! BENCHMARKS.md).
#![deny(unsafe_code)]

mod admission;
mod discovery;
mod forward;
mod frontend;
/// The checks ballast's parsers are fuzzed with (`fuzz/` at the repository
/// root); only in this crate's tests and with the `fuzzing` feature.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod http1;
pub mod hygiene;
mod observe;
mod resilience;
pub mod routing;
pub mod runtime;
mod server;
mod snapshot;
mod tls;
mod upstream;

pub use discovery::NameStatus;
pub use forward::error::{ErrorSource, ProxyError};
pub use frontend::inherited::ListeningSocket;
pub use observe::access_log::{
    use_format as use_access_log_format, AccessRecord, Format as AccessLogFormat,
};
pub use observe::exposition::{GroupView, ListenerView, TargetView};
pub use observe::metrics::{CodeCounts, Histogram, ListenerMetrics, TargetMetrics, BUCKETS};
pub use observe::rfc3339;
pub use resilience::registry::{Decision as AnomalyDecision, Why as AnomalyWhy};
pub use resilience::shedding::{view as shedding_view, View as SheddingView};
pub use server::{ApplyError, Server};
pub use snapshot::Snapshot;
pub use tls::certificate::CertificateInfo;
pub use upstream::shard::Shard;
pub use upstream::sticky::{Key as StickyKey, Sticky};
pub use upstream::sticky_key::STATE_FILE as STICKINESS_STATE_FILE;
pub use upstream::target::{HealthReason, HealthState, Target};
pub use upstream::target_group::TargetGroup;
pub use upstream::verdict::VerdictView;

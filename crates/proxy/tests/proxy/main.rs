//! Integration tests of the data path: real backends and a real ballast on
//! 127.0.0.1:0, talking HTTP over real sockets.

mod admission;
mod anomaly;
mod balancing;
mod circuit_breaker;
mod client_errors;
mod dns;
mod errors;
mod failover;
mod forwarding;
mod global_limits;
mod grpc;
mod h1_server;
mod h1_targets;
mod h2_attacks;
mod h2_tls;
mod http2;
mod hygiene;
mod inherited;
mod load_shedding;
mod mtls;
mod protocol;
mod rate_limits;
mod reload;
mod retries;
mod rules;
mod shuffle_shard;
mod slow_clients;
mod slow_start;
mod smuggling;
mod sticky;
mod timeouts;
mod tls;
mod tls_reload;
mod websocket;

use std::time::Duration;

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(10);

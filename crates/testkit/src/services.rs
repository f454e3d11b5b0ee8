//! The services a cluster test runs against: a real etcd and a real Redis, each a
//! process of its own on free loopback ports with a temporary data directory.
//!
//! Test support only. Issue 24 asks for no mocks: cluster tests talk to the same
//! etcd and Redis an operator runs, from Debian's `etcd-server` and `redis-server`
//! packages. A missing binary fails the test with the package to install rather
//! than skipping it, so a green run always means the service was really there.
//! etcd lives in `services/etcd.rs` (its HTTP/1.1 client in `services/http1.rs`).

mod etcd;
mod http1;

pub use etcd::EtcdServer;

// Redis

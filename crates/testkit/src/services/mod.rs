//! The services a cluster test runs against: a real etcd and a real Redis, each a
//! process of its own on free loopback ports with a temporary data directory,
//! stopped and removed when dropped.
//!
//! Test support only. Issue 24 asks for no mocks: cluster tests talk to the same
//! etcd and Redis an operator runs, from Debian's `etcd-server` and `redis-server`
//! packages. A missing binary fails the test with the package to install rather
//! than skipping it, so a green run always means the service was really there.

mod etcd;
mod redis;

use std::net::TcpListener;

pub use etcd::EtcdServer;
pub use redis::RedisServer;

/// A loopback port free now (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

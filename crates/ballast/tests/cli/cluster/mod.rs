//! Cluster mode with real parts (issue 24): one etcd from Debian's package on free
//! loopback ports, and real `ballast serve` processes as the fleet's nodes, each
//! with its own file (`[cluster]`, admin address, state directory, its own bind
//! for the fleet's listener). The first node's file carries the fleet's config
//! and seeds etcd; the others carry only their own tables and wait for it.
//!
//! What each file proves: `changes.rs` propagation through any node, racing
//! writers, refusals, `ballast cluster export/import`; `outage.rs` etcd stopped
//! under load and a node killed and restarted.

mod changes;
mod outage;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use ballast_testkit::pki::TempDir;
use ballast_testkit::{BallastProcess, EtcdServer, Reply};

use crate::config_source::call;
use crate::BIN;

/// How long a change may take to reach every node before a test fails (the
/// measured figure is milliseconds; this bound holds on a loaded machine).
const CONVERGE: Duration = Duration::from_secs(10);

/// The fleet's config the first node seeds etcd with.
pub fn fleet_tables(backend: SocketAddr) -> String {
    fleet_tables_with(&[backend], "")
}

/// The fleet's config over `backends`, the group getting `group_extra` too.
pub fn fleet_tables_with(backends: &[SocketAddr], group_extra: &str) -> String {
    let targets: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ address = \"{b}\" }}"))
        .collect();
    format!(
        r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "web" }}

[[target_groups]]
name = "web"
{group_extra}
targets = [{}]
"#,
        targets.join(", ")
    )
}

/// A node's own file: its name, etcd, its admin address, state and binds
/// (`public` on a free port unless `extra` sets `listener_binds`).
fn node_file(name: &str, etcd: &str, prefix: &str, state: &TempDir, extra: &str) -> String {
    let binds = if extra.contains("listener_binds") {
        ""
    } else {
        "listener_binds = { public = \"127.0.0.1:0\" }\n"
    };
    format!(
        r#"
[admin]
bind = "127.0.0.1:0"

[state]
dir = {state:?}

[access_log]
path = "off"

[cluster]
node_name = "{name}"
etcd = ["{etcd}"]
prefix = "{prefix}"
lease_ttl = "3s"
{binds}{extra}"#,
        state = state.path.display().to_string(),
    )
}

pub struct Node {
    pub name: String,
    pub process: BallastProcess,
    pub admin: SocketAddr,
    /// The file's text, to start the node again on the same state.
    pub file: String,
    pub state: TempDir,
}

impl Node {
    pub fn start(name: &str, file: String, state: TempDir) -> Node {
        let process = BallastProcess::spawn(std::path::Path::new(BIN), &file);
        let admin = process.admin_addr();
        Node {
            name: name.to_string(),
            process,
            admin,
            file,
            state,
        }
    }

    /// SIGKILL, then start again on the same file and state directory.
    pub fn kill_and_restart(self) -> Node {
        let Node {
            name,
            mut process,
            file,
            state,
            ..
        } = self;
        process.crash();
        drop(process);
        Node::start(&name, file, state)
    }

    pub async fn call(&self, method: &str, path: &str, body: &str) -> Reply {
        call(self.admin, method, path, body).await
    }

    /// The revision this node runs (its config's `version`).
    pub async fn version(&self) -> u64 {
        let r = self.call("GET", "/api/v1/config", "").await;
        r.json()["version"].as_u64().expect("version")
    }

    /// `GET /api/v1/cluster`.
    pub async fn cluster(&self) -> Value {
        let r = self.call("GET", "/api/v1/cluster", "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Add a target through this node's admin API; the answer's status and version.
    pub async fn add_target(&self, address: &str) -> (u16, Option<u64>, String) {
        let body = format!("{{\"address\": \"{address}\"}}");
        let r = self
            .call("POST", "/api/v1/target-groups/web/targets", &body)
            .await;
        let version = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["version"].as_u64());
        (r.status.as_u16(), version, r.text())
    }
}

/// One etcd and `n` nodes on it; node 0 seeds the fleet's config.
pub struct Fleet {
    pub etcd: EtcdServer,
    pub prefix: String,
    pub nodes: Vec<Node>,
}

impl Fleet {
    pub fn start(n: usize, backend: SocketAddr) -> Fleet {
        Self::start_with(n, &fleet_tables(backend), |_| String::new())
    }

    /// `n` nodes, node 0 seeding `tables`, node `i`'s `[cluster]` getting
    /// `extra(i)` too.
    pub fn start_with(n: usize, tables: &str, extra: impl Fn(usize) -> String) -> Fleet {
        let etcd = EtcdServer::start();
        let prefix = "/ballast-test/".to_string();
        let mut nodes = Vec::new();
        for i in 0..n {
            let name = format!("node-{i}");
            let state = TempDir::new(&format!("cluster-{name}"));
            let mut file = node_file(&name, &etcd.url(), &prefix, &state, &extra(i));
            if i == 0 {
                file.push_str(tables);
            }
            nodes.push(Node::start(&name, file, state));
        }
        Fleet {
            etcd,
            prefix,
            nodes,
        }
    }

    /// Wait until every node runs `revision` or newer; when the last did.
    pub async fn converged(&self, revision: u64) -> Instant {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let mut behind = Vec::new();
            for n in &self.nodes {
                let v = n.version().await;
                if v < revision {
                    behind.push(format!("{} at {v}", n.name));
                }
            }
            if behind.is_empty() {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "revision {revision} not applied within {CONVERGE:?}: {}",
                behind.join(", ")
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Every node's registration in etcd, once each shows `revision` or newer:
    /// (name, applied_at).
    pub async fn registrations_at(&self, revision: u64) -> Vec<(String, SystemTime)> {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let regs: Vec<Value> = self
                .etcd
                .get_prefix(&format!("{}nodes/", self.prefix))
                .into_iter()
                .filter_map(|(_, v)| serde_json::from_str(&v).ok())
                .collect();
            let done = regs.len() == self.nodes.len()
                && regs
                    .iter()
                    .all(|r| r["applied_revision"].as_u64().unwrap_or(0) >= revision);
            if done {
                return regs
                    .iter()
                    .map(|r| {
                        let at = r["applied_at"].as_str().unwrap_or("");
                        (r["name"].as_str().unwrap_or("").to_string(), parse_time(at))
                    })
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "registrations never all showed revision {revision}: {regs:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// `2026-12-04T01:23:09.398856Z` → SystemTime (UTC, microseconds).
pub fn parse_time(s: &str) -> SystemTime {
    let num = |r: std::ops::Range<usize>| -> i64 {
        s.get(r)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("not an RFC 3339 time: {s:?}"))
    };
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(14..16), num(17..19));
    let micros = num(20..26);
    // days from civil (Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_micros(micros as u64)
}

/// The p-th percentile (0..=100) of `values`, sorted in place.
pub fn percentile(values: &mut [Duration], p: usize) -> Duration {
    values.sort();
    let i = (values.len() * p / 100).min(values.len().saturating_sub(1));
    values[i]
}

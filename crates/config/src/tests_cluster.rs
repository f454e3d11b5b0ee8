//! Config of issue 24: `[cluster]` read in full and round-tripped, each misuse
//! rejected with its path and line, and the split between the fleet's config and
//! a node's own tables.

use std::time::Duration;

use serde_json::json;

use super::tests::VALID;
use super::*;
use crate::cluster::{ClusterConfig, OnRedisError};
use crate::limits::Scope;
use crate::test_fixture::assert_error;

const CLUSTER: &str = r#"
[cluster]
node_name = "node-a"
etcd = ["http://127.0.0.1:2379", "https://etcd.internal:2379/"]
prefix = "/fleet/"
lease_ttl = "5s"
redis = "redis://127.0.0.1:6379"
on_redis_error = "deny"
listener_binds = { public = "127.0.0.1:18081" }

[[rate_limits]]
name = "fleet"
key = "client_ip"
rate = "300/s"
scope = "global"
"#;

fn text() -> String {
    format!("{VALID}{CLUSTER}")
}

fn rejected(from: &str, to: &str, path: &str, needle: &str) {
    let anchor = if to.is_empty() {
        "[cluster]"
    } else {
        to.lines().next().unwrap_or(to)
    };
    rejected_at(from, to, path, anchor, needle);
}

/// As `rejected`, the error's line being that of `anchor`.
fn rejected_at(from: &str, to: &str, path: &str, anchor: &str, needle: &str) {
    let text = text();
    assert!(text.contains(from), "patch {from:?} not in the fixture");
    let text = text.replacen(from, to, 1);
    let errs = Config::from_toml(&text).expect_err("config must be rejected");
    let at = text.find(anchor).expect("patched text");
    let line = text[..at].matches('\n').count() as u32 + 1;
    assert_error(&errs, path, line, needle);
}

#[test]
fn cluster_reads_every_field_and_round_trips() {
    let config = Config::from_toml(&text()).expect("valid");
    let c = config.cluster.as_ref().expect("cluster");
    assert_eq!(c.node_name, "node-a");
    assert_eq!(
        c.etcd,
        ["http://127.0.0.1:2379", "https://etcd.internal:2379"]
    );
    assert_eq!(c.prefix, "/fleet/");
    assert_eq!(c.config_key(), "/fleet/config");
    assert_eq!(c.nodes_prefix(), "/fleet/nodes/");
    assert_eq!(c.lease_ttl, Duration::from_secs(5));
    assert_eq!(c.redis.as_deref(), Some("redis://127.0.0.1:6379"));
    assert_eq!(c.on_redis_error, OnRedisError::Deny);
    assert_eq!(
        c.listener_binds.get("public").map(|a| a.to_string()),
        Some("127.0.0.1:18081".into())
    );
    assert_eq!(config.rate_limits[0].scope, Scope::Global);
    let again = Config::from_toml(&config.to_toml().expect("export")).expect("re-read");
    assert_eq!(again, config);
    let json = Config::from_json(&serde_json::to_value(&config).expect("json")).expect("json");
    assert_eq!(json, config);
}

#[test]
fn cluster_defaults() {
    let config =
        Config::from_toml(&format!("{VALID}\n[cluster]\nnode_name = \"n1\"\n")).expect("valid");
    let c = config.cluster.expect("cluster");
    assert!(c.etcd.is_empty() && !c.shares_config());
    assert_eq!(c.prefix, ClusterConfig::DEFAULT_PREFIX);
    assert_eq!(c.lease_ttl, ClusterConfig::DEFAULT_LEASE_TTL);
    assert_eq!(c.on_redis_error, OnRedisError::Allow);
    assert!(c.redis.is_none() && c.listener_binds.is_empty());
}

#[test]
fn cluster_misuse_is_named() {
    rejected(
        "node_name = \"node-a\"\n",
        "",
        "cluster.node_name",
        "missing",
    );
    rejected(
        "node_name = \"node-a\"",
        "node_name = \"node a\"",
        "cluster.node_name",
        "invalid name",
    );
    rejected(
        "\"http://127.0.0.1:2379\",",
        "\"127.0.0.1:2379\",",
        "cluster.etcd[0]",
        "no scheme",
    );
    rejected(
        "\"http://127.0.0.1:2379\",",
        "\"grpc://127.0.0.1:2379\",",
        "cluster.etcd[0]",
        "not one of http, https",
    );
    rejected(
        "\"http://127.0.0.1:2379\",",
        "\"http://127.0.0.1\",",
        "cluster.etcd[0]",
        "host and a port",
    );
    rejected(
        "prefix = \"/fleet/\"",
        "prefix = \"fleet\"",
        "cluster.prefix",
        "start and end with '/'",
    );
    rejected(
        "lease_ttl = \"5s\"",
        "lease_ttl = \"1s\"",
        "cluster.lease_ttl",
        "out of range",
    );
    rejected(
        "redis = \"redis://127.0.0.1:6379\"",
        "redis = \"http://127.0.0.1:6379\"",
        "cluster.redis",
        "not one of redis, rediss",
    );
    rejected(
        "redis = \"redis://127.0.0.1:6379\"",
        "redis = \"rediss://127.0.0.1:6380\"",
        "cluster.redis",
        "rediss:// (TLS to Redis) is not supported",
    );
    rejected(
        "on_redis_error = \"deny\"",
        "on_redis_error = \"block\"",
        "cluster.on_redis_error",
        "allowed: \"allow\", \"deny\"",
    );
    rejected(
        "listener_binds = { public = \"127.0.0.1:18081\" }",
        "listener_binds = { public = \"somewhere\" }",
        "cluster.listener_binds.public",
        "invalid address",
    );
    rejected(
        "on_redis_error = \"deny\"",
        "etcd_tls = { cert = \"/nonexistent/cert.pem\" }",
        "cluster.etcd_tls.cert",
        "cannot read",
    );
    rejected(
        "on_redis_error = \"deny\"",
        "etcd_auth = { user = \"root\" }",
        "cluster.etcd_auth.password_file",
        "missing",
    );
    rejected_at(
        "redis = \"redis://127.0.0.1:6379\"\n",
        "",
        "rate_limits[0].scope",
        "scope = \"global\"",
        "set [cluster] redis",
    );
}

#[test]
fn a_node_fed_by_etcd_may_leave_out_its_listeners() {
    let node = "[cluster]\nnode_name = \"n1\"\netcd = [\"http://127.0.0.1:2379\"]\n";
    let config = Config::from_toml(node).expect("listeners come from the fleet");
    assert!(config.listeners.is_empty());
    let alone = "[cluster]\nnode_name = \"n1\"\n";
    let errs = Config::from_toml(alone).expect_err("no etcd: the file must have listeners");
    assert!(errs.iter().any(|e| e.path == "listeners"), "{errs}");
}

#[test]
fn the_fleet_gets_shared_tables_and_each_node_its_own() {
    let a = Config::from_toml(&text()).expect("valid");
    let fleet = a.fleet_value(None).expect("fleet");
    for table in crate::fleet::NODE_TABLES {
        assert!(fleet.get(table).is_none(), "{table} is the node's own");
    }
    // The file's own listener address seeds the fleet (binds apply to what
    // comes from etcd).
    assert_eq!(fleet["listeners"][0]["bind"], json!("127.0.0.1:8080"));

    // Another node: its own admin, state and binds over the same fleet config.
    let b_text = format!(
        "{}\n[cluster]\nnode_name = \"node-b\"\netcd = [\"http://127.0.0.1:2379\"]\nredis = \"redis://127.0.0.1:6379\"\nlisteners_placeholder\n",
        "[admin]\nbind = \"127.0.0.1:9911\"\n[state]\ndir = \"/tmp/b\"\n"
    )
    .replace(
        "listeners_placeholder",
        "listener_binds = { public = \"127.0.0.1:28081\" }",
    );
    let b_node = Config::from_toml(&b_text).expect("node b");
    let mut shared = fleet.clone();
    shared["listeners"][0]["bind"] = json!("0.0.0.0:80");
    let (b, unknown) = Config::localize(&shared, &b_node).expect("localized");
    assert!(unknown.is_empty());
    assert_eq!(b.admin.bind.to_string(), "127.0.0.1:9911");
    assert_eq!(b.listeners[0].bind.to_string(), "127.0.0.1:28081");
    assert_eq!(b.target_groups, a.target_groups);
    assert_eq!(
        b.cluster.as_ref().map(|c| c.node_name.as_str()),
        Some("node-b")
    );

    // Back to the fleet: b's own address is replaced by the fleet's.
    let back = b.fleet_value(Some(&shared)).expect("fleet");
    assert_eq!(back, shared);

    // An address changed through b's API is the fleet's new address.
    let mut moved = b.clone();
    moved.listeners[0].bind = "127.0.0.1:38081".parse().expect("addr");
    let back = moved.fleet_value(Some(&shared)).expect("fleet");
    assert_eq!(back["listeners"][0]["bind"], json!("127.0.0.1:38081"));

    // A bind for a listener the fleet lacks is said, not fatal.
    let mut c_node = b_node.clone();
    if let Some(c) = c_node.cluster.as_mut() {
        c.listener_binds
            .insert("admin-ui".into(), "127.0.0.1:1".parse().expect("addr"));
    }
    let (_, unknown) = Config::localize(&shared, &c_node).expect("localized");
    assert_eq!(unknown, ["admin-ui"]);

    // A fleet config that does not validate is refused with its errors.
    let mut bad = shared.clone();
    bad["target_groups"][0]["targets"] = json!("nope");
    assert!(Config::localize(&bad, &b_node).is_err());
}

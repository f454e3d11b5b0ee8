//! A node following the fleet's config, in process, against a real etcd: it
//! resumes from the revision after its own, reads afresh when etcd compacted
//! the revisions it needed, and refuses a revision that does not validate here
//! while keeping the one it runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_admin::Control;
use ballast_cluster::Node;
use ballast_config::Config;
use ballast_proxy::Server;
use ballast_testkit::pki::TempDir;
use ballast_testkit::EtcdServer;
use serde_json::{json, Value};

fn node_file(etcd: &EtcdServer, state: &TempDir) -> Config {
    let text = format!(
        r#"
[access_log]
path = "off"

[state]
dir = {:?}

[cluster]
node_name = "follower"
etcd = ["{}"]
prefix = "/f/"
listener_binds = {{ public = "127.0.0.1:0" }}
"#,
        state.path.display().to_string(),
        etcd.url()
    );
    Config::from_toml(&text).expect("node file")
}

fn shared(targets: &[&str]) -> Value {
    json!({
        "listeners": [{ "name": "public", "bind": "127.0.0.1:0",
                        "default_action": { "type": "forward", "target_group": "web" } }],
        "target_groups": [{ "name": "web",
                            "targets": targets.iter().map(|t| json!({ "address": t })).collect::<Vec<_>>() }],
    })
}

async fn wait_for(server: &Server, version: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.snapshot().version < version {
        assert!(
            Instant::now() < deadline,
            "revision {version} never applied; at {}",
            server.snapshot().version
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_node_behind_a_compaction_reads_the_config_afresh() {
    let etcd = EtcdServer::start();
    let state = TempDir::new("cluster-follow");
    let file = node_file(&etcd, &state);
    let first = shared(&["127.0.0.1:1"]);
    let r1 = etcd.put("/f/config", &first.to_string());
    let (config, _) = Config::localize(&first, &file).expect("valid");
    let server = Server::start_at(config, r1).await.expect("server");
    let control = Arc::new(Control::new(server.clone(), None));
    let node = Node::new(file, "127.0.0.1:9".parse().expect("addr")).expect("node");
    node.started_on(r1, Some(first));
    control.set_fleet(node.clone());

    // While the node is not looking: two revisions, and history compacted past them.
    etcd.put("/f/config", &shared(&["127.0.0.1:2"]).to_string());
    let r3 = etcd.put("/f/config", &shared(&["127.0.0.1:3"]).to_string());
    etcd.gateway("/v3/kv/compaction", &json!({ "revision": r3.to_string() }));

    let follow = tokio::spawn(node.clone().follow(control.clone()));
    wait_for(&server, r3).await;
    let snapshot = server.snapshot();
    let group = snapshot.config.target_group("web").expect("group").clone();
    assert_eq!(group.targets.len(), 1);
    assert_eq!(group.targets[0].address.to_string(), "127.0.0.1:3");

    // Then it follows the watch: a next revision arrives by itself.
    let r4 = etcd.put("/f/config", &shared(&["127.0.0.1:4"]).to_string());
    wait_for(&server, r4).await;

    // A revision that does not validate here is refused; the node keeps r4.
    let bad = json!({ "listeners": [], "target_groups": "no" });
    let r5 = etcd.put("/f/config", &bad.to_string());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = ballast_admin::Fleet::status(&*node).await;
        if status["refused"]["revision"] == r5 {
            assert!(
                status["refused"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("target_groups")),
                "{status}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never refused: {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.snapshot().version, r4);
    assert!(
        ballast_admin::Fleet::metrics(&*node).contains("ballast_cluster_refused_revisions_total 1")
    );
    follow.abort();
    server.shutdown().await;
}

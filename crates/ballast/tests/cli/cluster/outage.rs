//! etcd away and nodes killed: the data path does not notice, writes are refused
//! with 503, and every node catches up when etcd is back; a node killed with
//! SIGKILL comes back on the newest revision, from etcd or, with etcd down, from
//! its state directory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_testkit::{backend, eventually, Client};

use super::{Fleet, Node};

/// Whether the node's metrics say etcd is up.
async fn etcd_up(node: &Node) -> bool {
    let text = node.call("GET", "/metrics", "").await.text();
    text.contains("ballast_cluster_etcd_up 1")
}

/// Requests to every node's listener, one client per node, until `stop`:
/// (answered 200, anything else).
fn load(fleet: &Fleet, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<(u64, u64)>> {
    fleet
        .nodes
        .iter()
        .map(|n| {
            let url = format!("http://{}/", n.process.addr);
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = Client::http1();
                let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
                // Bounded: at most 5 minutes or 200,000 requests.
                let deadline = Instant::now() + Duration::from_secs(300);
                for _ in 0..200_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    match client.get(&url).await {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (ok.into_inner(), failed.into_inner())
            })
        })
        .collect()
}

/// etcd stopped for 10 s under continuous load: no request fails, writes are
/// refused with 503 on every node, the API and metrics say etcd is down; when it
/// is back every node says so and runs a change made then, within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stopped_under_load_fails_no_request_and_every_node_catches_up() {
    let b = backend("web").await;
    let mut fleet = Fleet::start(3, b.addr());
    let first = fleet.nodes[0].version().await;
    fleet.converged(first).await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&fleet, stop.clone());

    fleet.etcd.stop();
    let down_at = Instant::now();
    for n in &fleet.nodes {
        eventually(
            "the node sees etcd down",
            Duration::from_secs(10),
            || async { !etcd_up(n).await },
        )
        .await;
        let (status, _, text) = n.add_target("127.0.0.1:45000").await;
        assert_eq!(status, 503, "{}: {text}", n.name);
        assert!(text.contains("unreachable"), "{text}");
        let view = n.cluster().await;
        assert_eq!(view["etcd"]["up"], false, "{view}");
        assert_eq!(view["applied_revision"], first, "{view}");
    }
    // The outage itself: ten seconds, as the issue asks.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down_at.elapsed())).await;

    fleet.etcd.start_again();
    let back = Instant::now();
    // A change made the moment etcd is back, straight into etcd.
    let key = format!("{}config", fleet.prefix);
    let mut shared: serde_json::Value =
        serde_json::from_str(&fleet.etcd.get(&key).expect("the fleet's config")).expect("JSON");
    shared["target_groups"][0]["targets"]
        .as_array_mut()
        .expect("targets")
        .push(serde_json::json!({ "address": "127.0.0.1:45001" }));
    let revision = fleet.etcd.put(&key, &shared.to_string());
    let mut reconnected = Vec::new();
    for n in &fleet.nodes {
        eventually(
            "the node sees etcd back",
            Duration::from_secs(10),
            || async { etcd_up(n).await },
        )
        .await;
        reconnected.push(back.elapsed());
    }
    let converged = fleet.converged(revision).await.duration_since(back);
    eprintln!(
        "etcd back: nodes reconnected after {reconnected:?}; all on revision {revision} after {converged:?}"
    );
    assert!(
        converged < Duration::from_secs(3),
        "every node runs the change made at etcd's return within a second (3 s bound on a loaded machine): {converged:?}"
    );

    stop.store(true, Ordering::Relaxed);
    let mut total = (0, 0);
    for c in clients {
        let (ok, failed) = c.await.expect("client");
        total = (total.0 + ok, total.1 + failed);
    }
    eprintln!(
        "under load during the outage: {} answered, {} failed",
        total.0, total.1
    );
    assert_eq!(total.1, 0, "no request failed");
    assert!(total.0 > 100, "the load ran: {total:?}");
    // Writes work again.
    let (status, _, text) = fleet.nodes[1].add_target("127.0.0.1:45002").await;
    assert!(status == 200 || status == 201, "{text}");
    fleet.etcd.stop();
    drop(fleet);
}

/// A node killed with SIGKILL while the others change the config comes back on
/// the newest revision; killed again while etcd is down, it starts from its
/// state directory (and says so), then follows etcd when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_comes_back_on_the_newest_revision() {
    let b = backend("web").await;
    let mut fleet = Fleet::start(3, b.addr());
    let first = fleet.nodes[0].version().await;
    fleet.converged(first).await;

    let killed = fleet.nodes.pop().expect("node 2");
    let mut killed = Some(killed);
    let mut newest = first;
    for i in 0..5u16 {
        // The kill happens while the others write.
        if i == 1 {
            let mut k = killed.take().expect("node");
            k.process.crash();
            killed = Some(k);
        }
        let (status, version, text) = fleet.nodes[usize::from(i) % 2]
            .add_target(&format!("127.0.0.1:{}", 46_000 + i))
            .await;
        assert!(status == 200 || status == 201, "{text}");
        newest = version.expect("version");
        // The next writer must run this revision, or its write is (rightly) 409.
        fleet.converged(newest).await;
    }
    let node = Node::start(
        "node-2",
        killed.as_ref().expect("node").file.clone(),
        killed.take().expect("node").state,
    );
    assert_eq!(node.version().await, newest, "back on the newest revision");
    node.process.wait_for_log(
        "starting on the fleet's config from etcd",
        Duration::from_secs(5),
    );
    fleet.nodes.push(node);
    fleet.converged(newest).await;

    // Killed again with etcd down: its state directory has the newest revision.
    fleet.etcd.stop();
    let node = fleet.nodes.pop().expect("node 2").kill_and_restart();
    node.process.wait_for_log(
        "starting from the config persisted in state.dir",
        Duration::from_secs(10),
    );
    assert_eq!(node.version().await, newest);
    let r = Client::http1()
        .get(&format!("http://{}/", node.process.addr))
        .await
        .expect("request");
    assert_eq!(r.status, 200, "serves from its state while etcd is down");
    fleet.etcd.start_again();
    eventually(
        "node 2 follows etcd again",
        Duration::from_secs(10),
        || async { node.cluster().await["etcd"]["up"] == true },
    )
    .await;
    fleet.nodes.push(node);
    let (status, version, text) = fleet.nodes[0].add_target("127.0.0.1:46100").await;
    assert!(status == 200 || status == 201, "{text}");
    fleet.converged(version.expect("version")).await;
}

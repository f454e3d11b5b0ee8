//! Changes in a fleet: through any node, to every node; racing writers; a
//! revision one node cannot run; the config moved out of etcd and back in.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, SystemTime};

use ballast_testkit::{backend, eventually, Client};

use super::{percentile, Fleet};
use crate::BIN;

/// 100 changes, each through the next node's admin API: every node applies
/// every one; the time from the write's acknowledgement to the last node's
/// apply (from the nodes' registrations) is printed as p50/p99/max.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_applies_a_change_made_through_any_node() {
    let b = backend("web").await;
    let fleet = Fleet::start(3, b.addr());
    let first = fleet.nodes[0].version().await;
    assert!(first > 0, "seeded at a revision");
    fleet.converged(first).await;

    let mut delays = Vec::new();
    let mut before_ack = 0;
    for i in 0..100u16 {
        let node = &fleet.nodes[usize::from(i) % 3];
        let address = format!("127.0.0.1:{}", 40_000 + i);
        let (status, version, text) = node.add_target(&address).await;
        let acked = SystemTime::now();
        assert!(status == 200 || status == 201, "{}: {text}", node.name);
        let version = version.expect("a version");
        fleet.converged(version).await;
        let applied = fleet.registrations_at(version).await;
        let last = applied.iter().map(|(_, at)| *at).max().expect("nodes");
        // Nodes often apply before the acknowledgement reaches the client.
        match last.duration_since(acked) {
            Ok(d) => delays.push(d),
            Err(_) => {
                before_ack += 1;
                delays.push(Duration::ZERO);
            }
        }
    }
    let (p50, p99) = (percentile(&mut delays, 50), percentile(&mut delays, 99));
    let max = delays.iter().max().copied().unwrap_or_default();
    eprintln!("propagation over 100 changes, acknowledgement to the last of 3 nodes: p50 {p50:?}, p99 {p99:?}, max {max:?} ({before_ack} changes were on every node before the client had the acknowledgement)");

    // Every node runs the same fleet config, its own listener address aside.
    let configs = futures_util::future::join_all(
        fleet
            .nodes
            .iter()
            .map(|n| n.call("GET", "/api/v1/config", "")),
    )
    .await;
    let groups: Vec<_> = configs
        .iter()
        .map(|r| r.json()["config"]["target_groups"].clone())
        .collect();
    assert!(groups.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(groups[0][0]["targets"].as_array().map(Vec::len), Some(101));
    for n in &fleet.nodes {
        let listener = n.process.addr;
        let r = Client::http1()
            .get(&format!("http://{listener}/"))
            .await
            .expect("request");
        assert_eq!(r.status, 200, "{} serves", n.name);
        let status = n.cluster().await;
        assert_eq!(status["enabled"], true);
        assert_eq!(status["etcd"]["up"], true);
        let listed = status["nodes"].as_array().expect("nodes");
        assert_eq!(listed.len(), 3, "{status}");
        assert!(listed.iter().all(|n| n["healthy"] == true), "{status}");
    }

    // The dashboard shows the fleet, all on the newest revision.
    let newest = fleet.nodes[0].version().await;
    let profile = ballast_testkit::pki::TempDir::new("cluster-dashboard");
    let url = format!("http://{}/", fleet.nodes[1].admin);
    let (dom, log) = crate::dashboard::browse(&url, "--dump-dom", &profile.path).await;
    assert!(
        dom.contains(&format!("3 nodes · 3 on revision {newest}")),
        "the cluster panel: {}",
        dom.lines()
            .filter(|l| l.contains("cluster"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(dom.contains("node-1 <span class=\"muted\">(this node)</span>"));
    assert!(crate::dashboard::console_errors(&log).is_empty(), "{log}");
}

/// Two writers on two nodes read the same revision and write at once, each
/// its own change guarded by that revision (`{"version": V, "config": ...}`):
/// exactly one wins and the other gets 409 naming the current revision, 100
/// times over, whichever reaches etcd first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_racing_writers_exactly_one_wins() {
    let b = backend("web").await;
    let fleet = Fleet::start(2, b.addr());
    let (a, c) = (&fleet.nodes[0], &fleet.nodes[1]);
    let mut revision = a.version().await;
    let mut conflicts_named = 0;
    for race in 0..100u16 {
        fleet.converged(revision).await;
        let (read_a, read_c) = tokio::join!(
            a.call("GET", "/api/v1/config", ""),
            c.call("GET", "/api/v1/config", "")
        );
        let (mut body_a, mut body_c) = (read_a.json(), read_c.json());
        assert_eq!(body_a["version"], revision);
        assert_eq!(body_c["version"], revision);
        for (body, port) in [(&mut body_a, 41_000 + race), (&mut body_c, 42_000 + race)] {
            body["config"]["target_groups"][0]["targets"]
                .as_array_mut()
                .expect("targets")
                .push(serde_json::json!({ "address": format!("127.0.0.1:{port}") }));
        }
        let (text_a, text_c) = (body_a.to_string(), body_c.to_string());
        let (ra, rc) = tokio::join!(
            a.call("PUT", "/api/v1/config", &text_a),
            c.call("PUT", "/api/v1/config", &text_c)
        );
        let both = [&ra, &rc];
        let won: Vec<u64> = both
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.json()["version"].as_u64().expect("version"))
            .collect();
        let lost: Vec<_> = both.iter().filter(|r| r.status == 409).collect();
        assert_eq!(
            (won.len(), lost.len()),
            (1, 1),
            "race {race}: {} / {}",
            ra.text(),
            rc.text()
        );
        let text = lost[0].text();
        assert!(
            text.contains("revision") || text.contains("version"),
            "{text}"
        );
        if text.contains(&won[0].to_string()) {
            conflicts_named += 1;
        }
        revision = won[0];
    }
    eprintln!("100 races: one winner each; {conflicts_named} losers were told the winner's revision (the others lost on their own node, which had not applied it yet, and were told that)");
    fleet.converged(revision).await;
    let targets = a.call("GET", "/api/v1/config", "").await.json()["config"]["target_groups"][0]
        ["targets"]
        .as_array()
        .map(Vec::len);
    assert_eq!(targets, Some(101), "one target per race, none lost");
}

/// A revision that one node cannot run (its address for a new listener is
/// taken there) is refused on that node, which keeps serving the revision
/// before and says so; the other nodes run it; a later revision heals it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_one_node_cannot_run_is_refused_there_and_reported() {
    let b = backend("web").await;
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let taken_addr = taken.local_addr().expect("addr");
    // Nodes 0 and 2 bind `extra` where they like; node 1 takes the fleet's address.
    let fleet = Fleet::start_with(3, &super::fleet_tables(b.addr()), |i| {
        if i == 1 {
            String::new()
        } else {
            "listener_binds = { public = \"127.0.0.1:0\", extra = \"127.0.0.2:0\" }\n".into()
        }
    });
    let before = fleet.nodes[0].version().await;
    fleet.converged(before).await;

    let mut body = fleet.nodes[0]
        .call("GET", "/api/v1/config", "")
        .await
        .json();
    let mut extra = body["config"]["listeners"][0].clone();
    extra["name"] = "extra".into();
    extra["bind"] = taken_addr.to_string().into();
    body["config"]["listeners"]
        .as_array_mut()
        .expect("listeners")
        .push(extra);
    let r = fleet.nodes[0]
        .call("PUT", "/api/v1/config", &body.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let refused = r.json()["version"].as_u64().expect("version");

    // Node 2 runs it; node 1 says why it does not, and keeps its revision.
    eventually(
        "node 2 runs it, node 1 refuses it",
        Duration::from_secs(10),
        || async {
            fleet.nodes[2].version().await >= refused
                && !fleet.nodes[1].cluster().await["refused"].is_null()
        },
    )
    .await;
    let status = fleet.nodes[1].cluster().await;
    assert_eq!(status["refused"]["revision"], refused, "{status}");
    assert!(
        status["refused"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&taken_addr.to_string())),
        "{status}"
    );
    assert_eq!(fleet.nodes[1].version().await, before);
    let metrics = fleet.nodes[1].call("GET", "/metrics", "").await.text();
    assert!(metrics.contains("ballast_cluster_refused_revisions_total 1"));
    assert!(metrics.contains(&format!("ballast_cluster_applied_revision {before}")));
    // Its registration says it too, so any node's view shows it.
    eventually(
        "node 1's registration says it",
        Duration::from_secs(10),
        || async {
            let view = fleet.nodes[0].cluster().await;
            view["nodes"].as_array().is_some_and(|ns| {
                ns.iter()
                    .any(|n| n["name"] == "node-1" && n["healthy"] == false)
            })
        },
    )
    .await;
    let r = Client::http1()
        .get(&format!("http://{}/", fleet.nodes[1].process.addr))
        .await
        .expect("request");
    assert_eq!(r.status, 200, "node 1 keeps serving");

    // A revision without the listener heals node 1.
    let (status, version, text) = fleet.nodes[2].add_target("127.0.0.1:43000").await;
    assert!(status == 200 || status == 201, "{text}");
    let mut body = fleet.nodes[2]
        .call("GET", "/api/v1/config", "")
        .await
        .json();
    body["config"]["listeners"]
        .as_array_mut()
        .expect("listeners")
        .retain(|l| l["name"] != "extra");
    let r = fleet.nodes[2]
        .call("PUT", "/api/v1/config", &body.to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let healed = r.json()["version"].as_u64().expect("version");
    assert!(healed > version.unwrap_or(0));
    fleet.converged(healed).await;
    let regs = fleet.registrations_at(healed).await;
    assert_eq!(regs.len(), 3);
    drop(taken);
}

/// `ballast cluster export` prints the fleet's config with its revision;
/// `import` refuses a stale revision and writes a current one, which every
/// node applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_config_moves_out_of_etcd_and_back_in() {
    let b = backend("web").await;
    let fleet = Fleet::start(2, b.addr());
    let revision = fleet.nodes[0].version().await;
    fleet.converged(revision).await;
    let etcd = ["--etcd", &fleet.etcd.url(), "--prefix", &fleet.prefix];

    let out = Command::new(BIN)
        .args(["cluster", "export"])
        .args(etcd)
        .output()
        .expect("run export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(&format!("revision {revision}")), "{text}");
    assert!(
        !text.contains("[admin]") && !text.contains("[cluster]"),
        "{text}"
    );
    let dir = ballast_testkit::pki::TempDir::new("cluster-export");
    let file = dir.path.join("fleet.toml");
    let changed = text.replace(
        &format!("address = \"{}\"", b.addr()),
        &format!(
            "address = \"{}\"\n\n[[target_groups.targets]]\naddress = \"127.0.0.1:44000\"",
            b.addr()
        ),
    );
    assert_ne!(changed, text, "the export names the target: {text}");
    std::fs::write(&file, &changed).expect("write");

    let check = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .expect("run check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let stale = Command::new(BIN)
        .args(["cluster", "import"])
        .arg(&file)
        .args(["--revision", &(revision - 1).to_string()])
        .args(etcd)
        .output()
        .expect("run import");
    assert_eq!(stale.status.code(), Some(1));
    let err = String::from_utf8_lossy(&stale.stderr);
    assert!(err.contains(&format!("at revision {revision}")), "{err}");
    assert_eq!(fleet.nodes[1].version().await, revision, "nothing written");

    let ok = Command::new(BIN)
        .args(["cluster", "import"])
        .arg(&file)
        .args(["--revision", &revision.to_string()])
        .args(etcd)
        .output()
        .expect("run import");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let newer = fleet.etcd.revision();
    fleet.converged(revision + 1).await;
    let targets = fleet.nodes[1]
        .call("GET", "/api/v1/config", "")
        .await
        .json()["config"]["target_groups"][0]["targets"]
        .as_array()
        .map(Vec::len);
    assert_eq!(targets, Some(2));
    assert!(newer > revision);
}

/// A sticky-session cookie made by one node keeps the client on its target on
/// every other node: the fleet shares one stickiness key through etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_cookie_from_one_node_holds_on_every_node() {
    let (a, b) = (backend("a").await, backend("b").await);
    let tables = super::fleet_tables_with(
        &[a.addr(), b.addr()],
        "stickiness = { type = \"lb_cookie\", duration = \"1h\" }",
    );
    let fleet = Fleet::start_with(3, &tables, |_| String::new());
    let revision = fleet.nodes[0].version().await;
    fleet.converged(revision).await;
    let key = format!("{}stickiness_key", fleet.prefix);
    let shared = fleet.etcd.get(&key).expect("the fleet's key in etcd");
    assert!(shared.len() >= 32);
    for n in &fleet.nodes {
        let own = std::fs::read_to_string(n.state.path.join("stickiness.key")).expect("key file");
        assert_eq!(own.trim(), shared, "{} holds the fleet's key", n.name);
    }

    let client = Client::http1();
    let first = client
        .get(&format!("http://{}/", fleet.nodes[0].process.addr))
        .await
        .expect("request");
    let cookie = first
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a sticky cookie")
        .to_string();
    let target = first.backend();
    for n in &fleet.nodes {
        for _ in 0..20 {
            let req = http::Request::builder()
                .uri(format!("http://{}/", n.process.addr))
                .header("cookie", &cookie)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request");
            let r = client.send(req).await.expect("request");
            assert_eq!(r.status, 200);
            assert_eq!(
                r.backend(),
                target,
                "{} keeps the client on its target",
                n.name
            );
        }
    }
}

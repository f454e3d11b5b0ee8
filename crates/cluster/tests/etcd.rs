//! The etcd client against a real etcd (Debian's `etcd-server`, started by the
//! test on free loopback ports): each call cluster mode makes, compaction, lease
//! expiry, a dead endpoint skipped, TLS with a client certificate, and users.

use std::time::{Duration, Instant};

use ballast_cluster::etcd::{Cas, Etcd, WatchEvent};
use ballast_config::cluster::{ClusterConfig, EtcdAuth, EtcdTls};
use ballast_testkit::pki::{Ca, TempDir};
use ballast_testkit::EtcdServer;
use serde_json::json;

fn cluster(urls: &[String]) -> ClusterConfig {
    ClusterConfig {
        node_name: "test".into(),
        etcd: urls.to_vec(),
        prefix: "/t/".into(),
        etcd_tls: None,
        etcd_auth: None,
        lease_ttl: Duration::from_secs(10),
        redis: None,
        on_redis_error: Default::default(),
        listener_binds: Default::default(),
    }
}

fn client(etcd: &EtcdServer) -> Etcd {
    Etcd::new(&cluster(&[etcd.url()])).expect("client")
}

#[tokio::test]
async fn range_put_and_compare_and_swap() {
    let etcd = EtcdServer::start();
    let c = client(&etcd);
    assert_eq!(c.get("/t/config").await.expect("get").0, None);
    // Absent: only a CAS on 0 writes it.
    assert_eq!(
        c.compare_and_swap("/t/config", b"one", 5)
            .await
            .expect("cas"),
        Cas::Lost { current: 0 }
    );
    let Cas::Won(first) = c
        .compare_and_swap("/t/config", b"one", 0)
        .await
        .expect("cas")
    else {
        panic!("an absent key is created by a CAS on 0");
    };
    let (kv, _) = c.get("/t/config").await.expect("get");
    let kv = kv.expect("written");
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"one"[..], first));
    // Another key moves the store's revision, not this key's.
    let other = c.put("/t/other", b"x", 0).await.expect("put");
    assert!(other > first);
    assert_eq!(
        c.compare_and_swap("/t/config", b"two", first + 100)
            .await
            .expect("cas"),
        Cas::Lost { current: first }
    );
    let Cas::Won(second) = c
        .compare_and_swap("/t/config", b"two", first)
        .await
        .expect("cas")
    else {
        panic!("a CAS on the key's revision wins");
    };
    assert!(second > other);
    assert_eq!(
        c.compare_and_swap("/t/config", b"three", first)
            .await
            .expect("cas"),
        Cas::Lost { current: second },
        "the revision it read is gone"
    );
    let listed = c.list("/t/").await.expect("list");
    let keys: Vec<_> = listed.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/t/config", "/t/other"]);
    assert!(c.list("/u/").await.expect("list").is_empty());
}

#[tokio::test]
async fn a_watch_sees_every_write_in_order_and_says_when_history_is_compacted() {
    let etcd = EtcdServer::start();
    let c = client(&etcd);
    let r1 = c.put("/t/config", b"a", 0).await.expect("put");
    let mut watch = c.watch("/t/config", r1).await.expect("watch");
    let r2 = c.put("/t/config", b"b", 0).await.expect("put");
    c.put("/t/elsewhere", b"-", 0).await.expect("put");
    let r3 = c.put("/t/config", b"c", 0).await.expect("put");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 3 && Instant::now() < deadline {
        let events = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("an event in time")
            .expect("events");
        for e in events {
            if let WatchEvent::Put { value, revision } = e {
                seen.push((value, revision));
            }
        }
    }
    assert_eq!(
        seen,
        [
            (b"a".to_vec(), r1),
            (b"b".to_vec(), r2),
            (b"c".to_vec(), r3)
        ]
    );

    // History up to r3 compacted: a watch from r2 is told so.
    c.compact(r3).await.expect("compact");
    let mut stale = c.watch("/t/config", r2).await.expect("watch");
    let mut said = Vec::new();
    for _ in 0..3 {
        let events = tokio::time::timeout(Duration::from_secs(5), stale.next())
            .await
            .expect("an answer in time")
            .expect("events");
        said.extend(events);
        if said
            .iter()
            .any(|e| matches!(e, WatchEvent::Compacted { .. }))
        {
            break;
        }
    }
    assert!(
        said.iter().any(
            |e| matches!(e, WatchEvent::Compacted { compact_revision } if *compact_revision == r3)
        ),
        "{said:?}"
    );
    // etcd stopping ends a watch with an error, never silently.
    let mut etcd = etcd;
    let mut live = c.watch("/t/config", r3 + 1).await.expect("watch");
    etcd.stop();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match live.next().await {
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("the watch ends");
    assert!(ended.is_unreachable(), "{ended}");
    let e = c.get("/t/config").await.expect_err("etcd is down");
    assert!(e.is_unreachable(), "{e}");
}

#[tokio::test]
async fn a_key_on_a_lease_goes_when_the_lease_is_not_renewed() {
    let etcd = EtcdServer::start();
    let c = client(&etcd);
    let kept = c.grant(Duration::from_secs(2)).await.expect("grant");
    let dropped = c.grant(Duration::from_secs(2)).await.expect("grant");
    c.put("/t/nodes/kept", b"1", kept).await.expect("put");
    c.put("/t/nodes/dropped", b"1", dropped).await.expect("put");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(c.keep_alive(kept).await.expect("keep alive") > 0);
        let keys: Vec<_> = c
            .list("/t/nodes/")
            .await
            .expect("list")
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        if keys == ["/t/nodes/kept"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lease never expired: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        c.keep_alive(dropped).await.expect("keep alive"),
        0,
        "expired"
    );
    c.revoke(kept).await.expect("revoke");
    assert!(c.list("/t/nodes/").await.expect("list").is_empty());
}

/// A watch on `/t/k`, then a put of it through the same client: the watch must
/// see the put (within 5 s). The put's revision.
async fn watch_then_put(c: &Etcd) -> i64 {
    let mut watch = c
        .watch("/t/k", 1)
        .await
        .expect("a watch on the live endpoint");
    let rev = c
        .put("/t/k", b"v", 0)
        .await
        .expect("the live endpoint answers");
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let events = watch.next().await.expect("events");
            let put =
                |e: &WatchEvent| matches!(e, WatchEvent::Put { revision, .. } if *revision == rev);
            if events.iter().any(put) {
                return;
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "the watch saw the put");
    rev
}

#[tokio::test]
async fn a_dead_endpoint_is_skipped() {
    let etcd = EtcdServer::start();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let c = Etcd::new(&cluster(&[dead_url, etcd.url()])).expect("client");
    // A watch made first (before any call found the live endpoint) skips it too.
    let rev = watch_then_put(&c).await;
    assert!(rev > 0);
    assert_eq!(
        c.get("/t/k").await.expect("get").0.map(|kv| kv.value),
        Some(b"v".to_vec())
    );
}

/// An endpoint that takes connections and never answers (a hung member) costs
/// a call and a watch one bound each, then the live endpoint serves them.
#[tokio::test]
async fn a_silent_endpoint_is_left_after_its_bound() {
    let etcd = EtcdServer::start();
    // The kernel completes connections into the backlog; nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    let c = Etcd::new(&cluster(&[silent_url, etcd.url()])).expect("client");
    watch_then_put(&c).await;
    drop(silent);
}

#[tokio::test]
async fn tls_with_a_client_certificate() {
    let dir = TempDir::new("etcd-tls");
    let ca = Ca::new("etcd test CA");
    let ca_file = dir.write("ca.pem", &ca.cert_pem);
    let (cert, key) = ca.server_and_client(&["127.0.0.1"]).write(&dir, "server");
    let (client_cert, client_key) = ca.client("ballast", 7).write(&dir, "client");
    let etcd = EtcdServer::start_tls(&cert, &key, Some(&ca_file));

    let mut with_cert = cluster(&[etcd.tls_url()]);
    with_cert.etcd_tls = Some(EtcdTls {
        ca: Some(ca_file.clone()),
        cert: Some(client_cert),
        key: Some(client_key),
    });
    let c = Etcd::new(&with_cert).expect("client");
    let rev = c.put("/t/tls", b"secure", 0).await.expect("put over TLS");
    assert!(rev > 0);

    // Without a client certificate, etcd refuses the connection.
    let mut without = cluster(&[etcd.tls_url()]);
    without.etcd_tls = Some(EtcdTls {
        ca: Some(ca_file),
        cert: None,
        key: None,
    });
    let c = Etcd::new(&without).expect("client");
    assert!(c.get("/t/tls").await.is_err());
}

#[tokio::test]
async fn users_and_passwords() {
    let etcd = EtcdServer::start();
    etcd.gateway(
        "/v3/auth/user/add",
        &json!({ "name": "root", "password": "root-pw" }),
    );
    etcd.gateway("/v3/auth/role/add", &json!({ "name": "root" }));
    etcd.gateway(
        "/v3/auth/user/grant",
        &json!({ "user": "root", "role": "root" }),
    );
    etcd.gateway("/v3/auth/enable", &json!({}));
    let dir = TempDir::new("etcd-auth");
    let mut config = cluster(&[etcd.url()]);
    config.etcd_auth = Some(EtcdAuth {
        user: "root".into(),
        password_file: dir.write("password", "root-pw\n"),
    });
    let c = Etcd::new(&config).expect("client");
    let rev = c.put("/t/auth", b"ok", 0).await.expect("put as root");
    assert!(rev > 0);
    let anonymous = client(&etcd);
    assert!(anonymous.get("/t/auth").await.is_err(), "auth is on");
    config.etcd_auth = Some(EtcdAuth {
        user: "root".into(),
        password_file: dir.write("wrong", "nope"),
    });
    let wrong = Etcd::new(&config).expect("client");
    let e = wrong.get("/t/auth").await.expect_err("a wrong password");
    assert!(
        !e.to_string().contains("nope"),
        "no password in errors: {e}"
    );
}

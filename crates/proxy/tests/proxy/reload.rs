//! Applying a new config while traffic flows.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use ballast_proxy::HealthState;
use ballast_testkit::{backends, eventually, Ballast, Client, Setup};

use crate::SOON;

#[tokio::test]
async fn reload_under_load_fails_no_request() {
    let bs = backends(4).await;
    let base = Setup::new(&bs[..2]);
    let ballast = Ballast::start(&base).await;
    ballast.all_healthy().await;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (url, stop, ok) = (ballast.url("/"), stop.clone(), ok.clone());
        workers.push(tokio::spawn(async move {
            let client = Client::http1();
            let mut failures = Vec::new();
            for _ in 0..50_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match client.get(&url).await {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("{}: {}", r.status, r.text())),
                    Err(e) => failures.push(e),
                }
            }
            failures
        }));
    }

    // Swap between target sets and weights, adding and removing targets.
    let sets: [&[usize]; 4] = [&[0, 1, 2], &[2, 3], &[0, 3], &[0, 1, 2, 3]];
    for (round, set) in sets.iter().cycle().take(12).enumerate() {
        let chosen: Vec<_> = set.iter().map(|&i| bs[i].clone()).collect();
        let setup = Setup::new(&chosen).weights(&[1 + round as u32 % 3, 2, 1, 1]);
        let before = ok.load(Ordering::Relaxed);
        ballast.server.apply(setup.config()).await.expect("apply");
        eventually("requests flow after the reload", SOON, || async {
            ok.load(Ordering::Relaxed) > before + 20
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.expect("join"));
    }
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(bs[3].requests() > 0, "a target added by reload serves");
    assert_eq!(ballast.server.snapshot().version, 13);
}

#[tokio::test]
async fn health_of_unchanged_targets_survives_a_reload() {
    let bs = backends(2).await;
    let mut setup = Setup::new(&bs);
    setup.interval = "100ms";
    setup.hc_timeout = "50ms";
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    bs[1].set_healthy(false);
    let t1 = ballast
        .server
        .snapshot()
        .group("web")
        .expect("group")
        .targets[1]
        .clone();
    eventually("b1 unhealthy", SOON, || async {
        t1.state() == HealthState::Unhealthy
    })
    .await;

    // Reload with a longer interval: without carry-over, b1 would be `initial` again.
    setup.interval = "60s";
    setup.hc_timeout = "1s";
    ballast.server.apply(setup.config()).await.expect("apply");
    let snap = ballast.server.snapshot();
    let targets = &snap.group("web").expect("group").targets;
    assert!(
        Arc::ptr_eq(&targets[1], &t1),
        "the same target state is reused"
    );
    assert_eq!(targets[1].state(), HealthState::Unhealthy);
    assert_eq!(targets[0].state(), HealthState::Healthy);
}

#[tokio::test]
async fn failed_apply_changes_nothing() {
    let bs = backends(1).await;
    let ballast = Ballast::start(&Setup::new(&bs)).await;
    let before = ballast.server.snapshot().version;
    // A second listener on an address already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut setup = Setup::new(&bs);
    setup.targets.clear();
    let mut text = setup.toml();
    text.push_str(&format!(
        "\n[[listeners]]\nname = \"second\"\nbind = \"{}\"\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n",
        taken.local_addr().expect("addr")
    ));
    let config = ballast_config::Config::from_toml(&text).expect("valid config");
    let err = ballast
        .server
        .apply(config)
        .await
        .expect_err("bind must fail");
    assert!(
        err.to_string().contains("listener second: cannot bind"),
        "{err}"
    );
    assert_eq!(ballast.server.snapshot().version, before);
    // The old config (with its target) still serves.
    let r = Client::http1()
        .get(&ballast.url("/"))
        .await
        .expect("request");
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn an_unchanged_listener_keeps_its_connections() {
    let bs = backends(2).await;
    let ballast = Ballast::start(&Setup::new(&bs[..1])).await;
    let stream = TcpStream::connect(ballast.addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let get = || {
        http::Request::get("/")
            .header("host", "x")
            .body(Empty::new())
            .expect("request")
    };
    let r = sender.send_request(get()).await.expect("first request");
    assert_eq!(r.headers()["x-backend"], "b0");
    drop(r);

    ballast
        .server
        .apply(Setup::new(&bs[1..]).config())
        .await
        .expect("apply");
    sender
        .ready()
        .await
        .expect("connection still open after reload");
    let r = sender
        .send_request(get())
        .await
        .expect("second request on the same connection");
    assert_eq!(
        r.headers()["x-backend"],
        "b1",
        "the new config serves the old connection"
    );
}

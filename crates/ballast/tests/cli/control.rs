//! The control plane as a process: state persisted by the admin API survives a
//! restart (and `--config-wins` overrides it), and survives SIGKILL at any instant.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

use ballast_testkit::{backends, eventually, BallastProcess, Client, Setup};

use crate::{BIN, SOON};

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ballast-state-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn with_state(setup: &mut Setup, dir: &std::path::Path) {
    setup.top_extra = format!("[state]\ndir = \"{}\"\n", dir.display());
}

async fn call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .map_err(|e| e.to_string())?;
    let reply = Client::http1().send(req).await?;
    let json = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    Ok((reply.status.as_u16(), json))
}

async fn config(admin: SocketAddr) -> Value {
    let (status, v) = call(admin, "GET", "/api/v1/config", None)
        .await
        .expect("GET config");
    assert_eq!(status, 200);
    v
}

fn addresses(config: &Value) -> Vec<String> {
    config["config"]["target_groups"][0]["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["address"].as_str().unwrap_or("").to_string())
        .collect()
}

fn ballast_admin_state(dir: &std::path::Path) -> Value {
    let text = std::fs::read(dir.join("state.json")).expect("state file");
    serde_json::from_slice(&text).expect("state file is JSON")
}

#[tokio::test]
async fn api_changes_survive_a_restart_unless_the_file_wins() {
    let bs = backends(2).await;
    let dir = state_dir("restart");
    let mut setup = Setup::new(&bs[..1]);
    with_state(&mut setup, &dir);
    let toml = setup.toml();
    let added = bs[1].addr().to_string();

    let mut p = BallastProcess::spawn(std::path::Path::new(BIN), &toml);
    p.wait_for_log("no persisted config", SOON);
    let admin = p.admin_addr();
    let (status, body) = call(
        admin,
        "POST",
        "/api/v1/target-groups/web/targets",
        Some(json!({"address": added, "weight": 3})),
    )
    .await
    .expect("register");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 2);
    p.signal("TERM");
    assert!(p.wait_exit(SOON).success());

    // The file is unchanged since it was applied: the persisted state wins.
    let p = BallastProcess::spawn(std::path::Path::new(BIN), &toml);
    p.wait_for_log("running persisted version 2; the file is ignored", SOON);
    let admin = p.admin_addr();
    let running = config(admin).await;
    assert_eq!(running["version"], 2);
    assert!(addresses(&running).contains(&added), "{running}");
    let client = Client::http1();
    eventually("traffic reaches the registered target", SOON, || async {
        client
            .get(&p.url("/"))
            .await
            .map(|r| r.backend() == "b1")
            .unwrap_or(false)
    })
    .await;
    drop(p);

    // --config-wins: the file applies, as the next version, and is persisted.
    let p = BallastProcess::spawn_with(std::path::Path::new(BIN), &toml, &["--config-wins"]);
    p.wait_for_log(
        "--config-wins: the file wins over persisted version 2",
        SOON,
    );
    let running = config(p.admin_addr()).await;
    assert_eq!(running["version"], 3);
    assert!(!addresses(&running).contains(&added), "{running}");
    drop(p);
    let p = BallastProcess::spawn(std::path::Path::new(BIN), &toml);
    let running = config(p.admin_addr()).await;
    assert_eq!(running["version"], 3);
    assert!(!addresses(&running).contains(&added));

    // SIGHUP applies the file and persists it as the next version.
    let mut both = Setup::new(&bs);
    with_state(&mut both, &dir);
    both.bind = p.addr.to_string();
    p.write_config(&both.toml());
    let from = p.log_len();
    p.signal("HUP");
    p.wait_for_log_after(from, "config persisted", SOON);
    let persisted = ballast_admin_state(&dir);
    assert_eq!(persisted["version"], 4);
    assert!(addresses(&persisted).contains(&added), "{persisted}");
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGKILL a ballast again and again while several clients write through the
/// API. After every kill the state file must parse, hold a valid config, carry a
/// version no older than the last acknowledged write and no newer than the writes
/// attempted, and where that version was acknowledged, hold exactly what was
/// acknowledged with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_never_torn_by_kill_9_during_writes() {
    const ROUNDS: u64 = 32;
    let bs = backends(1).await;
    let dir = state_dir("crash");
    let mut setup = Setup::new(&bs);
    with_state(&mut setup, &dir);
    let toml = setup.toml();
    let target = bs[0].addr().to_string();
    let state_file = dir.join("state.json");

    let mut acked_max = 0u64;
    let acked: Arc<Mutex<HashMap<u64, u64>>> = Arc::default(); // version -> weight
    let mut kills_mid_write = 0;
    for round in 0..ROUNDS {
        let mut p = BallastProcess::spawn(std::path::Path::new(BIN), &toml);
        let admin = p.admin_addr();
        let start = config(admin).await["version"].as_u64().expect("version");
        assert!(
            start >= acked_max,
            "round {round}: restarted at {start} < acknowledged {acked_max}"
        );
        let attempts = Arc::new(AtomicU64::new(0));
        let acks = Arc::new(AtomicU64::new(0));
        let mut writers = Vec::new();
        for w in 0..3u64 {
            let (attempts, acks, acked, target) = (
                attempts.clone(),
                acks.clone(),
                acked.clone(),
                target.clone(),
            );
            writers.push(tokio::spawn(async move {
                for i in 0..10_000u64 {
                    let weight = (round * 97 + w * 31 + i) % 1000;
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let body = json!({"address": target, "weight": weight});
                    match call(
                        admin,
                        "POST",
                        "/api/v1/target-groups/web/targets",
                        Some(body),
                    )
                    .await
                    {
                        Ok((200, v)) => {
                            let version = v["version"].as_u64().expect("version");
                            acked.lock().expect("lock").insert(version, weight);
                            acks.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => return, // killed
                    }
                }
            }));
        }
        // Kill after a few acknowledged writes, at a varying instant within the next.
        let wanted = 2 + round % 5;
        eventually("writes acknowledged", SOON, || async {
            acks.load(Ordering::SeqCst) >= wanted
        })
        .await;
        tokio::time::sleep(Duration::from_micros((round * 379) % 3000)).await;
        let in_flight = attempts.load(Ordering::SeqCst) > acks.load(Ordering::SeqCst);
        p.crash();
        kills_mid_write += u64::from(in_flight);
        for w in writers {
            w.await.expect("writer");
        }
        let attempted = attempts.load(Ordering::SeqCst);
        let acked_now = acked.lock().expect("lock").clone();
        acked_max = acked_now
            .keys()
            .copied()
            .max()
            .unwrap_or(acked_max)
            .max(acked_max);

        let text = std::fs::read(&state_file).expect("state file exists");
        let file: Value = serde_json::from_slice(&text).unwrap_or_else(|e| {
            panic!(
                "round {round}: torn state file ({e}): {}",
                String::from_utf8_lossy(&text)
            )
        });
        ballast_config::Config::from_json(&file["config"])
            .unwrap_or_else(|e| panic!("round {round}: invalid persisted config: {e}"));
        let version = file["version"].as_u64().expect("version");
        assert!(
            version >= acked_max,
            "round {round}: on disk {version} < acknowledged {acked_max}"
        );
        assert!(
            version <= start + attempted,
            "round {round}: on disk {version} > attempted {}",
            start + attempted
        );
        let weight = file["config"]["target_groups"][0]["targets"][0]["weight"].as_u64();
        if let Some(w) = acked_now.get(&version) {
            assert_eq!(
                weight,
                Some(*w),
                "round {round}: version {version} holds another write"
            );
        }
    }
    assert!(acked_max >= ROUNDS * 2, "every round acknowledged writes");
    eprintln!("{ROUNDS} kills, {kills_mid_write} with a write in flight, last acknowledged version {acked_max}");
    let _ = std::fs::remove_dir_all(&dir);
}

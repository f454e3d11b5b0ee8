//! One source of truth, as an operator meets it (README "Where the config comes
//! from"): the config file against what the admin API persisted, at start and on
//! SIGHUP; the newest word wins, a WARN says what was ignored or dropped, dropped
//! versions are kept in `state.dir/history/` and can be restored, and every start
//! is an audit line.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;

use ballast_testkit::pki::TempDir;
use ballast_testkit::{backends, BackendHandle, BallastProcess, Client, Reply, Setup};

use crate::{check, BIN, SOON};

fn with_state(mut setup: Setup, state: &TempDir) -> Setup {
    setup.top_extra = format!("[state]\ndir = {:?}\n", state.path.display().to_string());
    setup
}

/// One admin API call with a JSON body (also the cluster tests' way in).
pub(crate) async fn call(admin: SocketAddr, method: &str, path: &str, body: &str) -> Reply {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    Client::http1().send(req).await.expect("admin call")
}

/// Register `b` in group `web` through the API: version 2.
async fn register(admin: SocketAddr, b: &BackendHandle) {
    let body = format!("{{\"address\": \"{}\"}}", b.addr());
    let r = call(admin, "POST", "/api/v1/target-groups/web/targets", &body).await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
}

async fn targets(admin: SocketAddr) -> Vec<String> {
    let r = call(admin, "GET", "/api/v1/config", "").await;
    r.json()["config"]["target_groups"][0]["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["address"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn audit(admin: SocketAddr) -> Vec<Value> {
    let r = call(admin, "GET", "/api/v1/audit", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["entries"].as_array().expect("entries").clone()
}

/// `ballast config export --state-dir STATE ARGS...`, which must succeed: its output.
fn export(state: &TempDir, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["config", "export"])
        .args(args)
        .arg("--state-dir")
        .arg(&state.path)
        .output()
        .expect("run export");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stop(p: &mut BallastProcess) {
    p.signal("TERM");
    let status = p.wait_exit(SOON);
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_edited_while_stopped_wins_and_the_dropped_change_can_be_restored() {
    let bs = backends(2).await;
    let state = TempDir::new("cli-source-edited");
    let setup = with_state(Setup::new(&bs[..1]), &state);
    let mut p = BallastProcess::spawn(Path::new(BIN), &setup.toml());
    register(p.admin_addr(), &bs[1]).await;
    tokio::task::block_in_place(|| stop(&mut p));

    // Edited while stopped: the file is the newest word.
    let edited = setup.clone().algorithm("least_outstanding_requests");
    let p = BallastProcess::spawn(Path::new(BIN), &edited.toml());
    let line = p.wait_for_log("the file wins over persisted version 2", SOON);
    let added = format!("+target web/{}", bs[1].addr());
    let kept = state.path.join("history").join("2.json");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&added), "{line}");
    assert!(line.contains(&kept.display().to_string()), "{line}");
    let admin = p.admin_addr();
    assert_eq!(targets(admin).await, [bs[0].addr().to_string()]);
    let text = std::fs::read_to_string(&kept).expect("the dropped version is kept");
    assert!(text.contains(&bs[1].addr().to_string()), "{text}");

    // Every start is one audit line: which source won and what it dropped.
    let entries = audit(admin).await;
    let starts: Vec<&Value> = entries.iter().filter(|e| e["action"] == "start").collect();
    assert_eq!(starts.len(), 2, "{entries:?}");
    assert_eq!(
        (&starts[0]["source"], &starts[0]["version"]),
        (&Value::from("file"), &Value::from(1))
    );
    let last = starts[1];
    assert_eq!(last["token"], "file");
    assert_eq!(last["source"], "file");
    assert_eq!(last["version"], 3);
    assert_eq!(last["dropped"], serde_json::json!([added]));
    assert_eq!(last["kept"], kept.display().to_string());
    assert_eq!(
        last["changes"],
        serde_json::json!(["~target_group web", format!("-target web/{}", bs[1].addr())])
    );

    // The kept file is a body PUT takes ...
    let r = call(admin, "PUT", "/api/v1/config", &text).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], 4);
    assert!(targets(admin).await.contains(&bs[1].addr().to_string()));
    // ... and `ballast config export` turns it into a file `ballast check` accepts.
    let exported = export(&state, &["--history", "2"]);
    let file = state.write("restored.toml", &exported);
    let (code, _, err) = check(&file);
    assert_eq!(code, 0, "{err}\n{exported}");
    assert!(exported.contains(&bs[1].addr().to_string()), "{exported}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_file_leaves_the_api_changes_in_charge_and_says_how_to_choose() {
    let bs = backends(2).await;
    let state = TempDir::new("cli-source-unchanged");
    let setup = with_state(Setup::new(&bs[..1]), &state);
    let mut p = BallastProcess::spawn(Path::new(BIN), &setup.toml());
    register(p.admin_addr(), &bs[1]).await;
    tokio::task::block_in_place(|| stop(&mut p));

    let mut p = BallastProcess::spawn(Path::new(BIN), &setup.toml());
    let line = p.wait_for_log("running persisted version 2; the file is ignored", SOON);
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("is unchanged since it was last applied"),
        "{line}"
    );
    assert!(
        line.contains(&format!("+target web/{}", bs[1].addr())),
        "{line}"
    );
    assert!(
        line.contains("--config-wins") && line.contains("edit it"),
        "{line}"
    );
    let admin = p.admin_addr();
    assert_eq!(targets(admin).await.len(), 2);
    let last = audit(admin).await.pop().expect("an entry");
    assert_eq!(
        (&last["action"], &last["source"], &last["version"]),
        (
            &Value::from("start"),
            &Value::from("state"),
            &Value::from(2)
        )
    );
    assert!(!state.path.join("history").exists());
    // `ballast config export` beside the running process: the persisted version.
    let exported = export(&state, &[]);
    assert!(
        exported.starts_with("# ballast config, persisted version 2"),
        "{exported}"
    );
    assert!(exported.contains(&bs[1].addr().to_string()), "{exported}");
    let (code, _, err) = check(&state.write("persisted.toml", &exported));
    assert_eq!(code, 0, "{err}\n{exported}");
    tokio::task::block_in_place(|| stop(&mut p));

    // --config-wins: the file wins although it is unchanged; the API's change is kept.
    let p = BallastProcess::spawn_with(Path::new(BIN), &setup.toml(), &["--config-wins"]);
    let line = p.wait_for_log(
        "--config-wins: the file wins over persisted version 2",
        SOON,
    );
    assert!(line.contains("WARN"), "{line}");
    assert_eq!(targets(p.admin_addr()).await.len(), 1);
    assert!(state.path.join("history").join("2.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_api_changes_over_an_unchanged_file_and_an_edited_file_wins() {
    let bs = backends(2).await;
    let state = TempDir::new("cli-source-sighup");
    let setup = with_state(Setup::new(&bs[..1]), &state);
    let p = BallastProcess::spawn(Path::new(BIN), &setup.toml());
    let admin = p.admin_addr();
    register(admin, &bs[1]).await;

    // Unchanged file: the API's change stays, said at WARN with how to force the file.
    let mark = p.log_len();
    p.signal("HUP");
    let line = p.wait_for_log_after(mark, "keeping the API's changes", SOON);
    assert!(
        line.contains("WARN") && line.contains("a comment will do"),
        "{line}"
    );
    assert_eq!(targets(admin).await.len(), 2);
    let last = audit(admin).await.pop().expect("entry");
    assert_eq!(
        (&last["source"], &last["version"]),
        (&Value::from("state"), &Value::from(2))
    );

    // Edited (a comment is enough): the file wins, the API's change is dropped and kept.
    let mark = p.log_len();
    p.write_config(&format!("# edited\n{}", setup.toml()));
    p.signal("HUP");
    let line = p.wait_for_log_after(mark, "the admin API's changes are dropped", SOON);
    let added = format!("+target web/{}", bs[1].addr());
    assert!(line.contains("WARN") && line.contains(&added), "{line}");
    p.wait_for_log_after(mark, "audit: applied", SOON);
    assert_eq!(targets(admin).await, [bs[0].addr().to_string()]);
    let kept = state.path.join("history").join("2.json");
    assert!(kept.exists());
    let last = audit(admin).await.pop().expect("entry");
    assert!(
        last["action"].as_str().unwrap_or("").starts_with("SIGHUP "),
        "{last}"
    );
    assert_eq!(last["version"], 3);
    assert_eq!(last["source"], "file");
    assert_eq!(last["dropped"], serde_json::json!([added]));
    assert_eq!(last["kept"], kept.display().to_string());
}

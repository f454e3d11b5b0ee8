//! The locked admin plane as users run it (issue 25): `ballast check` refuses a
//! public admin address without a token, `allow_open_writes` is warned about at
//! start and reload, secret files others can read are named, and SIGHUP applies
//! land in the audit trail, which a restart keeps.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use ballast_testkit::pki::TempDir;
use ballast_testkit::{backends, BallastProcess, Client, Setup};

use crate::{check, temp_file, BIN, SOON};

fn with_admin(setup: &Setup, admin: &str) -> String {
    setup.toml().replace(
        "[admin]\nbind = \"127.0.0.1:0\"\n",
        &format!("[admin]\n{admin}\n"),
    )
}

#[tokio::test]
async fn check_refuses_a_public_admin_address_without_a_token() {
    let bs = backends(1).await;
    let setup = Setup::new(&bs);
    let text = with_admin(&setup, "bind = \"0.0.0.0:9900\"");
    let line = text
        .lines()
        .position(|l| l.starts_with("bind = \"0.0.0.0"))
        .expect("bind line")
        + 1;
    let (code, _, err) = check(&temp_file("admin-open", &text));
    assert_eq!(code, 1, "{err}");
    let at = format!("admin.bind (line {line}, column 8): 0.0.0.0:9900 is not a loopback address");
    assert!(err.contains(&at), "missing {at:?} in:\n{err}");
    assert!(err.contains("admin.token_file"), "{err}");

    let text = with_admin(&setup, "bind = \"0.0.0.0:9900\"\nallow_open_writes = true");
    let (code, _, err) = check(&temp_file("admin-opt-out", &text));
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_writes_are_warned_about_at_start_and_at_each_reload() {
    let bs = backends(1).await;
    let text = with_admin(
        &Setup::new(&bs),
        "bind = \"0.0.0.0:0\"\nallow_open_writes = true",
    );
    let p = BallastProcess::spawn(Path::new(BIN), &text);
    let warning = "admin.allow_open_writes = true";
    let line = p.wait_for_log(warning, SOON);
    assert!(line.contains("WARN"), "{line}");
    let mark = p.log_len();
    p.signal("HUP");
    p.wait_for_log_after(mark, "audit: applied", SOON);
    let line = p.wait_for_log_after(mark, warning, SOON);
    assert!(line.contains("WARN"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_files_others_can_read_are_named_and_never_shown() {
    let bs = backends(1).await;
    let dir = TempDir::new("cli-secrets");
    let loose = dir.write("loose.token", "token-LOOSE-0123\n");
    let tight = dir.write("tight.token", "token-TIGHT-4567\n");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::set_permissions(&tight, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let text = with_admin(
        &Setup::new(&bs),
        &format!(
            "bind = \"127.0.0.1:0\"\ntoken_file = {:?}\nread_token_file = {:?}",
            loose.display().to_string(),
            tight.display().to_string()
        ),
    );
    let p = BallastProcess::spawn(Path::new(BIN), &text);
    let line = p.wait_for_log("secret file is accessible to other users", SOON);
    assert!(
        line.contains("WARN")
            && line.contains("admin.token_file")
            && line.contains(&loose.display().to_string())
            && line.contains("0644"),
        "{line}"
    );
    p.admin_addr();
    let log = p.log_text();
    assert!(!log.contains(&tight.display().to_string()), "{log}");
    assert!(!log.contains("LOOSE") && !log.contains("TIGHT"), "{log}");
}

async fn audit(admin: std::net::SocketAddr) -> Vec<Value> {
    let r = Client::http1()
        .get(&format!("http://{admin}/api/v1/audit"))
        .await
        .expect("GET audit");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["entries"].as_array().expect("entries").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_are_audited_and_the_trail_survives_a_restart() {
    let bs = backends(2).await;
    let state = TempDir::new("cli-audit");
    let mut setup = Setup::new(&bs[..1]);
    setup.top_extra = format!("[state]\ndir = {:?}\n", state.path.display().to_string());
    let mut p = BallastProcess::spawn(Path::new(BIN), &setup.toml());
    let admin = p.admin_addr();

    // A valid file: applied and audited with what it changed.
    let mut next = setup.clone();
    next.bind = p.addr.to_string();
    next.targets.push((bs[1].addr(), 1));
    let mark = p.log_len();
    p.write_config(&next.toml());
    p.signal("HUP");
    p.wait_for_log_after(mark, "audit: applied", SOON);
    // An invalid one: audited as an error, nothing applied.
    let mark = p.log_len();
    p.write_config("[[listeners]]\nname = \"public\"\nbind = \"nope\"\n");
    p.signal("HUP");
    p.wait_for_log_after(mark, "audit: write refused", SOON);

    let entries = audit(admin).await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert_eq!(entries[0]["action"], "start");
    let (ok, bad) = (&entries[1], &entries[2]);
    assert_eq!(ok["token"], "sighup");
    assert_eq!(ok["client"], Value::Null);
    assert!(ok["action"]
        .as_str()
        .expect("action")
        .starts_with("SIGHUP "));
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["version"], 2);
    // `bind` went from port 0 to the port it got: the listener changed too.
    let added = format!("+target web/{}", bs[1].addr());
    assert_eq!(
        ok["changes"],
        serde_json::json!(["~listener public", added]),
        "{ok}"
    );
    assert_eq!(bad["outcome"], "error");
    assert_eq!(bad["version"], 2);
    let error = bad["error"].as_str().expect("error");
    assert!(error.contains("listeners[0].bind"), "{error}");

    // A restart over the same state directory keeps the trail.
    p.signal("TERM");
    let status = tokio::task::block_in_place(|| p.wait_exit(SOON));
    assert_eq!(status.code(), Some(0));
    let again = BallastProcess::spawn_with(Path::new(BIN), &setup.toml(), &["--config-wins"]);
    let after = audit(again.admin_addr()).await;
    assert_eq!(after[..3], entries[..]);
    assert_eq!(after.len(), 4, "{after:?}");
    assert_eq!(after[3]["action"], "start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_admin_address_serves_https_with_its_tokens() {
    use ballast_testkit::pki::Ca;
    use ballast_testkit::tls::{HttpsConn, TlsClient};

    let bs = backends(1).await;
    let dir = TempDir::new("cli-admin-tls");
    let ca = Ca::new("admin CA");
    let (cert, key) = ca.server(&["localhost"]).write(&dir, "admin");
    let write = dir.write("admin.token", "w-token-0123456789\n");
    let read = dir.write("read.token", "r-token-0123456789\n");
    for f in [&key, &write, &read] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let text = with_admin(
        &Setup::new(&bs),
        &format!(
            "bind = \"0.0.0.0:0\"\ntoken_file = {:?}\nread_token_file = {:?}\n\
             tls = {{ cert = {:?}, key = {:?} }}",
            write.display().to_string(),
            read.display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    let p = BallastProcess::spawn(Path::new(BIN), &text);
    let line = p.wait_for_log("admin API listening", SOON);
    assert!(line.contains("scheme=https"), "{line}");
    let port = p.admin_addr().port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let client = TlsClient::new(&ca);
    for (auth, expected) in [
        (None, 401),
        (Some("Bearer r-token-0123456789"), 200),
        (Some("Bearer w-token-0123456789"), 200),
    ] {
        let tls = client.connect(addr, "localhost").await.expect("TLS");
        let mut conn = HttpsConn::new(tls).await;
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        let r = conn.get("/api/v1/config", &headers).await.expect("GET");
        assert_eq!(r.status.as_u16(), expected, "{auth:?}");
    }
    // No warning about secret files: all are 0600; no token in the log.
    let log = p.log_text();
    assert!(!log.contains("secret file is accessible"), "{log}");
    assert!(!log.contains("token-0123456789"), "{log}");
}

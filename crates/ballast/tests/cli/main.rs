//! The `ballast` binary as users run it: exit codes, signals, memory.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use ballast_testkit::{backends, eventually, BallastProcess, Client, Setup};

mod admin;
mod bench;
mod cluster;
mod config_source;
mod control;
mod dashboard;
mod demo;
mod drain;
mod examples;
mod h2_attacks;
mod health_log;
mod logs;
mod slow_clients;
mod tls;
mod upgrade;
mod websocket;

const BIN: &str = env!("CARGO_BIN_EXE_ballast");
const SOON: Duration = Duration::from_secs(15);

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ballast-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("ballast.toml");
    std::fs::write(&path, text).expect("write");
    path
}

fn check(path: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(path)
        .output()
        .expect("run check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_accepts_a_valid_config() {
    let bs = backends(1).await;
    let path = temp_file("valid", &Setup::new(&bs).toml());
    let (code, out, _) = check(&path);
    assert_eq!(code, 0);
    assert!(out.contains("valid"));
}

#[test]
fn check_reports_every_error_and_exits_1() {
    let text = r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:99999"
default_action = { type = "forward", target_group = "nope" }

[[target_groups]]
name = "web"
algorithm = "fastest"
targets = [{ address = "127.0.0.1:9001", wieght = 2 }]
"#;
    let path = temp_file("invalid", text);
    let (code, _, err) = check(&path);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "listeners[0].bind (line 4, column 8): invalid address \"127.0.0.1:99999\"",
        "listeners[0].default_action (line 5, column 18): unknown target group \"nope\"",
        "target_groups[0].algorithm (line 9, column 13): unknown value \"fastest\"",
        "target_groups[0].targets[0].wieght (line 10, column 42): unknown field `wieght` (did you mean `weight`?)",
        "4 error(s)",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn check_needs_no_dns_for_a_target_name_and_places_a_bad_one() {
    // `.invalid` never resolves (RFC 6761): a valid name is valid config all the same.
    let text = r#"
[[listeners]]
name = "public"
bind = "127.0.0.1:8080"
default_action = { type = "forward", target_group = "web" }

[[target_groups]]
name = "web"
targets = [{ address = "app.invalid:8080" }, { srv = "_http._tcp.app.invalid" }]
dns = { min_ttl = "1s" }
"#;
    let path = temp_file("dns-valid", text);
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"));
    let bad = text.replace("app.invalid:8080", "app..invalid:8080");
    let path = temp_file("dns-invalid", &bad);
    let (code, _, err) = check(&path);
    assert_eq!(code, 1);
    assert!(
        err.contains("target_groups[0].targets[0].address (line 9, column 24): invalid address \"app..invalid:8080\""),
        "{err}"
    );
    let wieght = text.replace("weight", "x").replace(
        "{ address = \"app.invalid:8080\" }",
        "{ address = \"app.invalid:8080\", wieght = 2 }",
    );
    let (_, _, err) = check(&temp_file("dns-wieght", &wieght));
    assert!(err.contains("allowed: address, srv, weight"), "{err}");
}

#[test]
fn check_reports_a_missing_certificate_file_with_its_position() {
    let text = r#"
[[listeners]]
name = "secure"
bind = "127.0.0.1:8443"
protocol = "https"
certificates = [{ cert = "certs/missing.pem", key = "certs/missing.key" }]
default_action = { type = "forward", target_group = "web" }

[[target_groups]]
name = "web"
targets = []
"#;
    let path = temp_file("tls-missing", text);
    let (code, _, err) = check(&path);
    assert_eq!(code, 1, "{err}");
    // Relative paths are read from the config file's directory.
    let expected = path.with_file_name("certs/missing.pem");
    assert!(
        err.contains("listeners[0].certificates[0].cert (line 6, column 26)")
            && err.contains(&format!("cannot read {}", expected.display())),
        "{err}"
    );
    assert!(
        err.contains("listeners[0].certificates[0].key (line 6, column 53)"),
        "{err}"
    );
}

#[test]
fn check_of_a_missing_file_exits_1() {
    let (code, _, err) = check(Path::new("/nonexistent/ballast.toml"));
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read /nonexistent/ballast.toml"),
        "{err}"
    );
}

#[test]
fn serve_refuses_an_invalid_config() {
    let path = temp_file("serve-invalid", "[[listeners]]\nname = 1\n");
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listeners[0].name (line 2, column 8): expected a string, found an integer"),
        "{err}"
    );
}

#[test]
fn serve_without_a_config_file_says_how_to_get_one() {
    let dir = std::env::temp_dir().join(format!("ballast-cli-{}-empty", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = Command::new(BIN)
        .arg("serve")
        .current_dir(&dir)
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "no config file at ballast.toml",
        "examples/",
        "ballast demo",
        "--config",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in: {err}");
    }
}

#[test]
fn version_prints_name_and_version() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    // `ballast 0.1.0`, and the commit when built from a git checkout.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    assert_eq!(words.next(), Some("ballast"), "{text}");
    assert_eq!(words.next(), Some(env!("CARGO_PKG_VERSION")), "{text}");
    if let Some(commit) = words.next() {
        let hex = commit.trim_start_matches('(').trim_end_matches(')');
        assert!(
            hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{text}"
        );
    }
}

#[test]
fn serve_refuses_zero_workers() {
    let out = Command::new(BIN)
        .args(["serve", "--workers", "0"])
        .output()
        .expect("run serve");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value '0' for '--workers"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_and_exits_0() {
    let bs = backends(1).await;
    let mut p = BallastProcess::spawn(Path::new(BIN), &Setup::new(&bs).toml());
    let client = Client::http1();
    let slow = tokio::spawn({
        let (client, url) = (client.clone(), p.url("/?delay_ms=1500"));
        async move { client.get(&url).await }
    });
    eventually("the slow request reaches the backend", SOON, || async {
        bs[0].requests() == 1
    })
    .await;
    p.signal("TERM");
    p.wait_for_log("draining", SOON);
    let r = slow
        .await
        .expect("join")
        .expect("the in-flight request completes");
    assert_eq!(r.status, 200);
    assert_eq!(r.backend(), "b0");
    // New connections are refused once draining.
    assert!(
        tokio::net::TcpStream::connect(p.addr).await.is_err(),
        "listener closed"
    );
    let status = tokio::task::block_in_place(|| p.wait_exit(SOON));
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_file_and_keeps_running_on_an_invalid_one() {
    let bs = backends(2).await;
    let p = BallastProcess::spawn(Path::new(BIN), &Setup::new(&bs[..1]).toml());
    let client = Client::http1();
    assert_eq!(
        client.get(&p.url("/")).await.expect("request").backend(),
        "b0"
    );

    // Invalid: every error logged, the running config unchanged.
    let mark = p.log_len();
    p.write_config("[[listeners]]\nname = \"public\"\nbind = \"nope\"\n");
    p.signal("HUP");
    p.wait_for_log_after(mark, "reload rejected", SOON);
    let log = p.log_text();
    assert!(
        log.contains("listeners[0].bind (line 3, column 8): invalid address"),
        "{log}"
    );
    assert_eq!(
        client.get(&p.url("/")).await.expect("request").backend(),
        "b0"
    );

    // Valid: applied, on the same listener.
    let mut next = Setup::new(&bs[1..]);
    next.bind = p.addr.to_string();
    let mark = p.log_len();
    p.write_config(&next.toml());
    p.signal("HUP");
    p.wait_for_log_after(mark, "config applied version=2", SOON);
    assert_eq!(
        client.get(&p.url("/")).await.expect("request").backend(),
        "b1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_while_100_mb_bodies_stream_through() {
    let bs = backends(1).await;
    let p = BallastProcess::spawn(Path::new(BIN), &Setup::new(&bs).toml());
    let client = Client::http1();
    assert_eq!(client.get(&p.url("/")).await.expect("warm-up").status, 200);
    let baseline = p.rss_kib();

    let size = 100 * 1024 * 1024;
    let req = http::Request::post(p.url("/up"))
        .body(Full::new(Bytes::from(vec![1u8; size])))
        .expect("request");
    let r = client.send(req).await.expect("upload");
    assert_eq!(r.json()["body_bytes"], size as u64);
    let r = client
        .get(&p.url(&format!("/?bytes={size}")))
        .await
        .expect("download");
    assert_eq!(r.body.len(), size);

    let peak = p.peak_rss_kib();
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    // 200 MB went through; a proxy that buffered a body would grow by 100 MB or more.
    assert!(
        growth_mib < 32,
        "peak RSS grew by {growth_mib} MiB (baseline {baseline} KiB, peak {peak} KiB)"
    );
}

//! The dashboard in a real browser (issue 22): a real `ballast serve` with two
//! backends takes traffic (successes, 404s and 503s), its history sampler runs
//! every 200 ms (`BALLAST_DASHBOARD_SAMPLE_MS`, a test knob), and headless
//! Chromium loads the page from the admin listener twice: once for the DOM after
//! the scripts ran (`--dump-dom`), once for a screenshot kept at
//! `target/artefacts/dashboard.png`. The page records every script error,
//! rejected promise and `console.error` into a hidden `#js-errors` element and the
//! number of points each chart drew into `data-` attributes, which the DOM dump
//! shows; Chromium's own console log (`--enable-logging=stderr`) is read too.
//! Chromium is required: without it the test fails saying how to install it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use ballast_testkit::pki::TempDir;
use ballast_testkit::{backends, eventually, BallastProcess, Client, Setup};

use crate::{BIN, SOON};

const CHROMIUM: &str = "chromium";
/// How long one Chromium run may take on a loaded 2-core machine.
const BROWSER_LIMIT: Duration = Duration::from_secs(90);

fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(CHROMIUM))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("chromium is not installed: the dashboard test needs it (apt-get install chromium)")
    })
}

/// Run headless Chromium on `url` with `mode` (`--dump-dom` or
/// `--screenshot=...`); returns its stdout and stderr.
pub(crate) async fn browse(url: &str, mode: &str, profile: &Path) -> (String, String) {
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args([
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1400,1500",
        // Virtual time: the page's timers run ahead while fetches are real, so
        // a few refreshes happen before the capture.
        "--virtual-time-budget=8000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(mode)
    .arg(url)
    .kill_on_drop(true);
    let out = tokio::time::timeout(BROWSER_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("chromium {mode} took over {BROWSER_LIMIT:?}"))
        .expect("run chromium");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "chromium {mode} failed:\n{stderr}");
    (stdout, stderr)
}

/// The value of attribute `name` on the element with `id` in `html`.
fn attribute(html: &str, id: &str, name: &str) -> String {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page:\n{html}"));
    let tag = &html[html[..start].rfind('<').unwrap_or(0)..];
    let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
    let key = format!("{name}=\"");
    let from = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} on #{id}: {tag}"))
        + key.len();
    tag[from..from + tag[from..].find('"').unwrap_or(0)].to_string()
}

/// Every console message Chromium logged for the page (it logs them all at
/// INFO, whatever their level): the page writes none itself, so each is an
/// error, a warning or a failed load.
pub(crate) fn console_errors(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

fn points(history: &Value, kind: &str, name: &str) -> usize {
    history[kind][name]["t"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_charts_of_live_traffic_without_errors() {
    let browser = chromium();
    let bs = backends(2).await;
    let p = BallastProcess::spawn_with_env(
        Path::new(BIN),
        &Setup::new(&bs).toml(),
        &[],
        &[("BALLAST_DASHBOARD_SAMPLE_MS", "200")],
    );
    let admin = format!("http://{}", p.admin_addr());
    let client = Client::http1();
    eventually("both targets healthy", SOON, || async {
        let h = client
            .get(&format!("{admin}/api/v1/target-groups/web/health"))
            .await;
        h.is_ok_and(|r| r.json()["healthy_targets"] == 2)
    })
    .await;

    // Traffic through the whole test (so the screenshot shows it live), until
    // stopped or bounded in count and time. One request in ten is a 404, one
    // in twenty a 503, some wait a few milliseconds at the backend.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let traffic = tokio::spawn(drive(client.clone(), p.url(""), stopped));
    let started = Instant::now();
    let history = loop {
        let h = client
            .get(&format!("{admin}/api/v1/stats/history"))
            .await
            .expect("history")
            .json();
        let busy = h["listeners"]["public"]["rps"]
            .as_array()
            .is_some_and(|v| v.iter().filter(|r| r.as_f64() > Some(0.0)).count() >= 8);
        if busy && points(&h, "target_groups", "web") >= 8 {
            break h;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60) && !traffic.is_finished(),
            "the history did not fill: {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(history["interval_s"], 0.2);
    for addr in bs.iter().map(|b| b.addr().to_string()) {
        assert!(
            history["targets"]["web"][&addr]["rps"].is_array(),
            "{history}"
        );
    }

    // A change of version for the version history: SIGHUP with the same file.
    let mark = p.log_len();
    p.signal("HUP");
    p.wait_for_log_after(mark, "audit: applied", SOON);

    let profile = TempDir::new("dashboard-chromium");
    let url = format!("{admin}/");
    let (dom, log) = browse(&url, "--dump-dom", &profile.path).await;
    assert_eq!(
        attribute(&dom, "js-errors", "data-count"),
        "0",
        "the page reported errors:\n{dom}"
    );
    assert!(
        console_errors(&log).is_empty(),
        "console errors:\n{}",
        console_errors(&log).join("\n")
    );
    let refreshes: u32 = attribute(&dom, "dash", "data-refreshes")
        .parse()
        .expect("n");
    assert!(refreshes >= 1, "the page never refreshed:\n{dom}");
    // Three charts for listener `public`, three for group `web`, all with data.
    assert_eq!(attribute(&dom, "dash", "data-charts"), "6", "{dom}");
    assert_eq!(attribute(&dom, "dash", "data-empty-charts"), "0", "{dom}");
    let drawn: usize = attribute(&dom, "dash", "data-points").parse().expect("n");
    assert!(drawn >= 6 * 2, "{drawn} points drawn");
    for b in &bs {
        assert!(
            dom.contains(&b.addr().to_string()),
            "target {} missing",
            b.addr()
        );
    }
    assert!(dom.contains("class=\"spark\""), "no sparklines");
    assert!(dom.contains(">SIGHUP<"), "no SIGHUP in the version history");
    // Rules and certificates come from /api/v1/listeners; the page copes
    // whether or not this ballast has it.
    assert!(dom.contains("Rules") || dom.contains("not available"));

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("artefacts");
    std::fs::create_dir_all(&shot).expect("artefacts dir");
    let shot = shot.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let (_, log) = browse(
        &url,
        &format!("--screenshot={}", shot.display()),
        &profile.path,
    )
    .await;
    assert!(console_errors(&log).is_empty(), "console errors:\n{log}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    drop(browser);
    let _ = stop.send(true);
    let sent = traffic.await.expect("traffic task");
    assert!(sent > 0);
}

/// Requests to `base` until `stop` turns true, at most 20,000 of them or for 3
/// minutes; returns how many were sent.
async fn drive(client: Client, base: String, stop: tokio::sync::watch::Receiver<bool>) -> u32 {
    let started = Instant::now();
    let mut sent = 0;
    while !*stop.borrow() && sent < 20_000 && started.elapsed() < Duration::from_secs(180) {
        let path = match sent % 20 {
            0 => "/?status=503".to_string(),
            5 | 15 => "/missing?status=404".to_string(),
            n => format!("/?delay_ms={}", n % 4 * 3),
        };
        let r = client.get(&format!("{base}{path}")).await.expect("request");
        assert!([200, 404, 503].contains(&r.status.as_u16()), "{}", r.status);
        sent += 1;
    }
    sent
}

//! What a real ballast process logs about unhealthy state routing: a group that
//! fails open says so once, and says it recovered once, only after a real fail
//! open; a group that starts healthy says neither. And `ballast check` on the
//! health-check timeout's default.

use std::path::Path;

use ballast_testkit::{backends, eventually, BallastProcess, Setup};

use crate::{BIN, SOON};

const FAILING_OPEN: &str = "has no healthy target: failing open";
const RECOVERED: &str = "enough healthy targets again";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_starts_healthy_logs_no_fail_open() {
    let bs = backends(2).await;
    let p = BallastProcess::spawn(Path::new(BIN), &Setup::new(&bs).toml());
    p.wait_for_log("target health changed", SOON);
    // Several more rounds of checks after both turned healthy.
    let seen = bs[0].health_checks();
    eventually("more health checks ran", SOON, || async {
        bs[0].health_checks() >= seen + 4
    })
    .await;
    let log = p.log_text();
    assert_eq!(log.matches("target health changed").count(), 2, "{log}");
    assert!(!log.contains("failing open"), "{log}");
    assert!(!log.contains(RECOVERED), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_open_and_recovering_are_logged_once_each() {
    let bs = backends(1).await;
    bs[0].set_healthy(false);
    let p = BallastProcess::spawn(Path::new(BIN), &Setup::new(&bs).toml());
    let line = p.wait_for_log(FAILING_OPEN, SOON);
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("\"web\""), "{line}");
    let seen = bs[0].health_checks();
    eventually("more failed checks ran", SOON, || async {
        bs[0].health_checks() >= seen + 4
    })
    .await;
    assert_eq!(p.log_text().matches(FAILING_OPEN).count(), 1);

    bs[0].set_healthy(true);
    p.wait_for_log(RECOVERED, SOON);
    let seen = bs[0].health_checks();
    eventually("more passing checks ran", SOON, || async {
        bs[0].health_checks() >= seen + 4
    })
    .await;
    let log = p.log_text();
    assert_eq!(log.matches(FAILING_OPEN).count(), 1, "{log}");
    assert_eq!(log.matches(RECOVERED).count(), 1, "{log}");
}

/// Issue 22: a default never causes an error. A group that sets only
/// `interval = "1s"` passes `ballast check` (its timeout defaults to 500ms); an
/// explicit bad pair is refused at the `timeout` key.
#[test]
fn check_accepts_a_short_interval_and_points_at_a_bad_timeout() {
    let base = "[[listeners]]\nname = \"public\"\nbind = \"127.0.0.1:0\"\ndefault_action = { type = \"forward\", target_group = \"web\" }\n\n[[target_groups]]\nname = \"web\"\ntargets = [{ address = \"127.0.0.1:9001\" }]\n\n[target_groups.health_check]\ninterval = \"1s\"\n";
    let (code, out, err) = crate::check(&crate::temp_file("short-interval", base));
    assert_eq!(code, 0, "{out}{err}");

    let bad = format!("{base}timeout = \"1s\"\n");
    let (code, out, err) = crate::check(&crate::temp_file("bad-timeout", &bad));
    assert_eq!(code, 1, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(
        text.contains("target_groups[0].health_check.timeout (line 12, column 11)"),
        "{text}"
    );
}

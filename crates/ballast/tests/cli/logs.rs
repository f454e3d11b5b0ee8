//! Log rotation as logrotate does it: the access-log file is renamed away, SIGUSR1
//! makes a running `ballast serve` write to a new file at the path, and no line
//! is lost or lands in the wrong file.

use std::path::Path;

use ballast_testkit::{backends, eventually, BallastProcess, Client, Setup};

use crate::{BIN, SOON};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_access_log_after_a_rename() {
    let bs = backends(1).await;
    let dir = std::env::temp_dir().join(format!("ballast-logrotate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("access.log");
    let rotated = dir.join("access.log.1");
    let mut setup = Setup::new(&bs);
    setup.access_log = log.display().to_string();
    let p = BallastProcess::spawn(Path::new(BIN), &setup.toml());
    let client = Client::http1();

    for i in 0..3 {
        let r = client
            .get(&p.url(&format!("/before/{i}")))
            .await
            .expect("request");
        assert_eq!(r.status, 200);
    }
    eventually("three lines in the first file", SOON, || async {
        read(&log).lines().count() == 3
    })
    .await;

    // logrotate: rename, then `postrotate` sends SIGUSR1.
    std::fs::rename(&log, &rotated).expect("rename");
    let mark = p.log_len();
    p.signal("USR1");
    p.wait_for_log_after(mark, "access log reopened", SOON);

    for i in 0..3 {
        let r = client
            .get(&p.url(&format!("/after/{i}")))
            .await
            .expect("request");
        assert_eq!(r.status, 200);
    }
    eventually("three lines in the new file", SOON, || async {
        read(&log).lines().count() == 3
    })
    .await;
    let old = read(&rotated);
    let new = read(&log);
    assert_eq!(old.lines().count(), 3, "{old}");
    assert!(
        old.lines().all(|l| l.contains("\"path\":\"/before/")),
        "{old}"
    );
    assert!(
        new.lines().all(|l| l.contains("\"path\":\"/after/")),
        "{new}"
    );
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_without_a_log_file_is_harmless() {
    let bs = backends(1).await;
    let p = BallastProcess::spawn(Path::new(BIN), &Setup::new(&bs).toml());
    let mark = p.log_len();
    p.signal("USR1");
    p.wait_for_log_after(mark, "nothing to reopen", SOON);
    let r = Client::http1().get(&p.url("/")).await.expect("request");
    assert_eq!(r.status, 200);
}

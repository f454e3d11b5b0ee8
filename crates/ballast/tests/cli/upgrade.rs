//! Binary upgrade (SIGUSR2) of a real `ballast serve` under continuous load: a
//! new process takes over the listening sockets, the old one drains and exits
//! 0, and no request fails and no connection is refused meanwhile, over two
//! upgrades in a row (the second passes on sockets it received); an upgrade
//! whose new process cannot start leaves the old one serving.
//!
//! The load is several client tasks over raw HTTP/1.1, half on keep-alive
//! connections and half on a new connection per request. A keep-alive
//! connection that the old process closes while idle (its drain) can meet a
//! request sent at the same moment; the request was never read, and a client
//! sends it again on a new connection (RFC 9112 §9.3.1; what browsers, curl and
//! Go's transport do). Those resends are counted apart; everything else that is
//! not a 200 — a refused connect, an error, a cut or late response — is a
//! failure.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast_testkit::raw::read_response;
use ballast_testkit::{backends, eventually, BallastProcess, Setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{BIN, SOON};

/// Kills the processes this test started indirectly (each new ballast is the
/// child of the one it replaces, not the test's) when the test ends, however it
/// ends: those it learnt of, and the children of each, so that one started but
/// not yet reported is not left running either.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let mut pids = self.0.clone();
        for pid in &self.0 {
            pids.extend(children(*pid));
        }
        for pid in pids {
            signal(pid, libc::SIGKILL);
        }
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: `kill` with a pid and a signal number has no memory effects.
    let _ = unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// The children of `pid`, from `/proc`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Runs: exists and has not exited (an exited process whose new parent has not
/// reaped it yet is a zombie, state `Z`).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    /// Requests resent on a new connection because a reused keep-alive
    /// connection was closed before any byte of the answer.
    resent: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().expect("lock");
        if errors.len() < 10 {
            errors.push(what);
        }
    }
}

/// Each client's bounds, whatever happens.
const MAX_REQUESTS: u64 = 50_000;
const MAX_TIME: Duration = Duration::from_secs(60);

/// One request on `stream`: `Ok(true)` for a 200 that keeps the connection,
/// `Ok(false)` for a 200 that closes it, `Err(None)` if the connection ended
/// before any byte of the answer, `Err(Some(why))` for anything else.
async fn exchange(stream: &mut TcpStream, path: &str) -> Result<bool, Option<String>> {
    let answer = async {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|_| None)?;
        let mut first = [0u8; 4096];
        let n = match stream.read(&mut first).await {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => n,
        };
        let mut buf = first[..n].to_vec();
        let r = read_response(stream, &mut buf, false)
            .await
            .ok_or_else(|| Some("connection cut inside a response".to_string()))?;
        if r.status != 200 {
            return Err(Some(format!("status {}", r.status)));
        }
        Ok(!r.closes())
    };
    tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .unwrap_or_else(|_| Err(Some("no answer within 10 s".to_string())))
}

async fn connect(addr: std::net::SocketAddr, tally: &Tally) -> Option<TcpStream> {
    match TcpStream::connect(addr).await {
        Ok(s) => Some(s),
        Err(e) => {
            tally.refused.fetch_add(1, Ordering::Relaxed);
            tally.fail(format!("connect: {e}"));
            None
        }
    }
}

/// Requests for `path` until `stop` (or the bounds): on one keep-alive
/// connection at a time, or on a new connection each.
async fn client(
    path: &'static str,
    addr: std::net::SocketAddr,
    keep_alive: bool,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let started = Instant::now();
    let mut conn: Option<TcpStream> = None;
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) && sent < MAX_REQUESTS && started.elapsed() < MAX_TIME {
        sent += 1;
        let reused = conn.is_some();
        let mut stream = match conn.take() {
            Some(s) => s,
            None => match connect(addr, &tally).await {
                Some(s) => s,
                None => continue,
            },
        };
        let mut result = exchange(&mut stream, path).await;
        if reused && matches!(result, Err(None)) {
            tally.resent.fetch_add(1, Ordering::Relaxed);
            match connect(addr, &tally).await {
                Some(s) => stream = s,
                None => continue,
            }
            result = exchange(&mut stream, path).await;
        }
        match result {
            Ok(keeps) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                if keep_alive && keeps {
                    conn = Some(stream);
                }
            }
            Err(why) => tally.fail(why.unwrap_or_else(|| "connection closed, no answer".into())),
        }
    }
}

fn new_pid(line: &str) -> u32 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigusr2_hands_the_sockets_over_under_load_and_no_request_fails() {
    let bs = backends(1).await;
    let setup = Setup::new(&bs);
    let mut p = BallastProcess::spawn(Path::new(BIN), &setup.toml());
    let old_pid = p.pid();
    let mut new = KillOnDrop(vec![old_pid]);
    let admin = p.admin_addr();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    // Six clients, half on keep-alive connections; two of them slow, so that
    // requests are in flight in the old process when it starts draining.
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let path = if i >= 4 { "/?delay_ms=100" } else { "/" };
            let keep_alive = i % 2 == 0;
            tokio::spawn(client(
                path,
                p.addr,
                keep_alive,
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();
    eventually("load flows", SOON, || async {
        tally.ok.load(Ordering::Relaxed) >= 200
    })
    .await;

    let before = tally.ok.load(Ordering::Relaxed);
    let from = p.log_len();
    p.signal("USR2");
    let signalled = Instant::now();
    let line =
        tokio::task::block_in_place(|| p.wait_for_log_after(from, "the new process serves", SOON));
    let handed_over = signalled.elapsed();
    let pid = new_pid(&line);
    new.0.push(pid);
    assert_ne!(pid, old_pid);
    let status = tokio::task::block_in_place(|| p.wait_exit(SOON));
    let exited = signalled.elapsed();
    let during = tally.ok.load(Ordering::Relaxed) - before;
    assert!(status.success(), "the old process exits 0: {status:?}");

    // The new process alone serves for a while longer, the admin API too.
    let after_exit = tally.ok.load(Ordering::Relaxed);
    eventually("the new process serves the load", SOON, || async {
        tally.ok.load(Ordering::Relaxed) >= after_exit + 500
    })
    .await;
    let admin_answer = admin_get(admin, "/api/v1/config").await;
    assert!(admin_answer.starts_with("HTTP/1.1 200"), "{admin_answer}");

    // The new process upgrades in turn (it passes on the sockets it received).
    let from = p.log_len();
    signal(pid, libc::SIGUSR2);
    let line =
        tokio::task::block_in_place(|| p.wait_for_log_after(from, "the new process serves", SOON));
    let third = new_pid(&line);
    new.0.push(third);
    assert!(third != pid && third != old_pid);
    eventually("the second process exits", SOON, || async { !alive(pid) }).await;
    let after_exit = tally.ok.load(Ordering::Relaxed);
    eventually("the third process serves the load", SOON, || async {
        tally.ok.load(Ordering::Relaxed) >= after_exit + 500
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    assert!(alive(third), "the last process runs");
    let (ok, failed, refused, resent) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.resent.load(Ordering::Relaxed),
    );
    eprintln!(
        "upgrade under load: {ok} requests answered over two upgrades ({during} between the \
         first SIGUSR2 and the old process's exit), {failed} failed, {refused} refused, \
         {resent} resent after an idle keep-alive close; new process serving \
         {handed_over:?} after SIGUSR2, old exited after {exited:?}"
    );
    let errors = tally.errors.lock().expect("lock").clone();
    assert_eq!((failed, refused), (0, 0), "failures: {errors:?}");
    assert!(during > 0, "load flowed during the upgrade");
}

/// One admin GET on a new connection; the raw answer.
async fn admin_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect admin");
    let req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(SOON, s.read_to_end(&mut out))
        .await
        .expect("admin answers in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_whose_new_process_cannot_start_leaves_the_old_one_serving() {
    let bs = backends(1).await;
    let mut p = BallastProcess::spawn(Path::new(BIN), &Setup::new(&bs).toml());
    let old_pid = p.pid();
    // The new process reads the file anew, and it is invalid now.
    p.write_config("[[listeners]]\nname = 1\n");
    let from = p.log_len();
    p.signal("USR2");
    let line = tokio::task::block_in_place(|| p.wait_for_log_after(from, "upgrade failed", SOON));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("exited before serving"), "{line}");
    assert!(
        p.log_text().contains("config error"),
        "the new process says why"
    );

    let mut s = TcpStream::connect(p.addr).await.expect("still listening");
    assert_eq!(
        exchange(&mut s, "/").await,
        Ok(true),
        "the old process serves"
    );
    assert!(alive(old_pid));
    eventually("still serving", SOON, || async {
        let Ok(mut s) = TcpStream::connect(p.addr).await else {
            return false;
        };
        exchange(&mut s, "/").await.is_ok()
    })
    .await;
    // It drains and stops as usual afterwards.
    p.signal("TERM");
    let status = tokio::task::block_in_place(|| p.wait_exit(SOON));
    assert!(status.success(), "{status:?}");
}

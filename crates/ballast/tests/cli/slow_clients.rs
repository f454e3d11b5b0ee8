//! Slow clients at scale (issue 25 §3): a real `ballast serve` holds N slow heads,
//! N trickling bodies or N readers that stopped reading, all at once from this
//! test, while a normal client keeps sending requests. Each test states, and
//! checks, ballast's memory per slow connection (RSS before and with them,
//! divided by N), that a normal client's p99 stays within twice its unloaded p99
//! (plus a floor for a noisy 2-core machine), and that every slow connection is
//! cut by its limit and counted (`ballast_client_timeouts_total{phase}`).
//!
//! N is 2,000 in the suite (about 40 s for the three); `bench/slow-clients.sh` runs the same tests with
//! `BALLAST_SLOW_CLIENTS=2000` (or more) on a release build and prints the figures.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use ballast_testkit::{backends, eventually, BallastProcess, Client, Setup};

use crate::BIN;

/// The limit every slow connection runs into: long enough to open them all and
/// measure with them held, short enough for a test of under 20 s.
const LIMIT: &str = "12s";
/// Requests of the normal client per measurement.
const PROBES: usize = 400;
/// What a noisy machine adds to a p99 on its own: on the shared 2-core
/// machines the suite runs on (load average 5), a sub-millisecond request's
/// unloaded p99 alone ranges from 0.6 to 13 ms from run to run, one time slice
/// of another process. `BALLAST_SLOW_CLIENTS_FLOOR_MS` sets another (the
/// benchmark on a quiet machine uses 2).
fn floor() -> Duration {
    let ms = std::env::var("BALLAST_SLOW_CLIENTS_FLOOR_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    Duration::from_millis(ms)
}

fn slow_clients() -> usize {
    std::env::var("BALLAST_SLOW_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// Let this process (and the ballast it starts) hold as many sockets as allowed.
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// These tests judge timing: one at a time (see README, "Timing judged alone").
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Rig {
    _alone: tokio::sync::MutexGuard<'static, ()>,
    process: BallastProcess,
    admin: SocketAddr,
    client: Client,
    backend: ballast_testkit::BackendHandle,
}

impl Rig {
    async fn start(limits: &str) -> Rig {
        let alone = ALONE.lock().await;
        raise_open_files();
        let bs = backends(1).await;
        let mut setup = Setup::new(&bs);
        // Checked once at start: the target's request count is the data path's.
        setup.interval = "60s";
        setup.listener_extra = limits.to_string();
        let process = BallastProcess::spawn(Path::new(BIN), &setup.toml());
        let admin = process.admin_addr();
        let client = Client::http1();
        // Warm up the normal client's connection, ballast's pool and allocator.
        for _ in 0..200 {
            let r = client.get(&process.url("/")).await.expect("warm-up");
            assert_eq!(r.status, 200);
        }
        let backend = bs.into_iter().next().expect("one backend");
        Rig {
            _alone: alone,
            process,
            admin,
            client,
            backend,
        }
    }

    /// The normal client's p99 over `PROBES` requests in a row.
    async fn p99(&self) -> Duration {
        let mut took = Vec::with_capacity(PROBES);
        for _ in 0..PROBES {
            let started = Instant::now();
            let r = self
                .client
                .get(&self.process.url("/"))
                .await
                .expect("probe");
            assert_eq!(r.status, 200);
            took.push(started.elapsed());
        }
        took.sort();
        if std::env::var_os("BALLAST_SLOW_CLIENTS_DEBUG").is_some() {
            let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
            let tcp = sockstat
                .lines()
                .find(|l| l.starts_with("TCP:"))
                .unwrap_or("");
            eprintln!("{tcp}");
            eprintln!(
                "probes: p50 {:?} p90 {:?} p99 {:?} max {:?}",
                took[PROBES / 2],
                took[PROBES * 9 / 10],
                took[PROBES * 99 / 100],
                took[PROBES - 1]
            );
        }
        took[PROBES * 99 / 100]
    }

    async fn metric(&self, name: &str) -> u64 {
        let text = self
            .client
            .get(&format!("http://{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn timeouts(&self, phase: &str) -> u64 {
        let name =
            format!("ballast_client_timeouts_total{{listener=\"public\",phase=\"{phase}\"}}");
        self.metric(&name).await
    }

    /// Open `n` slow connections (`behave` plays each), `held` counting those
    /// that have started; returns once all have.
    async fn open<F, Fut>(&self, n: usize, held: &Arc<AtomicUsize>, behave: F) -> JoinSet<()>
    where
        F: Fn(SocketAddr, Arc<AtomicUsize>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut set = JoinSet::new();
        for batch in 0..n.div_ceil(100) {
            for _ in batch * 100..((batch + 1) * 100).min(n) {
                set.spawn(behave(self.process.addr, held.clone()));
            }
            let want = ((batch + 1) * 100).min(n);
            eventually(
                "slow connections opened",
                Duration::from_secs(20),
                || async { held.load(Ordering::SeqCst) >= want },
            )
            .await;
        }
        set
    }

    /// Measure with the slow connections held (none cut yet: `phase` counts
    /// none), print, and check the bounds. A p99 over its bound is measured
    /// again, twice at most, and the best round counts: other processes on a
    /// shared machine stall a round now and then, where a slowdown the slow
    /// connections caused would show in every round.
    async fn measure(
        &self,
        kind: &str,
        phase: &str,
        n: usize,
        before_kib: u64,
        unloaded: Duration,
        max_kib: u64,
    ) {
        let first_kib = self.process.rss_kib();
        let bound = unloaded * 2 + floor();
        let mut loaded = self.p99().await;
        for _ in 0..2 {
            if loaded <= bound {
                break;
            }
            loaded = loaded.min(self.p99().await);
        }
        // Read again after the probes: by then every slow connection has
        // settled into what it holds.
        let during_kib = first_kib.max(self.process.rss_kib());
        let per_conn = (during_kib.saturating_sub(before_kib) * 1024) / n as u64;
        eprintln!(
            "slow {kind}: {n} connections; ballast RSS {before_kib} KiB before, {during_kib} KiB with them: {per_conn} bytes per connection; normal client p99 {unloaded:?} unloaded, {loaded:?} during"
        );
        assert_eq!(
            self.timeouts(phase).await,
            0,
            "slow {kind}: cut before the end of the measurement"
        );
        assert!(
            per_conn <= max_kib * 1024,
            "slow {kind}: {per_conn} bytes per connection, over {max_kib} KiB"
        );
        assert!(
            loaded <= bound,
            "slow {kind}: p99 {loaded:?} during, {unloaded:?} unloaded"
        );
    }

    /// Wait until the target has seen the `n` slow connections' requests
    /// (after the 200 warm-up requests and the probes of `p99`).
    async fn wait_at_target(&self, what: &str, n: usize) {
        let base = 200 + PROBES as u64;
        eventually(what, Duration::from_secs(20), || async {
            self.backend.requests() >= base + n as u64
        })
        .await;
    }

    async fn wait_cut(&self, phase: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let cut = self.timeouts(phase).await;
            if cut >= n as u64 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{cut} of {n} slow connections cut ({phase})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A connection as a client across a real network opens it: segments of at
/// most 1400 bytes (loopback's are 64 KiB, and the kernel sizes a sender's
/// buffer by segments: a stalled loopback reader would pin megabytes of the
/// kernel's memory, not kilobytes) and a 4 KiB receive buffer, so that a
/// response fills its window at once.
async fn small_window(addr: SocketAddr) -> Option<TcpStream> {
    use std::os::fd::AsRawFd;
    let socket = TcpSocket::new_v4().ok()?;
    socket.set_recv_buffer_size(4096).ok()?;
    let mss: libc::c_int = 1400;
    // SAFETY: setsockopt on a socket this function owns, with a local int.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&mss as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        return None;
    }
    socket.connect(addr).await.ok()
}

/// Slowloris: request heads that come a byte every two seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_slow_heads_cost_little_and_slow_no_one() {
    let n = slow_clients();
    let rig = Rig::start(&format!("header_read_timeout = \"{LIMIT}\"")).await;
    let unloaded = rig.p99().await;
    let before = rig.process.rss_kib();
    let held = Arc::new(AtomicUsize::new(0));
    let mut set = rig
        .open(n, &held, |addr, held| async move {
            let Ok(mut s) = TcpStream::connect(addr).await else {
                return;
            };
            if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.is_err() {
                return;
            }
            held.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 64];
            loop {
                tokio::select! {
                    _ = s.read(&mut buf) => return, // closed by ballast
                    () = tokio::time::sleep(Duration::from_secs(2)) => {
                        if s.write_all(b"X").await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
        .await;
    // Every slow connection is ballast's (the normal client's too).
    let open = "ballast_active_connections{listener=\"public\"}";
    eventually(
        "ballast holds them all",
        Duration::from_secs(20),
        || async { rig.metric(open).await > n as u64 },
    )
    .await;
    rig.measure("heads", "head", n, before, unloaded, 64).await;
    rig.wait_cut("head", n).await;
    set.abort_all();
}

/// Slow POST: bodies that trickle a byte every two seconds after their first
/// 100 bytes, each request already forwarded to the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_trickling_bodies_cost_little_and_slow_no_one() {
    let n = slow_clients();
    let rig = Rig::start(&format!("request_body_timeout = \"{LIMIT}\"")).await;
    let unloaded = rig.p99().await;
    let before = rig.process.rss_kib();
    let held = Arc::new(AtomicUsize::new(0));
    let mut set = rig
        .open(n, &held, |addr, held| async move {
            let Ok(mut s) = TcpStream::connect(addr).await else {
                return;
            };
            let head = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n";
            if s.write_all(head).await.is_err() || s.write_all(&[b'b'; 100]).await.is_err() {
                return;
            }
            held.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    _ = s.read(&mut buf) => return, // answered 408
                    () = tokio::time::sleep(Duration::from_secs(2)) => {
                        if s.write_all(b"b").await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
        .await;
    rig.wait_at_target("every body's request at the target", n)
        .await;
    rig.measure("bodies", "body", n, before, unloaded, 96).await;
    rig.wait_cut("body", n).await;
    set.abort_all();
}

/// Slow readers: 256 KiB responses asked for on a 4 KiB receive window and never
/// read: many times what ballast holds for one (a response frame and a write
/// buffer) and what the kernel buffers towards a client whose segments are
/// those of a real network (`small_window`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_stalled_readers_cost_little_and_slow_no_one() {
    let n = slow_clients();
    let rig = Rig::start(&format!("response_send_timeout = \"{LIMIT}\"")).await;
    let unloaded = rig.p99().await;
    let before = rig.process.rss_kib();
    let held = Arc::new(AtomicUsize::new(0));
    let mut set = rig
        .open(n, &held, |addr, held| async move {
            let Some(mut s) = small_window(addr).await else {
                return;
            };
            let req = b"GET /?bytes=262144 HTTP/1.1\r\nHost: x\r\n\r\n";
            if s.write_all(req).await.is_err() {
                return;
            }
            held.fetch_add(1, Ordering::SeqCst);
            // Never read; hold the socket until the test ends.
            std::future::pending::<()>().await;
            drop(s);
        })
        .await;
    rig.wait_at_target("every response under way", n).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.measure("readers", "send", n, before, unloaded, 128)
        .await;
    rig.wait_cut("send", n).await;
    set.abort_all();
}

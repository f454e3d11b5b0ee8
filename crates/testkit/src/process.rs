//! A real `ballast serve` process, for what only a process can show: signals
//! (SIGHUP, SIGTERM), exit codes and memory use.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A running `ballast serve`, killed when dropped.
pub struct BallastProcess {
    child: Child,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl BallastProcess {
    /// Start `bin serve` with `config` and wait until listener `public` listens.
    /// The process runs in its own temporary directory, so relative paths in the
    /// config (`state.dir` defaults to `./ballast-state`) land there.
    pub fn spawn(bin: &Path, config: &str) -> BallastProcess {
        Self::spawn_with(bin, config, &[])
    }

    /// Like `spawn`, with extra arguments to `serve` (e.g. `--config-wins`).
    pub fn spawn_with(bin: &Path, config: &str, args: &[&str]) -> BallastProcess {
        Self::spawn_with_env(bin, config, args, &[])
    }

    /// Like `spawn_with`, with extra environment variables (test knobs such as
    /// `BALLAST_DASHBOARD_SAMPLE_MS`).
    pub fn spawn_with_env(
        bin: &Path,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> BallastProcess {
        let dir = std::env::temp_dir().join(format!(
            "ballast-test-{}-{}",
            std::process::id(),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config_path = dir.join("ballast.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .current_dir(&dir)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ballast");
        let log = Arc::new((Mutex::new(Vec::<String>::new()), Condvar::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let (lines, cv) = &*sink;
                lines.lock().expect("log lock").push(line);
                cv.notify_all();
            }
        });
        let mut p = BallastProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            config_path,
            log,
            _dir: TempDir(dir),
        };
        let line = p.wait_for_log("listener=public", Duration::from_secs(20));
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        p.addr = addr;
        p
    }

    /// The admin API's address, from its "admin API listening" log line.
    pub fn admin_addr(&self) -> SocketAddr {
        let line = self.wait_for_log("admin API listening", Duration::from_secs(20));
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// Kill with SIGKILL, as a crash would, and reap the process.
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Send a signal by name ("HUP", "TERM", "INT").
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Wait for a log line containing `needle` (after any seen so far are skipped
    /// only if `from` is given via `log_len`); returns the line.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_log_after(0, needle, timeout)
    }

    /// Like `wait_for_log`, looking only at lines from index `from` on.
    pub fn wait_for_log_after(&self, from: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (lines, cv) = &*self.log;
        let mut guard = lines.lock().expect("log lock");
        loop {
            if let Some(l) = guard.iter().skip(from).find(|l| l.contains(needle)) {
                return l.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "no log line with {needle:?}; log:\n{}",
                guard.join("\n")
            );
            guard = cv.wait_timeout(guard, deadline - now).expect("log lock").0;
        }
    }

    /// How many log lines have been seen.
    pub fn log_len(&self) -> usize {
        self.log.0.lock().expect("log lock").len()
    }

    pub fn log_text(&self) -> String {
        self.log.0.lock().expect("log lock").join("\n")
    }

    pub fn write_config(&self, config: &str) {
        std::fs::write(&self.config_path, config).expect("write config");
    }

    /// Wait for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ballast did not exit in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Peak resident memory so far, in KiB (Linux `VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// Resident memory now, in KiB (Linux `VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

fn fastrand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (N.fetch_add(1, Ordering::Relaxed) << 32)
}

impl Drop for BallastProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

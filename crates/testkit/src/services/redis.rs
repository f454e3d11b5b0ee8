//! A `redis-server` from Debian's `redis-server` package on a free loopback port,
//! without persistence, in a temporary directory: started, stopped and started
//! again on the same port, for cluster mode's global rate limits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::TempDir;

use super::free_port;

const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A `redis-server` on 127.0.0.1, without persistence, in a temporary directory.
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Start one on a free port and wait until it answers `PING`.
    pub fn start() -> RedisServer {
        assert!(
            std::path::Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing: apt-get install redis-server"
        );
        let mut redis = RedisServer {
            port: free_port(),
            dir: TempDir::new("redis"),
            child: None,
        };
        let mut last = String::new();
        // A port found free can be taken by another test before Redis binds it.
        for _ in 0..5 {
            match redis.spawn() {
                Ok(()) => return redis,
                Err(e) => {
                    last = e;
                    redis.port = free_port();
                }
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stop it (SIGTERM) and wait until it has exited.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port (empty: nothing is persisted).
    pub fn start_again(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!(
                "redis-server did not start again on port {}: {e}",
                self.port
            );
        }
    }

    /// One command's reply, as `redis-cli` would print a bulk or simple
    /// string or an integer (errors as `ERR ...`).
    pub fn command(&self, args: &[&str]) -> String {
        redis_command(self.port, args).unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// A field of `INFO` (`total_commands_processed`, `used_memory`, ...).
    pub fn info(&self, field: &str) -> Option<u64> {
        let info = self.command(&["INFO"]);
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{REDIS_SERVER}: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(reply) = redis_command(self.port, &["PING"]) {
                if reply == "PONG" {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("exited with {status} (port {} taken?)", self.port));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err("no PONG within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Send one command in RESP and read its reply.
fn redis_command(port: u16, args: &[&str]) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(reply) = parse_reply(&buf) {
            return Ok(reply);
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A complete simple string, error, integer or bulk string (arrays: their
/// length only), or `None` until more bytes come.
fn parse_reply(buf: &[u8]) -> Option<String> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&buf[1..end]).into_owned();
    match buf.first()? {
        b'+' | b':' | b'*' => Some(line),
        b'-' => Some(line),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some(String::new());
            }
            let body = buf.get(end + 2..end + 2 + len as usize)?;
            Some(String::from_utf8_lossy(body).into_owned())
        }
        _ => Some(line),
    }
}

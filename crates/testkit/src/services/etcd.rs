//! One etcd member on two free loopback ports (client, peer) with its own data
//! directory, started, stopped, killed and started again on the same ports and
//! data, so that tests can take etcd away and bring it back as an outage would.
//!
//! Synchronous on purpose: a test starts etcd before anything that talks to it,
//! and `stop`/`start_again` are the outage itself. Readiness is etcd's own
//! `GET /health` (`{"health":"true"}` once the member has a leader and serves),
//! asked over a plain HTTP/1.1 socket so that this needs no client library.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use super::free_port;

/// Where Debian's `etcd-server` package puts the binary.
const BINARY: &str = "/usr/bin/etcd";
/// How long a start may take before the test fails with etcd's log.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SIGTERM may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// A free port can be taken by another test between our probe and etcd's bind:
/// a first start that dies early is tried again on fresh ports this many times.
const START_ATTEMPTS: usize = 3;
/// The member's name (`--name`, `--initial-cluster`).
const NAME: &str = "ballast-test";

/// A running etcd, killed and its data directory removed when dropped.
pub struct EtcdServer {
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    /// A second, HTTPS client port (0: none): see `start_tls`.
    tls_port: u16,
}

impl EtcdServer {
    /// Start etcd on free loopback ports and wait until it is healthy.
    pub fn start() -> EtcdServer {
        Self::start_with(&[])
    }

    /// Like `start`, with extra flags (`--auto-compaction-retention=1`, ...).
    pub fn start_with(args: &[&str]) -> EtcdServer {
        let dir = std::env::temp_dir().join(format!(
            "ballast-etcd-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        fs::create_dir_all(&dir).expect("create etcd's temp dir");
        let mut etcd = EtcdServer {
            child: None,
            client_port: 0,
            peer_port: 0,
            dir,
            extra: args.iter().map(|a| a.to_string()).collect(),
            tls_port: 0,
        };
        let tls = etcd.extra.iter().any(|a| a.starts_with("--cert-file"));
        for attempt in 1..=START_ATTEMPTS {
            etcd.client_port = free_port();
            etcd.peer_port = free_port();
            if tls {
                etcd.tls_port = free_port();
            }
            match etcd.launch() {
                Ok(()) => return etcd,
                Err(why) if attempt < START_ATTEMPTS => {
                    // Nothing was written that a fresh member needs: start over.
                    let _ = fs::remove_dir_all(etcd.data_dir());
                    eprintln!("etcd did not start ({why}); trying other ports");
                }
                Err(why) => etcd.fail(&why),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Like `start`, also serving clients over TLS on a second port
    /// (`tls_url`) with the server certificate `cert`/`key`; with `client_ca`,
    /// TLS clients must present a certificate it signed. The plain port stays
    /// for readiness and the test's own calls.
    pub fn start_tls(cert: &Path, key: &Path, client_ca: Option<&Path>) -> EtcdServer {
        let mut args = vec![
            format!("--cert-file={}", cert.display()),
            format!("--key-file={}", key.display()),
        ];
        if let Some(ca) = client_ca {
            args.push(format!("--trusted-ca-file={}", ca.display()));
            args.push("--client-cert-auth".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::start_with(&args)
    }

    /// The TLS client URL, `https://127.0.0.1:PORT` (`start_tls` only).
    pub fn tls_url(&self) -> String {
        assert!(self.tls_port != 0, "etcd was not started with start_tls");
        format!("https://127.0.0.1:{}", self.tls_port)
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port))
    }

    /// The running process's id. Panics while etcd is stopped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("etcd is stopped").id()
    }

    /// Whether etcd was started and has not been stopped or killed since.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The member's data directory (kept across `stop` and `start_again`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The file etcd logs to (warnings and errors; appended on each start).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// Stop with SIGTERM and wait for the exit (SIGKILL after 10 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kill with SIGKILL, as a crash would, and reap the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again after `stop` or `kill`: same ports, same data directory, so
    /// clients reconnect to the same URL and find the keys they wrote.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "etcd is still running");
        if let Err(why) = self.launch() {
            self.fail(&why);
        }
    }

    /// POST a JSON body to etcd's v3 JSON gateway (`/v3/kv/range`, ...) and
    /// return its answer. Panics unless etcd answers 200.
    pub fn gateway(&self, path: &str, body: &Value) -> Value {
        let (status, text) = http(self.client_port, "POST", path, Some(&body.to_string()))
            .unwrap_or_else(|e| panic!("POST {path} to etcd: {e}"));
        assert_eq!(status, 200, "POST {path} to etcd: {text}");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("POST {path} to etcd: not JSON ({e}): {text}"))
    }

    /// Put `key` = `value`; returns the revision of the write.
    pub fn put(&self, key: &str, value: &str) -> u64 {
        let answer = self.gateway(
            "/v3/kv/put",
            &json!({ "key": B64.encode(key), "value": B64.encode(value) }),
        );
        revision(&answer)
    }

    /// The value of `key`, or None.
    pub fn get(&self, key: &str) -> Option<String> {
        let answer = self.gateway("/v3/kv/range", &json!({ "key": B64.encode(key) }));
        let kv = answer.get("kvs")?.get(0)?;
        let value = B64
            .decode(kv.get("value").and_then(Value::as_str).unwrap_or(""))
            .expect("etcd's value is base64");
        Some(String::from_utf8(value).expect("the value is UTF-8"))
    }

    /// Every key under `prefix` with its value, in key order.
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let answer = self.gateway(
            "/v3/kv/range",
            &json!({ "key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix)) }),
        );
        let kvs = answer.get("kvs").and_then(Value::as_array);
        kvs.into_iter()
            .flatten()
            .map(|kv| (text_field(kv, "key"), text_field(kv, "value")))
            .collect()
    }

    /// etcd's current revision.
    pub fn revision(&self) -> u64 {
        revision(&self.gateway("/v3/kv/range", &json!({ "key": B64.encode("\0") })))
    }

    /// Spawn etcd and wait until `/health` says so; on failure the member is
    /// reaped and the reason returned (with the log's tail for the panic).
    fn launch(&mut self) -> Result<(), String> {
        let binary = Path::new(BINARY);
        assert!(
            binary.exists(),
            "{BINARY} is missing: apt-get install etcd-server"
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open etcd's log");
        let mut client = self.url();
        if self.tls_port != 0 {
            client.push_str(&format!(",https://127.0.0.1:{}", self.tls_port));
        }
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut child = Command::new(binary)
            .arg(format!("--name={NAME}"))
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={NAME}={peer}"))
            .args(["--logger=zap", "--log-outputs=stderr", "--log-level=warn"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("run {BINARY}: {e} (apt-get install etcd-server)"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("etcd exited with {status}"));
            }
            if let Ok((200, body)) = http(self.client_port, "GET", "/health", None) {
                if body.contains(r#""health":"true""#) {
                    self.child = Some(child);
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("/health not true after {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn fail(&self, why: &str) -> ! {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "etcd on {} did not start: {why}; the end of {}:\n{}",
            self.url(),
            self.log_path().display(),
            tail.join("\n")
        );
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `header.revision` of a gateway answer (int64 comes back as a JSON string).
fn revision(answer: &Value) -> u64 {
    answer
        .pointer("/header/revision")
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no header.revision in {answer}"))
}

fn text_field(kv: &Value, field: &str) -> String {
    let raw = kv.get(field).and_then(Value::as_str).unwrap_or("");
    let bytes = B64.decode(raw).expect("etcd's keys and values are base64");
    String::from_utf8(bytes).expect("UTF-8")
}

/// The end of etcd's range for "every key starting with `prefix`": the prefix
/// with its last byte incremented (etcd's `clientv3.GetPrefixRangeEnd`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (N.fetch_add(1, Ordering::Relaxed) << 32)
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with
/// timeouts: status and body (chunked bodies decoded).
fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> io::Result<(u16, String)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut body = &raw[split + 4..];
    let mut decoded = Vec::new();
    if head.contains("transfer-encoding: chunked") {
        loop {
            let line_end = body
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("truncated chunk"))?;
            let size = std::str::from_utf8(&body[..line_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                .ok_or_else(|| bad("bad chunk size"))?;
            body = &body[line_end + 2..];
            if size == 0 {
                break;
            }
            let chunk = body.get(..size).ok_or_else(|| bad("truncated chunk"))?;
            decoded.extend_from_slice(chunk);
            body = body.get(size + 2..).unwrap_or(&[]);
        }
        body = &decoded;
    }
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::EtcdServer;
    use super::{parse_response, prefix_end};

    #[test]
    fn starts_healthy_on_loopback_and_removes_its_dir() {
        let etcd = EtcdServer::start();
        assert!(
            etcd.url().starts_with("http://127.0.0.1:"),
            "{}",
            etcd.url()
        );
        assert!(etcd.is_running());
        assert!(etcd.data_dir().exists());
        let rev = etcd.put("/t/a", "1");
        assert!(rev >= 2, "revision {rev}");
        assert_eq!(etcd.revision(), rev);
        let dir = etcd.data_dir();
        drop(etcd);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }

    #[test]
    fn stop_then_start_again_keeps_ports_and_keys() {
        let mut etcd = EtcdServer::start();
        let url = etcd.url();
        etcd.put("/t/kept", "value written before the outage");
        etcd.stop();
        assert!(!etcd.is_running());
        assert!(
            std::net::TcpStream::connect(etcd.addr()).is_err(),
            "nothing listens while stopped"
        );
        etcd.start_again();
        assert_eq!(etcd.url(), url);
        assert_eq!(
            etcd.get("/t/kept").as_deref(),
            Some("value written before the outage")
        );
    }

    #[test]
    fn kill_then_start_again_recovers_from_the_wal() {
        let mut etcd = EtcdServer::start();
        let pid = etcd.pid();
        etcd.put("/t/p/1", "a");
        etcd.put("/t/p/2", "b");
        etcd.put("/t/q", "c");
        etcd.kill();
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        etcd.start_again();
        assert_ne!(etcd.pid(), pid);
        let under: Vec<(String, String)> = etcd.get_prefix("/t/p/");
        assert_eq!(
            under,
            vec![
                ("/t/p/1".to_string(), "a".to_string()),
                ("/t/p/2".to_string(), "b".to_string())
            ]
        );
        assert_eq!(etcd.get("/t/missing"), None);
    }

    #[test]
    fn start_with_passes_extra_flags() {
        let etcd = EtcdServer::start_with(&["--auto-compaction-retention=1"]);
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", etcd.pid())).expect("cmdline");
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains("--auto-compaction-retention=1"),
            "{cmdline}"
        );
        assert!(etcd.put("/t/x", "y") >= 2);
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/ballast/"), b"/ballast0".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn parses_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"health\":\"true\"}";
        assert_eq!(
            parse_response(plain).unwrap(),
            (200, "{\"health\":\"true\"}".to_string())
        );
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (404, "abcde".to_string()));
    }
}

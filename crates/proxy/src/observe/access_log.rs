//! The JSON access log (SPEC §10): one line per request, to stdout or a file.
//!
//! Both paths meet here. The data path fills an [`AccessRecord`] (plain values it
//! already has: no formatting, no I/O) and hands it over with `try_send` on a
//! bounded channel when the response body ends or is dropped; a writer task on
//! the control side serializes records into a buffered writer and flushes when the
//! queue runs dry. When the writer cannot keep up the channel is full, the line
//! is dropped and counted (`ballast_access_log_dropped_total`): a slow disk never
//! slows a request. Fields that later features add (TLS, rule priority, desync
//! classification) are new `Option` fields of the record; readers of the log must
//! ignore fields they do not know.
//!
//! Log rotation (SIGUSR1, `ballast serve`): [`AccessLog::reopen`] only wakes the
//! writer; the writer itself flushes what it buffered into the old file, opens the
//! path anew and writes every later line there. Requests never wait for this: lines
//! that arrive meanwhile queue in the channel like any other, so each line lands in
//! the old file or the new one and none is lost. If the path cannot be opened, the
//! writer keeps the old file and says so.
//!
//! `ballast demo` asks for [`Format::Line`] (a short line a person can read in a
//! terminal) through [`use_format`] before it starts; `serve` keeps the JSON lines,
//! which are the contract.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ballast_config::AccessLogConfig;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, Notify};

/// Records waiting for the writer; beyond this, lines are dropped.
const QUEUE: usize = 16 * 1024;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How each record is written: JSON (the contract) or [`Format::Line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object a line (SPEC §10); the default.
    Json = 0,
    /// `HH:MM:SS.mmm STATUS METHOD PATH -> TARGET DURATION`, for a terminal.
    Line = 1,
}

static FORMAT: AtomicU8 = AtomicU8::new(Format::Json as u8);

/// Choose the format of access logs started from now on (the demo asks for
/// [`Format::Line`] before it starts its balancer).
pub fn use_format(format: Format) {
    FORMAT.store(format as u8, Ordering::Relaxed);
}

/// Lines dropped because the writer could not keep up, since the process started.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct AccessRecord {
    /// When the request head arrived, RFC 3339 UTC with milliseconds.
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    pub listener: String,
    pub client: SocketAddr,
    pub target_group: Option<String>,
    pub target: Option<SocketAddr>,
    pub method: String,
    /// The path without the query (queries often carry secrets).
    pub path: String,
    pub status: u16,
    pub target_status: Option<u16>,
    /// Seconds from the request head arriving to sending it to the target.
    pub request_processing_time: Option<f64>,
    /// Seconds from sending the request to the target's response head.
    pub target_processing_time: Option<f64>,
    /// Seconds from the response head to the end of the response body.
    pub response_processing_time: Option<f64>,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// Why ballast answered itself (`no_healthy_target`, `target_connect_failed`...).
    pub error_reason: Option<&'static str>,
    /// The HTTP/1 request's desync classification and its reason (`hygiene/`).
    pub desync_classification: Option<&'static str>,
    pub desync_reason: Option<&'static str>,
    /// Priority of the listener rule that matched; absent for the default action.
    pub rule_priority: Option<u32>,
    /// The TLS protocol version and cipher suite on `https` listeners.
    pub tls_protocol: Option<&'static str>,
    pub tls_cipher: Option<&'static str>,
    /// Whether the response body was sent to its end (false: the client or the
    /// target went away mid-body).
    pub complete: bool,
}

pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The sending half, shared by snapshots while the log's destination stays.
pub struct AccessLog {
    pub destination: AccessLogConfig,
    tx: mpsc::Sender<AccessRecord>,
    /// Wakes the writer to reopen its file (one stored permit: requests to
    /// reopen made while it is busy fold into one).
    reopen: Arc<Notify>,
}

impl AccessLog {
    /// Open the destination and start its writer; `None` when the log is off.
    pub fn start(config: &AccessLogConfig) -> std::io::Result<Option<AccessLog>> {
        let out: Box<dyn AsyncWrite + Send + Unpin> = match config {
            AccessLogConfig::Off => return Ok(None),
            AccessLogConfig::Stdout => Box::new(tokio::io::stdout()),
            AccessLogConfig::File(path) => Box::new(tokio::fs::File::from_std(open(path)?)),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let reopen = Arc::new(Notify::new());
        let path = match config {
            AccessLogConfig::File(path) => Some(path.clone()),
            _ => None,
        };
        let format = match FORMAT.load(Ordering::Relaxed) {
            1 => Format::Line,
            _ => Format::Json,
        };
        let writer = Writer {
            out: BufWriter::with_capacity(64 * 1024, out),
            path,
            format,
        };
        tokio::spawn(writer.run(rx, reopen.clone()));
        Ok(Some(AccessLog {
            destination: config.clone(),
            tx,
            reopen,
        }))
    }

    /// Ask the writer to reopen its file (log rotation); returns at once. Does
    /// nothing for stdout.
    pub fn reopen(&self) {
        self.reopen.notify_one();
    }

    /// Hand a record to the writer without waiting; count it when the queue is full.
    pub fn send(&self, record: AccessRecord) {
        if self.tx.try_send(record).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn open(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// The writer task's state: where lines go and how they look.
struct Writer {
    out: BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
    /// The file's path, to reopen it; `None` for stdout.
    path: Option<PathBuf>,
    format: Format,
}

impl Writer {
    /// Runs until every sender (every snapshot using this log) is gone.
    async fn run(mut self, mut rx: mpsc::Receiver<AccessRecord>, reopen: Arc<Notify>) {
        let mut line = Vec::with_capacity(512);
        loop {
            // A reopen asked for goes first: lines sent after it go to the new file.
            let first = tokio::select! {
                biased;
                () = reopen.notified() => {
                    self.reopen().await;
                    continue;
                }
                record = rx.recv() => match record {
                    Some(r) => r,
                    None => break,
                },
            };
            let mut next = Some(first);
            // Write everything queued, then flush once.
            while let Some(record) = next {
                line.clear();
                if self.format_into(&record, &mut line) {
                    if let Err(e) = self.out.write_all(&line).await {
                        tracing::error!(error = %e, "access log: write failed");
                    }
                }
                next = rx.try_recv().ok();
            }
            if let Err(e) = self.out.flush().await {
                tracing::error!(error = %e, "access log: flush failed");
            }
        }
    }

    fn format_into(&self, record: &AccessRecord, line: &mut Vec<u8>) -> bool {
        match self.format {
            Format::Json => {
                if serde_json::to_writer(&mut *line, record).is_err() {
                    return false;
                }
            }
            Format::Line => line.extend_from_slice(terminal_line(record).as_bytes()),
        }
        line.push(b'\n');
        true
    }

    /// Flush into the old file, then open the path anew (logrotate has moved the
    /// old one away). On failure the old file stays in use.
    async fn reopen(&mut self) {
        let Some(path) = self.path.clone() else {
            return;
        };
        if let Err(e) = self.out.flush().await {
            tracing::error!(error = %e, "access log: flush failed");
        }
        match open(&path) {
            Ok(file) => {
                self.out =
                    BufWriter::with_capacity(64 * 1024, Box::new(tokio::fs::File::from_std(file)));
                tracing::info!(path = %path.display(), "access log reopened");
            }
            Err(e) => tracing::error!(
                path = %path.display(), error = %e,
                "access log: cannot reopen; still writing to the old file"
            ),
        }
    }
}

/// `12:34:56.789 200 GET /hello -> 127.0.0.1:40001 1.8ms` (time of day in UTC;
/// the target is `-` when ballast answered itself, with its reason after it).
fn terminal_line(r: &AccessRecord) -> String {
    let time = crate::observe::rfc3339::millis(r.time);
    let clock = time.get(11..23).unwrap_or(&time);
    let target = r.target.map_or_else(|| "-".to_string(), |t| t.to_string());
    let parts = [
        r.request_processing_time,
        r.target_processing_time,
        r.response_processing_time,
    ];
    let duration = if parts.iter().all(Option::is_none) {
        "-".to_string()
    } else {
        let ms = parts.iter().flatten().sum::<f64>() * 1000.0;
        if ms < 10.0 {
            format!("{ms:.1}ms")
        } else {
            format!("{ms:.0}ms")
        }
    };
    let mut line = format!(
        "{clock} {} {} {} -> {target} {duration}",
        r.status, r.method, r.path
    );
    if let Some(reason) = r.error_reason {
        line.push_str(" (");
        line.push_str(reason);
        line.push(')');
    }
    line
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::observe::rfc3339::millis(*t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            crate::observe::rfc3339::millis(t),
            "2023-11-14T22:13:20.123Z"
        );
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(
            crate::observe::rfc3339::millis(leap),
            "2000-02-29T00:00:00.000Z"
        );
    }

    fn record(status: u16, target: Option<SocketAddr>) -> AccessRecord {
        AccessRecord {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            listener: "demo".into(),
            client: SocketAddr::from(([127, 0, 0, 1], 5000)),
            target_group: Some("demo".into()),
            target,
            method: "GET".into(),
            path: "/hello".into(),
            status,
            target_status: Some(status),
            request_processing_time: target.map(|_| 0.0001),
            target_processing_time: target.map(|_| 0.0012),
            response_processing_time: target.map(|_| 0.0005),
            bytes_in: 0,
            bytes_out: 10,
            user_agent: None,
            request_id: None,
            error_reason: target.is_none().then_some("no_healthy_target"),
            desync_classification: None,
            desync_reason: None,
            rule_priority: None,
            tls_protocol: None,
            tls_cipher: None,
            complete: true,
        }
    }

    #[test]
    fn terminal_lines_read_at_a_glance() {
        let target = SocketAddr::from(([127, 0, 0, 1], 40001));
        assert_eq!(
            terminal_line(&record(200, Some(target))),
            "22:13:20.123 200 GET /hello -> 127.0.0.1:40001 1.8ms"
        );
        assert_eq!(
            terminal_line(&record(503, None)),
            "22:13:20.123 503 GET /hello -> - - (no_healthy_target)"
        );
    }

    /// Lines before the reopen stay in the renamed file, later ones go to a new
    /// file at the path.
    #[tokio::test]
    async fn reopen_moves_later_lines_to_a_new_file() {
        let dir = std::env::temp_dir().join(format!("ballast-reopen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("access.log");
        let _ = std::fs::remove_file(&path);
        let log = AccessLog::start(&AccessLogConfig::File(path.clone()))
            .expect("open")
            .expect("a file log");
        let lines = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        log.send(record(200, None));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lines(&path) < 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "first line never written"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let rotated = dir.join("access.log.1");
        std::fs::rename(&path, &rotated).expect("rename");
        log.reopen();
        log.send(record(201, None));
        while lines(&path) < 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "no new file after reopen"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(std::fs::read_to_string(&path)
            .expect("new")
            .contains("\"status\":201"));
        let old = std::fs::read_to_string(&rotated).expect("old");
        assert_eq!(old.lines().count(), 1);
        assert!(old.contains("\"status\":200"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

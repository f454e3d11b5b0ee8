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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ballast_config::AccessLogConfig;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

/// Records waiting for the writer; beyond this, lines are dropped.
const QUEUE: usize = 16 * 1024;

static DROPPED: AtomicU64 = AtomicU64::new(0);

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
        tokio::spawn(write_lines(rx, out));
        Ok(Some(AccessLog {
            destination: config.clone(),
            tx,
        }))
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

/// The writer task: runs until every sender (every snapshot using it) is gone.
async fn write_lines(
    mut rx: mpsc::Receiver<AccessRecord>,
    out: Box<dyn AsyncWrite + Send + Unpin>,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut line = Vec::with_capacity(512);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Write everything queued, then flush once.
        while let Some(record) = next {
            line.clear();
            if serde_json::to_writer(&mut line, &record).is_ok() {
                line.push(b'\n');
                if let Err(e) = out.write_all(&line).await {
                    tracing::error!(error = %e, "access log: write failed");
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush().await {
            tracing::error!(error = %e, "access log: flush failed");
        }
    }
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
}

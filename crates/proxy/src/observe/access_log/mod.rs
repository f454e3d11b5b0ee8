//! The JSON access log (SPEC §10): one line per request, to stdout or a file.
//!
//! Both paths meet here. The data path fills an [`AccessRecord`] (plain values it
//! already has) and, when the response body ends or is dropped, [`AccessLog::send`]
//! formats it straight into its worker's buffer: no channel per record, no
//! wake-up of another thread, no system call. A writer thread (`writer.rs`)
//! takes what those buffers hold every 10 ms and writes each with one `write`;
//! when it cannot keep up, whole batches are dropped and their lines counted
//! (`ballast_access_log_dropped_total`): a slow disk never slows a request. Fields that later features add (TLS, rule priority, desync
//! classification) are new `Option` fields of the record; readers of the log must
//! ignore fields they do not know.
//!
//! Log rotation (SIGUSR1, `ballast serve`): [`AccessLog::reopen`] only sets a
//! flag; the writer writes what the workers formatted into the old file, opens the
//! path anew and writes every later batch there. Requests never wait for this, and
//! each line lands in the old file or the new one: none is lost. If the path
//! cannot be opened, the writer keeps the old file and says so.
//!
//! `ballast demo` asks for [`Format::Line`] (a short line a person can read in a
//! terminal) through [`use_format`] before it starts; `serve` keeps the JSON lines,
//! which are the contract.

mod format;
#[cfg(test)]
mod tests;
mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ballast_config::AccessLogConfig;

use writer::{Lines, Out, Requests, Slot};

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

/// One request, as logged (`format.rs` writes it; durations as seconds). Built only when the log is
/// on; its fields are what the data path already holds, shared (`Arc<str>`,
/// `Method`, header values) rather than copied: only the path is copied.
#[derive(Debug)]
pub struct AccessRecord {
    /// When the request head arrived, RFC 3339 UTC with milliseconds.
    pub time: SystemTime,
    pub listener: Arc<str>,
    pub client: SocketAddr,
    pub target_group: Option<Arc<str>>,
    pub target: Option<SocketAddr>,
    pub method: http::Method,
    /// The path without the query (queries often carry secrets).
    pub path: String,
    pub status: u16,
    pub target_status: Option<u16>,
    /// Seconds from the request head arriving to sending it to the target.
    pub request_processing_time: Option<Duration>,
    /// Seconds from sending the request to the target's response head.
    pub target_processing_time: Option<Duration>,
    /// Seconds from the response head to the end of the response body.
    pub response_processing_time: Option<Duration>,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// Logged when it is visible ASCII (`HeaderValue::to_str`), else null.
    pub user_agent: Option<http::HeaderValue>,
    pub request_id: Option<http::HeaderValue>,
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

/// The sending half, shared by snapshots while the log's destination stays.
pub struct AccessLog {
    pub destination: AccessLogConfig,
    format: Format,
    /// One buffer per worker (`runtime::current()`), swept by the writer.
    slots: Arc<[Slot]>,
    /// Full buffers to the writer; dropping the last sender ends its thread.
    batches: SyncSender<Lines>,
    requests: Arc<Requests>,
}

impl AccessLog {
    /// Open the destination and start its writer; `None` when the log is off.
    pub fn start(config: &AccessLogConfig) -> std::io::Result<Option<AccessLog>> {
        let out = match config {
            AccessLogConfig::Off => return Ok(None),
            AccessLogConfig::Stdout => Out::Stdout,
            AccessLogConfig::File(path) => Out::File {
                file: open(path)?,
                path: path.clone(),
            },
        };
        let format = match FORMAT.load(Ordering::Relaxed) {
            1 => Format::Line,
            _ => Format::Json,
        };
        let slots: Arc<[Slot]> = (0..crate::runtime::count())
            .map(|_| Slot::default())
            .collect();
        let requests = Arc::new(Requests {
            reopen: AtomicBool::new(false),
            flushed: Mutex::new(Vec::new()),
        });
        let (batches, rx) = std::sync::mpsc::sync_channel(writer::QUEUE);
        let (s, r) = (slots.clone(), requests.clone());
        std::thread::Builder::new()
            .name("ballast-access-log".into())
            .spawn(move || writer::run(out, rx, s, r))?;
        Ok(Some(AccessLog {
            destination: config.clone(),
            format,
            slots,
            batches,
            requests,
        }))
    }

    /// Ask the writer to reopen its file (log rotation); returns at once, and the
    /// writer reopens at its next sweep (within 100 ms). Does nothing for stdout.
    pub fn reopen(&self) {
        self.requests.reopen.store(true, Ordering::Release);
    }

    /// Wait until every line formatted so far is written (at shutdown).
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.requests.flushed.lock() {
            Ok(mut w) => w.push(tx),
            Err(_) => return,
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
    }

    /// Format the record into this worker's buffer; hand the buffer to the
    /// writer when it is full, or drop it and count its lines when the writer
    /// is too far behind. Never waits on the writer.
    pub fn send(&self, record: &AccessRecord) {
        let slot = &self.slots[crate::runtime::current() % self.slots.len()];
        let full = {
            // Only the writer's sweep takes this lock besides this worker.
            let Ok(mut lines) = slot.lines.lock() else {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                return;
            };
            match self.format {
                Format::Json => format::json(record, &mut lines.bytes),
                Format::Line => format::terminal(record, &mut lines.bytes),
            }
            lines.bytes.push(b'\n');
            lines.count += 1;
            if lines.bytes.len() < writer::HANDOVER {
                return;
            }
            lines.take()
        };
        if let Err(TrySendError::Full(lines) | TrySendError::Disconnected(lines)) =
            self.batches.try_send(full)
        {
            DROPPED.fetch_add(lines.count, Ordering::Relaxed);
        }
    }
}

fn open(path: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

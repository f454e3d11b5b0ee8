//! The audit trail: every admin write (applied, refused as invalid, or refused for
//! authentication) and every SIGHUP apply, logged and kept in `state.dir/audit.jsonl`.
//!
//! Control path. One JSON object a line: `time` (RFC 3339 UTC), `client` (the
//! peer's address, `null` for a signal), `token` (an id, never the token: see
//! `auth.rs`), `action` (`PUT /api/v1/config`, `SIGHUP`, ...), `changes` (what the
//! new config adds `+`, removes `-` or changes `~`, from `changes.rs`), `version`
//! (the running version afterwards), `outcome` (`ok`, `error`, `unauthorized`) and
//! `error` (its text). Every start is one entry too (`action` `start`, token
//! `file`), and a start or SIGHUP also says which source won (`source`: `file` or
//! `state`), what the admin API had changed and was dropped (`dropped`) and where
//! the dropped version is kept (`kept`): see `source.rs`. Each entry is logged (INFO; WARN when refused) and appended
//! with one `write` to a file opened `O_APPEND` (mode 0600); applied and invalid
//! writes are fsynced before the API answers, refused ones are not (an
//! unauthenticated client must not be able to make the disk sync at will).
//!
//! Bounded and deterministic: the file holds at most `2 × KEEP` lines; the append
//! that reaches that rewrites it with the last `KEEP` entries (to a temporary file,
//! fsynced, renamed over it), and the last `KEEP` are also kept in memory for
//! `GET /api/v1/audit`. A crash mid-append leaves at worst a torn last line, which
//! the next start skips and compacts away, so the trail survives restarts and
//! crashes entry by entry.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::ReadAccess;
use crate::error::ApiError;
use crate::AdminState;

/// Entries kept in memory and after each compaction of the file.
pub const KEEP: usize = 1000;
const FILE: &str = "audit.jsonl";

/// Who asked for a change: what the audit entry says about them.
#[derive(Clone, Debug)]
pub struct Origin {
    pub client: Option<SocketAddr>,
    /// `write`, `read`, `none`, `sighup` or `sha256:` and 8 hex digits.
    pub token: String,
    pub action: String,
}

impl Origin {
    /// `ballast serve` starting: the audit line says which source won.
    pub fn start() -> Origin {
        Origin {
            client: None,
            token: "file".into(),
            action: "start".into(),
        }
    }

    /// A SIGHUP reload of `file`.
    pub fn sighup(file: &Path) -> Origin {
        Origin {
            client: None,
            token: "sighup".into(),
            action: format!("SIGHUP {}", file.display()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
    Unauthorized,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub time: String,
    pub client: Option<String>,
    pub token: String,
    pub action: String,
    pub changes: Vec<String>,
    pub version: u64,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// At a start or SIGHUP: which source won, `file` or `state` (`source.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What the admin API had changed and the file's win dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
    /// Where the dropped version is kept (`state.dir/history/<version>.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
}

impl Entry {
    pub fn new(origin: &Origin, outcome: Outcome, version: u64) -> Entry {
        Entry {
            time: ballast_proxy::rfc3339::millis(std::time::SystemTime::now()),
            client: origin.client.map(|a| a.to_string()),
            token: origin.token.clone(),
            action: origin.action.clone(),
            changes: Vec::new(),
            version,
            outcome,
            error: None,
            source: None,
            dropped: Vec::new(),
            kept: None,
        }
    }
}

/// The trail: the last [`KEEP`] entries, and the file when there is a state dir.
pub struct Audit {
    path: Option<PathBuf>,
    /// [`KEEP`], smaller in tests.
    keep: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    recent: VecDeque<Entry>,
    /// Lines in the file, so that compaction happens at a fixed count.
    lines: usize,
}

impl Audit {
    /// In memory only (tests, the demo).
    pub fn memory() -> Arc<Audit> {
        Arc::new(Audit {
            path: None,
            keep: KEEP,
            inner: Mutex::default(),
        })
    }

    /// The trail of `dir`, with what a previous run left there. A file that
    /// cannot be read is logged and started afresh beside it.
    pub fn open(dir: &Path) -> Arc<Audit> {
        Self::open_keeping(dir, KEEP)
    }

    fn open_keeping(dir: &Path, keep: usize) -> Arc<Audit> {
        let path = dir.join(FILE);
        let mut inner = Inner::default();
        let mut torn = false;
        match fs::read_to_string(&path) {
            Ok(text) => {
                torn = !text.is_empty() && !text.ends_with('\n');
                for line in text.lines() {
                    inner.lines += 1;
                    match serde_json::from_str::<Entry>(line) {
                        Ok(e) => push(&mut inner.recent, e, keep),
                        Err(_) => torn = true,
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot read the audit trail")
            }
        }
        let audit = Audit {
            path: Some(path),
            keep,
            inner: Mutex::new(inner),
        };
        if torn {
            // A torn or foreign line (a crash mid-append): rewrite the valid ones,
            // so the next append starts on a line of its own.
            if let Ok(mut inner) = audit.inner.lock() {
                if let Err(e) = audit.compact(&mut inner) {
                    tracing::error!(error = %e, "cannot rewrite the audit trail");
                }
            }
        }
        Arc::new(audit)
    }

    /// Keep and append `entry`, then log it (so that once the line is logged, the
    /// entry is listed). Blocking I/O: the callers run it off the runtime.
    pub fn record(&self, entry: Entry) {
        let line = serde_json::to_string(&entry).unwrap_or_default();
        let sync = entry.outcome != Outcome::Unauthorized;
        if let Ok(mut inner) = self.inner.lock() {
            push(&mut inner.recent, entry.clone(), self.keep);
            if let Err(e) = self.append(&mut inner, &line, sync) {
                tracing::error!(error = %e, "cannot append to the audit trail");
            }
        }
        let client = entry.client.as_deref().unwrap_or("-");
        let (token, action, version) = (&entry.token, &entry.action, entry.version);
        match entry.outcome {
            Outcome::Unauthorized => tracing::warn!(
                client,
                token,
                action,
                version,
                "audit: write refused: no valid token; nothing applied"
            ),
            Outcome::Error => tracing::info!(
                client,
                token,
                action,
                version,
                error = entry.error.as_deref().unwrap_or(""),
                "audit: write refused; nothing applied"
            ),
            Outcome::Ok => tracing::info!(
                client, token, action, version, changes = %entry.changes.join(", "),
                source = entry.source.as_deref().unwrap_or("-"),
                dropped = %entry.dropped.join(", "),
                "audit: applied"
            ),
        }
    }

    /// The last `n` entries, oldest first.
    pub fn last(&self, n: usize) -> Vec<Entry> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        let skip = inner.recent.len().saturating_sub(n);
        inner.recent.iter().skip(skip).cloned().collect()
    }

    fn append(&self, inner: &mut Inner, line: &str, sync: bool) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if inner.lines + 1 >= 2 * self.keep {
            return self.compact(inner);
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(format!("{line}\n").as_bytes())?;
        inner.lines += 1;
        if sync {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Rewrite the file with the entries in memory (the last `KEEP`), atomically.
    fn compact(&self, inner: &mut Inner) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let temp = dir.join(format!("{FILE}.tmp.{}", std::process::id()));
        let mut body = String::new();
        for e in &inner.recent {
            body.push_str(&serde_json::to_string(e).unwrap_or_default());
            body.push('\n');
        }
        let written = (|| {
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            f.write_all(body.as_bytes())?;
            f.sync_all()?;
            fs::rename(&temp, path)?;
            File::open(dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        } else {
            inner.lines = inner.recent.len();
        }
        written
    }
}

fn push(recent: &mut VecDeque<Entry>, e: Entry, keep: usize) {
    if recent.len() >= keep {
        recent.pop_front();
    }
    recent.push_back(e);
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<String>,
}

/// `GET /api/v1/audit?limit=N`: the last N entries (default 100, at most 1000),
/// oldest first.
pub async fn list(
    State(state): State<AdminState>,
    _read: ReadAccess,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=KEEP).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {KEEP}, not {s:?}"
                )))
            }
        },
    };
    Ok(Json(
        json!({ "entries": state.control.audit().last(limit) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> Entry {
        let origin = Origin::sighup(Path::new("b.toml"));
        Entry::new(&origin, Outcome::Ok, i)
    }

    #[test]
    fn the_file_is_bounded_survives_reopening_and_skips_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("ballast-audit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let keep = 10;
        let audit = Audit::open_keeping(&dir, keep);
        let lines = |d: &Path| {
            fs::read_to_string(d.join(FILE))
                .expect("file")
                .lines()
                .count()
        };
        for i in 0..19 {
            audit.record(entry(i));
        }
        assert_eq!(lines(&dir), 19);
        // The 20th append reaches 2 × keep: the file is rewritten with the last 10.
        audit.record(entry(19));
        assert_eq!(lines(&dir), keep);
        for i in 20..25 {
            audit.record(entry(i));
        }
        assert_eq!(lines(&dir), 15);
        let last = audit.last(3);
        assert_eq!(
            last.iter().map(|e| e.version).collect::<Vec<_>>(),
            [22, 23, 24]
        );
        assert_eq!(audit.last(100).len(), keep);
        // A crash mid-append: a torn last line is skipped and compacted away.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .expect("open");
        f.write_all(b"{\"time\": \"20").expect("write");
        let reopened = Audit::open_keeping(&dir, keep);
        assert_eq!(reopened.last(100).len(), keep);
        assert_eq!(reopened.last(1)[0].version, 24);
        assert_eq!(lines(&dir), keep, "compacted at once");
        reopened.record(entry(7777));
        let reread = Audit::open_keeping(&dir, keep);
        assert_eq!(
            reread.last(2).iter().map(|e| e.version).collect::<Vec<_>>(),
            [24, 7777]
        );
        let mode = fs::metadata(dir.join(FILE)).expect("meta").permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let _ = fs::remove_dir_all(&dir);
    }
}

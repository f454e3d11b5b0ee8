//! Noticing changed TLS files: a fingerprint (inode, size, modification time) of
//! each file, compared every `INTERVAL` by a background task.
//!
//! Control path. Polling a handful of files every two seconds costs nothing and,
//! unlike inotify, also sees files replaced through symlink swaps (as Kubernetes
//! mounts secrets) and files on network filesystems. A change is acted on after
//! `SETTLE`, so that a certificate and its key written one after the other are
//! loaded together rather than as a mismatched pair.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

pub const INTERVAL: Duration = Duration::from_secs(2);
pub const SETTLE: Duration = Duration::from_millis(300);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint(Vec<Option<(u64, u64, i64, i64)>>);

impl Fingerprint {
    pub fn of(files: &[PathBuf]) -> Self {
        Fingerprint(
            files
                .iter()
                .map(|f| {
                    std::fs::metadata(f)
                        .ok()
                        .map(|m| (m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
                })
                .collect(),
        )
    }
}

//! Persistence of the config that the admin API applied, in `state.dir`.
//!
//! Control path. One file, `state.json` = `{"version": N, "config": {...},
//! "file": {"path", "sha256"}, "api_changes": [...]}` (`file` and `api_changes`
//! are the version's [`Provenance`]: which config file it was last based on, and
//! what the admin API changed since; see `source.rs`), //! replaced atomically: the new content goes to a temporary file in the same
//! directory, is written and fsynced, renamed over `state.json` (atomic on POSIX
//! within one file system), and the directory is fsynced so the rename itself is
//! durable. A crash at any instant therefore leaves the old file or the new one,
//! never a torn mix; a leftover temporary file is ignored and cleaned up on load.
//! Versions come from the server and only grow.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ballast_config::{AdminConfig, Config, ConfigErrors};
use serde::{Deserialize, Serialize};

use crate::source::Provenance;

const FILE: &str = "state.json";
const TEMP_PREFIX: &str = "state.json.tmp.";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a state file: {source}")]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} holds an invalid config: {errors}")]
    Invalid { path: PathBuf, errors: ConfigErrors },
}

/// A config read back from the state directory.
#[derive(Debug)]
pub struct Persisted {
    pub version: u64,
    pub config: Config,
    pub provenance: Provenance,
}

#[derive(Deserialize)]
struct StateFile {
    version: u64,
    config: serde_json::Value,
    /// Absent in files written before provenance was recorded.
    #[serde(flatten)]
    provenance: Provenance,
}

#[derive(Serialize)]
struct StateFileOut<'a> {
    version: u64,
    config: &'a Config,
    #[serde(flatten)]
    provenance: &'a Provenance,
}

#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The persisted config, `None` when nothing was persisted yet.
    pub fn load(&self) -> Result<Option<Persisted>, StoreError> {
        self.load_with(None)
    }

    /// Like `load`, with `admin` in place of the persisted `[admin]` (the node's
    /// own table always comes from its file, so a persisted one naming a token
    /// file that has since moved must not stop the start).
    pub fn load_with_admin(&self, admin: &AdminConfig) -> Result<Option<Persisted>, StoreError> {
        self.load_with(Some(admin))
    }

    /// Like `load`, touching nothing: for a reader beside a running ballast
    /// (`ballast config export`), whose temporary file may be a write in progress.
    pub fn peek(&self) -> Result<Option<Persisted>, StoreError> {
        self.read(None)
    }

    fn load_with(&self, admin: Option<&AdminConfig>) -> Result<Option<Persisted>, StoreError> {
        self.remove_leftovers();
        self.read(admin)
    }

    fn read(&self, admin: Option<&AdminConfig>) -> Result<Option<Persisted>, StoreError> {
        let path = self.path();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let mut file: StateFile =
            serde_json::from_slice(&text).map_err(|source| StoreError::Format {
                path: path.clone(),
                source,
            })?;
        if let (Some(admin), serde_json::Value::Object(map)) = (admin, &mut file.config) {
            let admin = serde_json::to_value(admin).map_err(|source| StoreError::Format {
                path: path.clone(),
                source,
            })?;
            map.insert("admin".into(), admin);
        }
        let config = Config::from_json(&file.config)
            .map_err(|errors| StoreError::Invalid { path, errors })?;
        Ok(Some(Persisted {
            version: file.version,
            config,
            provenance: file.provenance,
        }))
    }

    /// Replace the persisted config atomically (blocking I/O: call off the runtime).
    pub fn save(&self, version: u64, config: &Config, provenance: &Provenance) -> io::Result<()> {
        let body = serde_json::to_vec_pretty(&StateFileOut {
            version,
            config,
            provenance,
        })?;
        write_atomically(&self.dir, &self.path(), &body)
    }

    fn remove_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Write `body` to `path` (in `dir`) through a temporary file, fsynced and
/// renamed over it, then fsync `dir`: the old content or the new, never a mix.
pub(crate) fn write_atomically(dir: &Path, path: &Path, body: &[u8]) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = File::create(&temp)?;
        f.write_all(body)?;
        f.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_toml(
            r#"
[[listeners]]
name = "a"
bind = "127.0.0.1:0"
default_action = { type = "forward", target_group = "g" }
[[target_groups]]
name = "g"
targets = [{ address = "127.0.0.1:9001", weight = 3 }]
"#,
        )
        .expect("valid")
    }

    #[test]
    fn save_then_load_and_leftovers_are_ignored() {
        let dir = std::env::temp_dir().join(format!("ballast-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::new(&dir);
        assert!(store.load().expect("empty dir").is_none());
        store
            .save(7, &config(), &Provenance::default())
            .expect("save");
        // A crash mid-write leaves a temp file behind: never read, cleaned up.
        fs::write(
            dir.join(format!("{TEMP_PREFIX}1.2")),
            b"{\"version\": 9, \"con",
        )
        .expect("w");
        let p = store.load().expect("load").expect("persisted");
        assert_eq!(p.version, 7);
        assert_eq!(p.config, config());
        assert_eq!(fs::read_dir(&dir).expect("dir").count(), 1);
        fs::write(store.path(), b"{not json").expect("w");
        assert!(matches!(store.load(), Err(StoreError::Format { .. })));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_admin_table_of_the_file_replaces_the_persisted_one() {
        let dir = std::env::temp_dir().join(format!("ballast-store-admin-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let token = dir.join("old.token");
        fs::write(&token, "t0k3n").expect("w");
        let mut persisted = config();
        persisted.admin.token_file = Some(token.clone());
        let store = Store::new(&dir);
        store
            .save(3, &persisted, &Provenance::default())
            .expect("save");
        // The token file moved: the persisted [admin] no longer validates ...
        fs::remove_file(&token).expect("rm");
        assert!(matches!(store.load(), Err(StoreError::Invalid { .. })));
        // ... but the file's [admin] is the one that counts.
        let admin = AdminConfig::default();
        let p = store
            .load_with_admin(&admin)
            .expect("load")
            .expect("persisted");
        assert_eq!((p.version, &p.config.admin), (3, &admin));
        let _ = fs::remove_dir_all(&dir);
    }
}

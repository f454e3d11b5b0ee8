//! Versions dropped when the config file won over the admin API's changes, kept
//! in `state.dir/history/<version>.json` so that they can be restored.
//!
//! Control path. Each file is `{"config": {...}}`, exactly a body that
//! `PUT /api/v1/config` takes (without a `version`, so it is not refused as a
//! stale write), and `ballast config export --state-dir DIR --version N` prints
//! it as TOML to use as the file. Written atomically like `state.json`; bounded:
//! after each write only the newest [`KEEP`] versions stay (an operator restores
//! what was just dropped, not what was dropped a month ago).

use std::fs;
use std::io;
use std::path::PathBuf;

use ballast_config::{AdminConfig, Config};

use crate::store::{write_atomically, Store, StoreError};

/// Dropped versions kept.
pub const KEEP: usize = 20;
const DIR: &str = "history";

impl Store {
    pub fn history_dir(&self) -> PathBuf {
        self.dir().join(DIR)
    }

    /// Where dropped version `version` is (or would be) kept.
    pub fn history_path(&self, version: u64) -> PathBuf {
        self.history_dir().join(format!("{version}.json"))
    }

    /// Keep `config`, dropped at `version`, and prune to the newest [`KEEP`]
    /// (blocking I/O: call off the runtime). Returns the file written.
    pub fn keep_dropped(&self, version: u64, config: &Config) -> io::Result<PathBuf> {
        let dir = self.history_dir();
        let path = self.history_path(version);
        let body = serde_json::to_vec_pretty(&serde_json::json!({ "config": config }))?;
        write_atomically(&dir, &path, &body)?;
        let mut versions = self.history_versions();
        if versions.len() > KEEP {
            versions.truncate(versions.len() - KEEP);
            for v in versions {
                let _ = fs::remove_file(self.history_path(v));
            }
        }
        Ok(path)
    }

    /// The versions kept, oldest first.
    pub fn history_versions(&self) -> Vec<u64> {
        let Ok(entries) = fs::read_dir(self.history_dir()) else {
            return Vec::new();
        };
        let mut versions: Vec<u64> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        versions.sort_unstable();
        versions
    }

    /// Dropped version `version`, with `admin` in place of its `[admin]` (as
    /// [`Store::load_with_admin`]); `None` when it is not kept.
    pub fn load_history(
        &self,
        version: u64,
        admin: Option<&AdminConfig>,
    ) -> Result<Option<Config>, StoreError> {
        let path = self.history_path(version);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let mut value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|source| StoreError::Format {
                path: path.clone(),
                source,
            })?;
        let mut config = value
            .get_mut("config")
            .map(serde_json::Value::take)
            .unwrap_or_default();
        if let (Some(admin), serde_json::Value::Object(map)) = (admin, &mut config) {
            if let Ok(admin) = serde_json::to_value(admin) {
                map.insert("admin".into(), admin);
            }
        }
        Config::from_json(&config)
            .map(Some)
            .map_err(|errors| StoreError::Invalid { path, errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_versions_are_kept_bounded_and_read_back() {
        let dir = std::env::temp_dir().join(format!("ballast-history-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::new(&dir);
        let config = Config::from_toml(
            "[[listeners]]\nname = \"a\"\nbind = \"127.0.0.1:0\"\n\
             default_action = { type = \"fixed_response\", status = 204 }\n",
        )
        .expect("valid");
        for v in 1..=(KEEP as u64 + 5) {
            store.keep_dropped(v, &config).expect("keep");
        }
        let versions = store.history_versions();
        assert_eq!(versions.len(), KEEP);
        assert_eq!(versions[0], 6);
        assert_eq!(
            store.load_history(25, None).expect("read"),
            Some(config.clone())
        );
        assert_eq!(store.load_history(1, None).expect("read"), None);
        // The file is a body PUT /api/v1/config takes: only `config`.
        let text = fs::read_to_string(store.history_path(25)).expect("file");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            value
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["config".to_string()])
        );
        let _ = fs::remove_dir_all(&dir);
    }
}

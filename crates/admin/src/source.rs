//! Where the running config comes from — the config file or the state directory —
//! decided by one rule: the operator's newest word wins, and ballast says so.
//!
//! Control path. Every version persisted in `state.dir` records its
//! [`Provenance`]: the config file it was last based on (path and SHA-256 of the
//! content that was applied) and what the admin API has changed since (the
//! change summary of `changes.rs`, measured against that file's config). That is
//! enough to tell, at start and on SIGHUP, which word is newer:
//! - the file's content differs from the one last applied: the file was edited
//!   after the API's changes, so **the file wins**; what the API had changed is
//!   dropped, said at WARN, and the dropped version is kept in
//!   `state.dir/history/` (`history.rs`) so it can be restored;
//! - the file is unchanged: the API's changes are newer, so **the persisted
//!   state wins**, said at WARN with how to choose otherwise (edit the file, or
//!   `--config-wins`, which makes the file win at start and at every SIGHUP).
//!
//! Content, not modification time, decides: a `touch` or a copy that changes
//! nothing is not a new word, while any edit (a comment will do) is. A state
//! file written before provenance was recorded has no fingerprint; it is treated
//! as the API's newest word (as ballast always did) and converted on the next
//! write.

use std::path::{Path, PathBuf};

use ballast_config::Config;
use serde::{Deserialize, Serialize};

use crate::audit::{Entry, Origin, Outcome};
use crate::changes::summary;
use crate::store::{Store, StoreError};

/// A config file as it was applied: its path and the SHA-256 of its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMark {
    pub path: PathBuf,
    pub sha256: String,
}

impl FileMark {
    pub fn of(path: &Path, content: &[u8]) -> FileMark {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, content);
        let sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        FileMark {
            path: path.to_path_buf(),
            sha256,
        }
    }
}

/// What a persisted version was based on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The config file last applied; `None` when no file was (tests, the demo)
    /// or the state predates provenance.
    #[serde(default)]
    pub file: Option<FileMark>,
    /// What the admin API changed since that file was applied; empty when the
    /// version is the file's own config.
    #[serde(default)]
    pub api_changes: Vec<String>,
}

/// The config file as last applied: what the API's changes are measured against.
#[derive(Clone, Debug)]
pub struct FileBase {
    pub mark: FileMark,
    pub config: Config,
}

/// A persisted version that the file won over, with what the API had changed.
pub struct Dropped {
    pub version: u64,
    pub config: Config,
    pub changes: Vec<String>,
}

/// What `ballast serve` starts with, and why.
pub struct Start {
    pub config: Config,
    pub version: u64,
    /// The file won over a persisted version: it is persisted as `version`.
    pub persist: bool,
    pub base: FileBase,
    pub dropped: Option<Dropped>,
    /// `file` or `state`: which source won.
    pub source: &'static str,
    /// What this start changed against the version that ran last.
    pub changes: Vec<String>,
}

/// Decide between the file (`file`, read from `mark.path`) and what `store` holds.
/// Every choice is logged; only an unreadable state file (without `config_wins`)
/// is an error.
pub fn at_start(
    store: &Store,
    mark: FileMark,
    file: Config,
    config_wins: bool,
) -> Result<Start, StoreError> {
    let path = mark.path.display().to_string();
    let persisted = match store.load_with_admin(&file.admin) {
        Ok(p) => p,
        Err(e) if config_wins => {
            tracing::warn!(error = %e, "--config-wins: the unreadable state file is replaced by the file");
            None
        }
        Err(e) => return Err(e),
    };
    let base = FileBase {
        mark: mark.clone(),
        config: file.clone(),
    };
    let Some(p) = persisted else {
        tracing::info!(file = %path, state = %store.path().display(), "no persisted config: using the file");
        return Ok(Start {
            config: file,
            version: 1,
            persist: false,
            base,
            dropped: None,
            source: "file",
            changes: Vec::new(),
        });
    };
    let recorded = p.provenance.file.as_ref();
    let unchanged = recorded.is_some_and(|m| m.sha256 == mark.sha256);
    // Against an unchanged file, the difference is exactly what the API changed;
    // against an edited one, only the summary recorded with the version knows.
    let api_changes = match recorded {
        Some(_) if !unchanged => p.provenance.api_changes.clone(),
        _ => summary(&file, &p.config),
    };
    let file_wins = config_wins || (recorded.is_some() && !unchanged);
    if !file_wins {
        if api_changes.is_empty() {
            tracing::info!(file = %path, version = p.version, "the file is unchanged since it was applied: running persisted version {}", p.version);
        } else {
            let why = if recorded.is_some() {
                "is unchanged since it was last applied, and the admin API has changed the config since"
            } else {
                "differs from the config the admin API persisted (recorded before file fingerprints)"
            };
            tracing::warn!(
                file = %path, version = p.version, api_changes = %api_changes.join(", "),
                "the config file {why}: running persisted version {}; the file is ignored. To use the file instead, edit it (any change; a comment will do) and restart or send SIGHUP, or start with --config-wins",
                p.version
            );
        }
        return Ok(Start {
            config: p.config,
            version: p.version,
            persist: false,
            base,
            dropped: None,
            source: "state",
            changes: Vec::new(),
        });
    }
    let version = p.version + 1;
    let reason = if config_wins {
        "--config-wins"
    } else {
        "the file changed since it was last applied"
    };
    if api_changes.is_empty() {
        tracing::info!(file = %path, version, "{reason}: using the file (persisted version {} had no changes of the admin API)", p.version);
    } else {
        tracing::warn!(
            file = %path, version, dropped = %api_changes.join(", "),
            "{reason}: the file wins over persisted version {}; the admin API's changes in it are dropped (kept in {}; see README, \"Where the config comes from\", to restore them)",
            p.version,
            store.history_path(p.version).display()
        );
    }
    let changes = summary(&p.config, &file);
    let dropped = (!api_changes.is_empty()).then_some(Dropped {
        version: p.version,
        config: p.config,
        changes: api_changes,
    });
    Ok(Start {
        config: file,
        version,
        persist: true,
        base,
        dropped,
        source: "file",
        changes,
    })
}

impl Start {
    /// Keep the dropped version in the history and persist the file's config
    /// (blocking I/O: call off the runtime). Returns where the dropped version went.
    pub fn commit(&self, store: &Store) -> std::io::Result<Option<PathBuf>> {
        let kept = match &self.dropped {
            Some(d) => Some(store.keep_dropped(d.version, &d.config)?),
            None => None,
        };
        if self.persist {
            let provenance = Provenance {
                file: Some(self.base.mark.clone()),
                api_changes: Vec::new(),
            };
            store.save(self.version, &self.config, &provenance)?;
        }
        Ok(kept)
    }

    /// The audit trail's `start` line.
    pub fn entry(&self, kept: Option<&Path>) -> Entry {
        Entry {
            changes: self.changes.clone(),
            source: Some(self.source.to_string()),
            dropped: self
                .dropped
                .as_ref()
                .map(|d| d.changes.clone())
                .unwrap_or_default(),
            kept: kept.map(|p| p.display().to_string()),
            ..Entry::new(&Origin::start(), Outcome::Ok, self.version)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[listeners]]
name = "a"
bind = "127.0.0.1:0"
default_action = { type = "forward", target_group = "g" }
[[target_groups]]
name = "g"
targets = [{ address = "127.0.0.1:9001" }]
"#;

    fn file(text: &str) -> (FileMark, Config) {
        let mark = FileMark::of(Path::new("b.toml"), text.as_bytes());
        (mark, Config::from_toml(text).expect("valid"))
    }

    /// A store whose version 2 is the file plus a target the API registered.
    fn store_with_api_change(tag: &str) -> (Store, Config) {
        let dir = std::env::temp_dir().join(format!("ballast-source-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::new(&dir);
        let (mark, base) = file(FILE);
        let api = Config::from_toml(&FILE.replace(
            "{ address = \"127.0.0.1:9001\" }",
            "{ address = \"127.0.0.1:9001\" }, { address = \"127.0.0.1:9002\" }",
        ))
        .expect("valid");
        let provenance = Provenance {
            api_changes: summary(&base, &api),
            file: Some(mark),
        };
        store.save(2, &api, &provenance).expect("save");
        (store, api)
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_content() {
        let m = FileMark::of(Path::new("b.toml"), b"abc");
        assert_eq!(
            m.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn an_unchanged_file_leaves_the_persisted_state_in_charge() {
        let (store, api) = store_with_api_change("unchanged");
        let (mark, config) = file(FILE);
        let start = at_start(&store, mark, config, false).expect("start");
        assert_eq!(
            (start.source, start.version, start.persist),
            ("state", 2, false)
        );
        assert_eq!(start.config, api);
        assert!(start.dropped.is_none());
        let _ = std::fs::remove_dir_all(store.dir());
    }

    #[test]
    fn an_edited_file_wins_and_drops_what_the_api_changed() {
        let (store, api) = store_with_api_change("edited");
        let edited = format!("# edited\n{FILE}");
        let (mark, config) = file(&edited);
        let start = at_start(&store, mark.clone(), config.clone(), false).expect("start");
        assert_eq!(
            (start.source, start.version, start.persist),
            ("file", 3, true)
        );
        let dropped = start.dropped.as_ref().expect("dropped");
        assert_eq!((dropped.version, &dropped.config), (2, &api));
        assert_eq!(dropped.changes, ["+target g/127.0.0.1:9002"]);
        let kept = start.commit(&store).expect("commit").expect("kept");
        assert_eq!(kept, store.history_path(2));
        let entry = start.entry(Some(&kept));
        assert_eq!(
            (entry.action.as_str(), entry.token.as_str()),
            ("start", "file")
        );
        assert_eq!(entry.dropped, ["+target g/127.0.0.1:9002"]);
        // Persisted as version 3, based on the edited file, with no API changes.
        let p = store.load().expect("load").expect("persisted");
        assert_eq!((p.version, &p.config), (3, &config));
        assert_eq!(
            p.provenance,
            Provenance {
                file: Some(mark.clone()),
                api_changes: vec![]
            }
        );
        // The next start with the same file: unchanged, nothing to say.
        let again = at_start(&store, mark, config, false).expect("start");
        assert_eq!((again.source, again.version), ("state", 3));
        let _ = std::fs::remove_dir_all(store.dir());
    }

    #[test]
    fn config_wins_and_state_without_a_fingerprint() {
        let (store, _) = store_with_api_change("wins");
        let (mark, config) = file(FILE);
        let start = at_start(&store, mark.clone(), config.clone(), true).expect("start");
        assert_eq!((start.source, start.version), ("file", 3));
        assert!(start.dropped.is_some(), "unchanged, but --config-wins");
        // A state file from before fingerprints: the persisted state wins.
        let (legacy, api) = store_with_api_change("legacy");
        let old_format = serde_json::json!({ "version": 2, "config": api });
        std::fs::write(legacy.path(), old_format.to_string()).expect("write");
        let start = at_start(&legacy, mark, config, false).expect("start");
        assert_eq!((start.source, start.version), ("state", 2));
        for s in [&store, &legacy] {
            let _ = std::fs::remove_dir_all(s.dir());
        }
    }
}

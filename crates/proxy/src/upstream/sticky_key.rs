//! Where the key of sticky-session cookies comes from (`sticky.rs`).
//!
//! Control path, at every apply of a config with a sticky group (a small file
//! read; nothing when no group is sticky). The key must survive restarts, or every
//! client would lose its target at each one, and a fleet must share it, or a
//! client moving between nodes would too:
//! - `server.stickiness_key_file` names a file every node has (checked by the
//!   config: readable, at least 32 bytes besides surrounding whitespace);
//! - otherwise the node keeps its own in `state.dir/stickiness.key`, made once from
//!   the OS random generator (32 bytes, written as 64 hex digits, mode 0600). It is
//!   created whole or not at all: written to a temporary file, synced, then linked
//!   to its name, which fails if another process got there first (its key is then
//!   read). Copying that file to every node and naming it in
//!   `stickiness_key_file` turns one node's key into the fleet's.
//!
//! Either way the key is the file's content without surrounding whitespace.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use ballast_config::{Config, ServerConfig};

use crate::upstream::sticky::Key;

/// The key's file in `state.dir` when the config names none.
pub const STATE_FILE: &str = "stickiness.key";

/// Bytes drawn from the OS random generator for a new key.
const RANDOM_BYTES: usize = 32;

/// The key for `config`'s sticky groups, and the file it came from; `None` when
/// no group is sticky.
pub fn load(config: &Config) -> Result<Option<(Key, PathBuf)>, (PathBuf, io::Error)> {
    if config.target_groups.iter().all(|g| g.stickiness.is_none()) {
        return Ok(None);
    }
    let path = match &config.server.stickiness_key_file {
        Some(p) => p.clone(),
        None => config.state.dir.join(STATE_FILE),
    };
    let secret = match config.server.stickiness_key_file {
        Some(_) => read(&path),
        None => read_or_create(&path),
    };
    match secret {
        Ok(secret) => Ok(Some((Key::new(&secret), path))),
        Err(e) => Err((path, e)),
    }
}

fn read(path: &Path) -> io::Result<Vec<u8>> {
    let bytes = fs::read(path)?;
    let secret = bytes.trim_ascii();
    if secret.len() < ServerConfig::MIN_STICKINESS_KEY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "holds {} bytes; a stickiness key needs at least {}",
                secret.len(),
                ServerConfig::MIN_STICKINESS_KEY
            ),
        ));
    }
    Ok(secret.to_vec())
}

fn read_or_create(path: &Path) -> io::Result<Vec<u8>> {
    match read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut random = [0u8; RANDOM_BYTES];
    aws_lc_rs::rand::fill(&mut random)
        .map_err(|_| io::Error::other("the OS random generator failed"))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let temp = dir.join(format!("{STATE_FILE}.tmp.{}", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        f.write_all(format!("{hex}\n").as_bytes())?;
        f.sync_all()?;
        match fs::hard_link(&temp, path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
        fs::File::open(dir)?.sync_all()
    })();
    let _ = fs::remove_file(&temp);
    written?;
    tracing::info!(path = %path.display(), "generated the stickiness key (keep it with the state; share it with server.stickiness_key_file)");
    read(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn config(dir: &Path, key_file: Option<PathBuf>, sticky: bool) -> Config {
        let mut text = format!(
            "[state]\ndir = \"{}\"\n[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\n\
             default_action = {{ type = \"forward\", target_group = \"web\" }}\n\
             [[target_groups]]\nname = \"web\"\ntargets = [{{ address = \"127.0.0.1:1\" }}]\n",
            dir.display()
        );
        if sticky {
            text.push_str("stickiness = { type = \"lb_cookie\", duration = \"1h\" }\n");
        }
        let mut c = Config::from_toml(&text).expect("valid");
        c.server.stickiness_key_file = key_file;
        c
    }

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ballast-key-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_key_is_made_once_in_the_state_dir_and_kept() {
        let dir = temp("state");
        assert!(load(&config(&dir, None, false)).expect("ok").is_none());
        assert!(!dir.exists(), "nothing is written without a sticky group");
        let (_, path) = load(&config(&dir, None, true)).expect("ok").expect("key");
        assert_eq!(path, dir.join(STATE_FILE));
        let first = fs::read(&path).expect("key file");
        assert_eq!(first.trim_ascii().len(), 64);
        assert!(first.trim_ascii().iter().all(u8::is_ascii_hexdigit));
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A restart reads the same key.
        load(&config(&dir, None, true)).expect("ok").expect("key");
        assert_eq!(fs::read(&path).expect("key file"), first);
        assert_eq!(fs::read_dir(&dir).expect("dir").count(), 1, "no leftovers");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_configured_key_file_wins_and_must_be_long_enough() {
        let dir = temp("file");
        fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("fleet.key");
        fs::write(&file, "k".repeat(40)).expect("write");
        let (_, path) = load(&config(&dir, Some(file.clone()), true))
            .expect("ok")
            .expect("key");
        assert_eq!(path, file);
        assert!(!dir.join(STATE_FILE).exists());
        // Shortened after validation: refused at apply.
        fs::write(&file, "short\n").expect("write");
        let (p, e) = load(&config(&dir, Some(file.clone()), true))
            .err()
            .expect("refused");
        assert_eq!(p, file);
        assert!(e.to_string().contains("at least 32"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }
}

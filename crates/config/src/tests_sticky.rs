//! Sticky sessions' key (`server.stickiness_key_file`): a readable file of at
//! least 32 bytes, relative to the config's directory; anything else is an error
//! at the key's position. The `stickiness` keys themselves: `tests_resilience.rs`.

use std::path::{Path, PathBuf};

use super::tests::VALID;
use super::*;
use crate::test_fixture::assert_error;

const ANCHOR: &str = "drain_timeout = \"10s\"";

/// A fresh directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("ballast-config-key-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// VALID with `stickiness_key_file = file` in `[server]`, read relative to `base`.
fn with_key(file: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let text = VALID.replace(
        ANCHOR,
        &format!("{ANCHOR}\nstickiness_key_file = \"{file}\""),
    );
    Config::from_toml_in(&text, base)
}

fn key_line() -> u32 {
    let at = VALID.find(ANCHOR).expect("anchor");
    VALID[..at].matches('\n').count() as u32 + 2
}

#[test]
fn a_key_file_is_resolved_against_the_config_directory() {
    let dir = Dir::new("ok");
    std::fs::write(dir.0.join("sticky.key"), format!("{}\n", "ab".repeat(32))).expect("write");
    let c = with_key("sticky.key", &dir.0).expect("valid");
    assert_eq!(c.server.stickiness_key_file, Some(dir.0.join("sticky.key")));
    // The admin API's JSON form reads back the same.
    let json = serde_json::to_value(&c).expect("json");
    assert_eq!(
        Config::from_json(&json).expect("round trip").server,
        c.server
    );
    // Omitted: none (a key kept in state.dir is used).
    let c = Config::from_toml(VALID).expect("valid");
    assert_eq!(c.server.stickiness_key_file, None);
}

#[test]
fn a_missing_short_or_empty_key_file_is_rejected_at_its_position() {
    let dir = Dir::new("bad");
    // 31 bytes and surrounding whitespace: too short.
    std::fs::write(dir.0.join("short.key"), format!("  {}\n", "x".repeat(31))).expect("write");
    let line = key_line();
    for (file, needle) in [
        ("missing.key", "cannot read"),
        (
            "short.key",
            "holds 31 bytes; a stickiness key needs at least 32",
        ),
        ("", "empty file path"),
    ] {
        let errs = with_key(file, &dir.0).expect_err(file);
        assert_error(&errs, "server.stickiness_key_file", line, needle);
        let e = errs.iter().next().expect("one error");
        assert_eq!(e.column, Some(23), "{e}");
    }
}

//! Test support: a valid config text patched into invalid ones, and assertions on
//! the errors that come back (path, line and message).

use crate::{Config, ConfigErrors};

/// A valid config text that tests break one replacement at a time.
pub struct Fixture(pub &'static str);

impl Fixture {
    /// The config with one text replacement, which must be rejected.
    pub fn broken(&self, from: &str, to: &str) -> ConfigErrors {
        assert!(
            self.0.contains(from),
            "test patch {from:?} not in the fixture"
        );
        let text = self.0.replacen(from, to, 1);
        Config::from_toml(&text).expect_err("config must be rejected")
    }

    /// The 1-based line on which `text` first stands.
    pub fn line_of(&self, text: &str) -> u32 {
        let at = self.0.find(text).expect("text in the fixture");
        self.0[..at].matches('\n').count() as u32 + 1
    }
}

/// Assert that one of `errs` is at `path`, on `line`, and says `needle`.
pub fn assert_error(errs: &ConfigErrors, path: &str, line: u32, needle: &str) {
    let found = errs
        .iter()
        .any(|e| e.path == path && e.line == Some(line) && e.message.contains(needle));
    assert!(
        found,
        "expected error at {path} line {line} containing {needle:?}; got:\n{errs}"
    );
}

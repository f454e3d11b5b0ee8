//! Config errors: each names the field path, its position when the source has one,
//! what is wrong and what is allowed. A config is rejected with all of them at once.

use std::fmt;

use serde::Serialize;

use crate::source::Pos;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `target_groups[1].health_check.interval`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// What is wrong, and what is allowed.
    pub message: String,
    #[serde(skip)]
    pub pos: Option<Pos>,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, pos: Option<Pos>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message: message.into(),
            pos,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "config"
        } else {
            &self.path
        };
        match self.pos {
            Some(pos) => write!(
                f,
                "{path} (line {}, column {}): {}",
                pos.line, pos.column, self.message
            ),
            None => write!(f, "{path}: {}", self.message),
        }
    }
}

/// Every error found in one config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn one(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

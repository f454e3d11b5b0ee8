//! ballast's configuration: the model (SPEC §2), its parser and its validation.
//!
//! Control path only. Every source of config — the file, SIGHUP, the admin API and
//! etcd — goes through [`Config::from_toml`] or [`Config::from_json`], which either
//! return a fully valid model or every error found, each with its field path and,
//! for TOML, its line and column. Nothing downstream re-validates.
#![forbid(unsafe_code)]

mod action;
mod admin;
pub mod admission;
pub mod client_timeouts;
pub mod cluster;
mod decode;
pub mod dns;
pub mod duration;
mod error;
mod export;
mod fleet;
pub mod limits;
mod model;
mod parse;
mod parse_group;
mod parse_grpc;
mod pattern;
pub mod resilience;
mod rule;
pub mod shedding;
pub mod shuffle_shard;
pub mod size;
mod source;
mod template;
pub mod tls;

use std::path::Path;

pub use dns::{DnsRefresh, TargetAddress};
pub use error::{ConfigError, ConfigErrors};
pub use export::ExportError;
pub use fleet::NODE_TABLES;
pub use model::*;
pub use pattern::{check_glob, Cidr, GlobKind};
pub use source::Pos;
pub use template::{RedirectTemplate, TemplatePart};
pub use tls::{
    CertificateFiles, ClientCertHeaders, ListenerTls, Mtls, MtlsMode, TargetTls, TlsPolicy,
};

impl Config {
    /// Parse and validate a TOML config. Relative file paths (TLS certificates and
    /// keys) are taken relative to the working directory.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        Self::from_toml_in(text, Path::new(""))
    }

    /// Parse and validate a TOML config whose relative file paths are relative to
    /// `base` (the config file's directory).
    pub fn from_toml_in(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let root = source::from_toml(text)?;
        Self::from_node(&root, base)
    }

    /// Parse and validate a config given as JSON (the admin API's form).
    pub fn from_json(value: &serde_json::Value) -> Result<Config, ConfigErrors> {
        Self::from_node(&source::from_json(value), Path::new(""))
    }

    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::one(ConfigError::new(
                "",
                None,
                format!("cannot read {}: {e}", path.display()),
            ))
        })?;
        Self::from_toml_in(&text, path.parent().unwrap_or(Path::new("")))
    }

    fn from_node(root: &source::Node, base: &Path) -> Result<Config, ConfigErrors> {
        let mut errs = decode::Errors::default();
        match parse::decode(root, base, &mut errs) {
            Some(config) if errs.0.is_empty() => Ok(config),
            _ => {
                // File order reads best; errors without a position (JSON) keep theirs.
                errs.0
                    .sort_by_key(|e| e.pos.map_or((u32::MAX, 0), |p| (p.line, p.column)));
                Err(ConfigErrors(errs.0))
            }
        }
    }
}

#[cfg(test)]
mod test_fixture;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_admin;
#[cfg(test)]
mod tests_admission;
#[cfg(test)]
mod tests_client_timeouts;
#[cfg(test)]
mod tests_cluster;
#[cfg(test)]
mod tests_dns;
#[cfg(test)]
mod tests_export;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_resilience;
#[cfg(test)]
mod tests_rules;
#[cfg(test)]
mod tests_shedding;
#[cfg(test)]
mod tests_shuffle_shard;
#[cfg(test)]
mod tests_sticky;
#[cfg(test)]
mod tests_streams;
#[cfg(test)]
mod tests_targets;
